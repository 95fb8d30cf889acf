"""The offline embedder (``llmproxy.platform.embeddings``): real model, real tokenizer."""

import numpy as np
import pytest

from llmproxy.platform.embeddings import (
    DIMENSIONS,
    Embedder,
    WordHashEmbedder,
    vector_from_bytes,
    vector_to_bytes,
)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def cosine(embedder: Embedder, a: str, b: str) -> float:
    vectors = embedder.embed([a, b])
    return float(vectors[0] @ vectors[1])


def test_vectors_are_384_wide_float32_and_unit_length(embedder: Embedder) -> None:
    vectors = embedder.embed(["hello", "a somewhat longer sentence about the weather in Oslo"])
    assert vectors.shape == (2, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, DIMENSIONS)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("My sister is called Alice.", "What is my sister's name?"),
        ("A man is playing a guitar.", "Someone plays the guitar."),
        ("The meeting moved to Thursday at 3 pm.", "When is the meeting now?"),
    ],
)
def test_paraphrases_are_close_and_unrelated_texts_are_far(
    embedder: Embedder, a: str, b: str
) -> None:
    related = cosine(embedder, a, b)
    unrelated = cosine(embedder, a, "Quarterly revenue grew by twelve percent.")
    assert related > 0.5 and unrelated < 0.2 and related - unrelated > 0.4


def test_the_same_text_embeds_the_same_alone_or_in_a_padded_batch(embedder: Embedder) -> None:
    alone = embedder.embed(["short"])[0]
    batched = embedder.embed(["short", "a much longer text that forces padding of the short one"])[
        0
    ]
    assert float(alone @ batched) > 0.9999


def test_a_text_past_the_models_length_is_cut_not_refused(embedder: Embedder) -> None:
    assert embedder.embed(["word " * 2000]).shape == (1, DIMENSIONS)


@pytest.mark.parametrize("max_tokens", [8, 16, 256])
@pytest.mark.parametrize(
    "text",
    [
        "Which of the following is true of the function f(x) = x^2 + 1? " * 80,
        "a " * 10 + "y" * 3000 + " b c",  # the head ends in one long word: whole text used
        "caf\u00e9 na\u00efve \u4e2d\u6587\u5b57 r\u00e9sum\u00e9\t\n" * 300,
        "ab\x1ccd " * 400,  # a separator the tokenizer deletes (not a place to cut)
        "\u200b " * 600 + "real words come only after many empty ones " * 10,
    ],
)
def test_a_long_text_is_tokenized_from_its_head_with_the_same_ids(
    max_tokens: int, text: str
) -> None:
    embedder = Embedder(max_tokens=max_tokens)
    embedder.embed(["load"])
    whole = embedder._tokenizer.encode(text)
    vector = embedder.embed([text])[0]
    ids = np.array([whole.ids])
    mask = np.array([whole.attention_mask])
    (hidden,) = embedder._session.run(
        ["last_hidden_state"],
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
    )
    expected = hidden[0].mean(axis=0)
    expected /= np.linalg.norm(expected)
    assert np.array_equal(vector, expected.astype(np.float32)) or np.allclose(
        vector, expected, atol=1e-6
    )


def test_stored_bytes_round_trip_and_foreign_sizes_read_as_missing() -> None:
    vector = WordHashEmbedder().embed(["round trip"])[0]
    assert np.array_equal(vector_from_bytes(vector_to_bytes(vector)), vector)
    assert vector_from_bytes(b"\x00" * 12) is None and vector_from_bytes(None) is None
