"""A trained router: prompt embedding (+ text features) in, per-model P(correct answer) out.

Pure and small: a logistic model per candidate (one weight row each), so a decision is one
``(models x features)`` matrix-vector product — microseconds, on the request path of the
gateway. Features: the MiniLM embedding of the prompt's first ``embedding_max_tokens``
tokens, then (``text_features``) the cheap text features of :mod:`.features`, and
(``word_weights``) a hashed bag of the prompt's words, kept as its own sparse block: a
prompt touches only the few hundred buckets of its words.

Two routing rules, both read by the gateway's selection (``selection._by_router``):

* ``confidence`` — escalate past a candidate whose P(correct) is below ``threshold``;
* ``gain`` — escalate from a candidate to a stronger one when the expected gain
  P(stronger correct) - P(candidate correct) is above ``threshold`` (in [-1, 1]).

The artifact is a ``.npz`` document without pickles (arrays + JSON metadata): loading a
router never runs code from the database.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from llmproxy.optimizer.router.features import (
    TEXT_FEATURES,
    WORD_BUCKETS,
    text_features_many,
    word_buckets,
    words_matrix,
)
from llmproxy.platform.embeddings import MAX_TOKENS
from llmproxy.platform.errors import InvalidArgumentError

__all__ = [
    "ARTIFACT_FORMAT",
    "ROUTING_MAX_TOKENS",
    "RULES",
    "Router",
    "check_threshold",
    "escalation_key",
    "threshold_of_cut",
]

ARTIFACT_FORMAT = "llmproxy-router-logistic/3"
_READABLE = ("llmproxy-router-logistic/1", "llmproxy-router-logistic/2", ARTIFACT_FORMAT)
#: the prompt head a router embeds: 12 tokens keep the MiniLM call ~3.2 ms on one core
#: (16 took ~4.3 ms; on held-out MMLU domains 12 saved 48.8% of strong calls as deployed
#: against 48.1% with 16, 49.6% against 50.0% at the oracle cut: bench/router/README.md)
ROUTING_MAX_TOKENS = 12
RULES = ("confidence", "gain")

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Router:
    """One version of the router.

    ``candidate_models`` are catalog model names ordered cheapest first; the cascade tries
    them in that order and escalates while the predicted probability of a correct answer
    is below ``threshold``.
    """

    version: str
    candidate_models: tuple[str, ...]
    #: ``(len(candidate_models), dimensions)`` logistic weights
    weights: npt.NDArray[np.float64]
    #: ``(len(candidate_models),)`` intercepts
    bias: npt.NDArray[np.float64]
    #: escalate past a model whose predicted quality is below this
    threshold: float
    #: the embedding space the weights were fit in (vectors of another model are meaningless)
    embedding_model: str
    #: the domains / sources the router was fit on (kept with it for audits)
    trained_on: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: which dataset model stood in for each candidate during training
    label_sources: Mapping[str, str] = field(default_factory=dict)
    #: "confidence" or "gain" (see the module's doc)
    rule: str = "confidence"
    #: the features after the embedding include :data:`TEXT_FEATURES`
    text_features: bool = False
    #: the embedding was of the prompt's first this-many tokens
    embedding_max_tokens: int = MAX_TOKENS
    #: ``(len(candidate_models), WORD_BUCKETS)`` weights of the hashed words, or None
    word_weights: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = len(self.candidate_models)
        if n == 0:
            raise InvalidArgumentError("a router needs at least one candidate model")
        if len(set(self.candidate_models)) != n:
            raise InvalidArgumentError(f"duplicate candidate models: {self.candidate_models}")
        if self.weights.ndim != 2 or self.weights.shape[0] != n or self.bias.shape != (n,):
            raise InvalidArgumentError(
                f"router weights {self.weights.shape} / bias {self.bias.shape} do not match "
                f"{n} candidate models"
            )
        check_threshold(self.threshold, self.rule)
        extra = len(TEXT_FEATURES) if self.text_features else 0
        if self.weights.shape[1] <= extra:
            raise InvalidArgumentError(f"router weights {self.weights.shape} have no embedding")
        if self.word_weights is not None and self.word_weights.shape != (n, WORD_BUCKETS):
            raise InvalidArgumentError(
                f"router word weights {self.word_weights.shape} do not match ({n}, {WORD_BUCKETS})"
            )

    @property
    def dimensions(self) -> int:
        """Length of the embedding part of the features."""
        return int(self.weights.shape[1]) - (len(TEXT_FEATURES) if self.text_features else 0)

    @property
    def uses_embedding(self) -> bool:
        """False when every embedding weight is zero: the prompt need not be embedded."""
        return bool(np.any(self.weights[:, : self.dimensions]))

    def features(
        self, vectors: npt.NDArray[np.floating[Any]], prompts: Sequence[str] = ()
    ) -> npt.NDArray[np.float64]:
        if vectors.ndim != 2 or vectors.shape[1] != self.dimensions:
            raise InvalidArgumentError(
                f"expected vectors of {self.dimensions} dimensions, got shape {vectors.shape}"
            )
        if not self.text_features:
            return vectors.astype(np.float64)
        if len(prompts) != vectors.shape[0]:
            raise InvalidArgumentError("this router reads the prompts' text: pass the prompts")
        return np.hstack([vectors.astype(np.float64), text_features_many(prompts)])

    def predict_many(
        self, vectors: npt.NDArray[np.floating[Any]], prompts: Sequence[str] = ()
    ) -> npt.NDArray[np.float64]:
        """``(n, len(candidate_models))`` probabilities of a correct answer."""
        logits = self.features(vectors, prompts) @ self.weights.T + self.bias
        if self.word_weights is not None:
            if len(prompts) != vectors.shape[0]:
                raise InvalidArgumentError("this router reads the prompts' words: pass the prompts")
            logits += self._word_logits(prompts, self.word_weights)
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))

    @staticmethod
    def _word_logits(
        prompts: Sequence[str], word_weights: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        if len(prompts) == 1:  # the gateway's case: skip building a sparse matrix
            buckets = word_buckets(prompts[0])
            if not len(buckets):
                return np.zeros((1, word_weights.shape[0]))
            return (word_weights[:, buckets].sum(axis=1) / np.sqrt(len(buckets)))[None, :]
        return np.asarray(words_matrix(prompts) @ word_weights.T)

    def predict(self, vector: npt.NDArray[np.floating[Any]], prompt: str = "") -> dict[str, float]:
        """Candidate model -> probability it answers this prompt correctly."""
        row = self.predict_many(np.asarray(vector).reshape(1, -1), [prompt])[0]
        return {m: float(p) for m, p in zip(self.candidate_models, row, strict=True)}

    def with_threshold(self, threshold: float) -> Router:
        return replace(self, threshold=threshold)

    # -- artifact --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        meta = {
            "format": ARTIFACT_FORMAT,
            "version": self.version,
            "candidate_models": list(self.candidate_models),
            "threshold": self.threshold,
            "embedding_model": self.embedding_model,
            "trained_on": list(self.trained_on),
            "metrics": dict(self.metrics),
            "label_sources": dict(self.label_sources),
            "rule": self.rule,
            "text_features": list(TEXT_FEATURES) if self.text_features else [],
            "embedding_max_tokens": self.embedding_max_tokens,
            "word_buckets": WORD_BUCKETS if self.word_weights is not None else 0,
        }
        # the word weights as float32: half the bytes, ample precision
        words = self.word_weights.astype(np.float32) if self.word_weights is not None else None
        extra = {} if words is None else {"word_weights": words}
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            weights=self.weights,
            bias=self.bias,
            meta=np.array(json.dumps(meta)),
            **extra,  # type: ignore[arg-type]
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Router:
        """Read an artifact; InvalidArgumentError when it is not one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = json.loads(str(archive["meta"]))
                weights = np.array(archive["weights"], dtype=np.float64)
                bias = np.array(archive["bias"], dtype=np.float64)
                words = (
                    np.array(archive["word_weights"], dtype=np.float64)
                    if "word_weights" in archive.files
                    else None
                )
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidArgumentError(f"not a router artifact: {exc}") from exc
        if meta.get("format") not in _READABLE:
            raise InvalidArgumentError(f"unknown router artifact format {meta.get('format')!r}")
        names = meta.get("text_features", [])
        if names and tuple(names) != TEXT_FEATURES:
            raise InvalidArgumentError("router artifact has text features this build lacks")
        if int(meta.get("word_buckets", 0)) not in (0, WORD_BUCKETS) or (
            bool(meta.get("word_buckets", 0)) != (words is not None)
        ):
            raise InvalidArgumentError("router artifact has word buckets this build lacks")
        return cls(
            version=meta["version"],
            candidate_models=tuple(meta["candidate_models"]),
            weights=weights,
            bias=bias,
            threshold=float(meta["threshold"]),
            embedding_model=meta["embedding_model"],
            trained_on=tuple(meta.get("trained_on", ())),
            metrics={k: float(v) for k, v in meta.get("metrics", {}).items()},
            label_sources=dict(meta.get("label_sources", {})),
            rule=meta.get("rule", "confidence"),
            text_features=bool(names),
            embedding_max_tokens=int(meta.get("embedding_max_tokens", MAX_TOKENS)),
            word_weights=words,
        )


