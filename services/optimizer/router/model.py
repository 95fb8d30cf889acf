"""A trained router: prompt embedding in, per-model probability of a correct answer out.

Pure and small: a logistic model per candidate (one weight row each), so a decision is one
``(models x 384)`` matrix-vector product — microseconds, on the request path of the gateway.
The artifact is a ``.npz`` document without pickles (arrays + JSON metadata): loading a
router never runs code from the database.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from llmproxy.platform.errors import InvalidArgumentError

__all__ = ["ARTIFACT_FORMAT", "Router"]

ARTIFACT_FORMAT = "llmproxy-router-logistic/1"

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
        if not 0.0 <= self.threshold <= 1.0:
            raise InvalidArgumentError(
                f"threshold must be within [0, 1], got {self.threshold}", field="threshold"
            )

    @property
    def dimensions(self) -> int:
        return int(self.weights.shape[1])

    def predict_many(self, vectors: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        """``(n, len(candidate_models))`` probabilities of a correct answer."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dimensions:
            raise InvalidArgumentError(
                f"expected vectors of {self.dimensions} dimensions, got shape {vectors.shape}"
            )
        logits = vectors.astype(np.float64) @ self.weights.T + self.bias
        return 1.0 / (1.0 + np.exp(-logits))

    def predict(self, vector: npt.NDArray[np.floating[Any]]) -> dict[str, float]:
        """Candidate model -> probability it answers this prompt correctly."""
        row = self.predict_many(np.asarray(vector).reshape(1, -1))[0]
        return {m: float(p) for m, p in zip(self.candidate_models, row, strict=True)}

    def with_threshold(self, threshold: float) -> Router:
        return Router(
            version=self.version,
            candidate_models=self.candidate_models,
            weights=self.weights,
            bias=self.bias,
            threshold=threshold,
            embedding_model=self.embedding_model,
            trained_on=self.trained_on,
            metrics=self.metrics,
            label_sources=self.label_sources,
        )

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
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, weights=self.weights, bias=self.bias, meta=np.array(json.dumps(meta))
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
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidArgumentError(f"not a router artifact: {exc}") from exc
        if meta.get("format") != ARTIFACT_FORMAT:
            raise InvalidArgumentError(f"unknown router artifact format {meta.get('format')!r}")
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
        )
