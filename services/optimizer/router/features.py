"""Cheap text features of a prompt for the router (pure; microseconds, no model).

The MiniLM embedding says what a prompt is *about*; across domains that carries little
difficulty signal (a router fit on some MMLU domains and judged on others barely beats
random on it). The shape of the question carries more and transfers: a calculation
(numeric options, digits, formulas), a long reading passage, "Statement 1 | Statement 2"
logic items. These ten numbers, with their pairwise products (degree-2 terms: 65 in all),
are what the router adds to the embedding. Read over the prompt's first 4,000 characters,
not a token window.

The **words** block (:func:`word_buckets`) is a hashed bag of the prompt's words: each
distinct word (letters and digits, case kept: "NOT" and "EXCEPT" mark a question type)
falls in one of :data:`WORD_BUCKETS` buckets by CRC-32; the row is binary and
L2-normalised. Strongly regularised, it picks up the wording of question types that recur
across domains (a moral-judgement pair, a court case, "calculate") that ten shape numbers
cannot name. The hash is the standard library's, so an artifact's buckets mean the same
on every machine and version; a decision reads its words in ~0.1 ms.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = [
    "TEXT_FEATURES",
    "WORD_BUCKETS",
    "text_features",
    "text_features_many",
    "word_buckets",
    "words_matrix",
]

_OPTION = re.compile(r"^[A-D][.)]\s*(.*)$")
_NUMERIC = re.compile(r"^[\s$\-\u2212+]*[\d.,/]+\s*[%a-zA-Z\u00b0$^\u00b2\u00b3/]{0,6}\s*$")
_MATH = frozenset("=+*/^<>|\\$%")
#: only a prompt's first this-many characters are read (bounds the time on huge prompts)
MAX_CHARS = 4000
#: hashed word buckets of the words block (2^16: few collisions among MMLU's ~60k words)
WORD_BUCKETS = 1 << 16
_WORD = re.compile(r"\w+")

_BASE = (
    "log_chars",
    "log_lines",
    "digit_share",
    "math_symbol_share",
    "numeric_option_share",
    "statement_pair",
    "uppercase_share",
    "mean_word_length",
    "log_mean_option_length",
    "has_four_options",
)
#: names of the 65 features, in order: the ten base ones, then every product i <= j
TEXT_FEATURES: tuple[str, ...] = _BASE + tuple(
    f"{_BASE[i]}*{_BASE[j]}" for i in range(len(_BASE)) for j in range(i, len(_BASE))
)
_UPPER = np.triu_indices(len(_BASE))


def _base(prompt: str) -> list[float]:
    prompt = prompt[:MAX_CHARS]
    lines = [line.strip() for line in prompt.splitlines() if line.strip()]
    n = max(len(prompt), 1)
    options = [m.group(1) for line in lines if (m := _OPTION.match(line))]
    numeric = sum(1 for o in options if _NUMERIC.match(o)) / max(len(options), 1)
    words = prompt.split()
    return [
        math.log1p(len(prompt)),
        math.log1p(len(lines)),
        sum(c.isdigit() for c in prompt) / n,
        sum(c in _MATH for c in prompt) / n,
        numeric,
        float("Statement 1" in prompt),
        sum(c.isupper() for c in prompt) / n,
        sum(len(w) for w in words) / max(len(words), 1),
        math.log1p(sum(len(o) for o in options) / max(len(options), 1)),
        float(len(options) >= 4),
    ]


def text_features(prompt: str) -> npt.NDArray[np.float64]:
    """The ``len(TEXT_FEATURES)`` features of one prompt."""
    base = np.array(_base(prompt))
    return np.concatenate([base, np.outer(base, base)[_UPPER]])


def text_features_many(prompts: Sequence[str]) -> npt.NDArray[np.float64]:
    """``(len(prompts), len(TEXT_FEATURES))``."""
    if not prompts:
        return np.zeros((0, len(TEXT_FEATURES)))
    return np.stack([text_features(p) for p in prompts])


def word_buckets(prompt: str) -> npt.NDArray[np.int64]:
    """The sorted distinct word buckets of a prompt's first :data:`MAX_CHARS` characters."""
    words = set(_WORD.findall(prompt[:MAX_CHARS]))
    return np.fromiter(
        sorted({zlib.crc32(w.encode()) % WORD_BUCKETS for w in words}), dtype=np.int64
    )


def words_matrix(prompts: Sequence[str]) -> sp.csr_matrix:
    """``(len(prompts), WORD_BUCKETS)`` binary bags of words, each row L2-normalised."""
    rows = [word_buckets(p) for p in prompts]
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    values = np.concatenate(
        [np.full(len(r), 1 / math.sqrt(len(r))) for r in rows if len(r)] or [np.zeros(0)]
    )
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return sp.csr_matrix((values, indices, indptr), shape=(len(prompts), WORD_BUCKETS))