def check_threshold(threshold: float, rule: str) -> None:
    """InvalidArgumentError unless ``threshold`` fits ``rule`` ([0, 1], or [-1, 1] for gain)."""
    if rule not in RULES:
        raise InvalidArgumentError(f"unknown routing rule {rule!r}; use one of {RULES}")
    low = -1.0 if rule == "gain" else 0.0
    if not low <= threshold <= 1.0:
        raise InvalidArgumentError(
            f"threshold must be within [{low:g}, 1] for the {rule} rule, got {threshold}",
            field="threshold",
        )


def escalation_key(probabilities: npt.NDArray[np.float64], rule: str) -> npt.NDArray[np.float64]:
    """Per prompt of a (cheap, strong) router: the lower, the sooner it is escalated.

    ``confidence``: P(cheap correct), escalated when below the threshold; ``gain``:
    P(cheap) - P(strong), escalated when P(strong) - P(cheap) > threshold. A cut of the
    prompts sorted by this key is a threshold of the rule (:func:`threshold_of_cut`).
    """
    if rule == "gain":
        return probabilities[:, 0] - probabilities[:, 1]
    return probabilities[:, 0]


def threshold_of_cut(key_threshold: float, rule: str) -> float:
    """The rule's threshold that escalates exactly the prompts with key < ``key_threshold``."""
    return -key_threshold if rule == "gain" else key_threshold
