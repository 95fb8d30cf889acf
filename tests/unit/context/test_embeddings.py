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


def test_stored_bytes_round_trip_and_foreign_sizes_read_as_missing() -> None:
    vector = WordHashEmbedder().embed(["round trip"])[0]
    assert np.array_equal(vector_from_bytes(vector_to_bytes(vector)), vector)
    assert vector_from_bytes(b"\x00" * 12) is None and vector_from_bytes(None) is None
