"""Job-size estimation: a scikit-learn regressor over job features, trained on job history.

Pure (no I/O): samples in, a fitted :class:`JobSizeModel` out. The target is the log of the
size (sizes span orders of magnitude), learnt by a random forest over one-hot model name and
user plus the log GPU demand. The uncertainty of an estimate combines the spread of the
trees with the model's own out-of-bag residuals, reported as the standard deviation of the
implied log-normal size in seconds. The cross-validated error is measured at fit time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

__all__ = ["JobSizeModel", "JobSizeSample", "NotEnoughHistoryError", "SizeEstimate"]

#: fewer completed jobs than this and no model is fitted
MIN_SAMPLES = 8


class NotEnoughHistoryError(ValueError):
    """Too few completed jobs to learn from."""


@dataclass(frozen=True, slots=True)
class JobSizeSample:
    """One job's features and (for training) its measured size in GPU-seconds."""

    model_name: str
    user: str
    gpu_demand: int
    size: float = 0.0


@dataclass(frozen=True, slots=True)
class SizeEstimate:
    #: estimated size, GPU-seconds (the log-normal's median)
    size: float
    #: standard deviation of the estimate, GPU-seconds
    uncertainty: float


def _rows(samples: Sequence[JobSizeSample]) -> np.ndarray:
    return np.array(
        [[s.model_name, s.user, float(max(s.gpu_demand, 1))] for s in samples], dtype=object
    )


def _log_demand(x: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(x, dtype=float))


def _pipeline(seed: int) -> Pipeline:
    features = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), [0, 1]),
            ("demand", FunctionTransformer(_log_demand), [2]),
        ]
    )
    forest = RandomForestRegressor(
        n_estimators=60, min_samples_leaf=2, oob_score=True, random_state=seed, n_jobs=1
    )
    return Pipeline([("features", features), ("forest", forest)])


class JobSizeModel:
    """A fitted size regressor; :meth:`fit` builds one, :meth:`estimate` uses it."""

    def __init__(self, pipeline: Pipeline, residual_std: float, trained_on: int, error: float):
        self._pipeline = pipeline
        #: out-of-bag residual standard deviation, in log space
        self.residual_std = residual_std
        #: number of jobs learnt from
        self.trained_on = trained_on
        #: cross-validated mean absolute percentage error, 100 * |est - actual| / actual
        self.mean_abs_pct_error = error

    @classmethod
    def fit(cls, samples: Sequence[JobSizeSample], *, seed: int = 0) -> JobSizeModel:
        usable = [s for s in samples if s.size > 0 and math.isfinite(s.size)]
        if len(usable) < MIN_SAMPLES:
            raise NotEnoughHistoryError(
                f"{len(usable)} completed jobs with a measured size; at least {MIN_SAMPLES} "
                "are needed to estimate sizes"
            )
        x = _rows(usable)
        y = np.log(np.array([s.size for s in usable]))
        folds = min(5, len(usable))
        predicted = cross_val_predict(
            _pipeline(seed), x, y, cv=KFold(folds, shuffle=True, random_state=seed)
        )
        error = float(np.mean(np.abs(np.exp(predicted) - np.exp(y)) / np.exp(y)) * 100.0)
        pipeline = _pipeline(seed).fit(x, y)
        forest: RandomForestRegressor = pipeline.named_steps["forest"]
        residual_std = float(np.std(y - forest.oob_prediction_))
        return cls(pipeline, residual_std, len(usable), error)

    def estimate(self, sample: JobSizeSample) -> SizeEstimate:
        x = self._pipeline.named_steps["features"].transform(_rows([sample]))
        forest: RandomForestRegressor = self._pipeline.named_steps["forest"]
        per_tree = np.array([tree.predict(x)[0] for tree in forest.estimators_])
        mean = float(per_tree.mean())
        sigma2 = float(per_tree.var()) + self.residual_std**2
        size = math.exp(mean)
        # standard deviation of a log-normal with median `size` and log-variance sigma2
        uncertainty = size * math.sqrt(math.exp(sigma2) * (math.exp(sigma2) - 1.0))
        return SizeEstimate(size=size, uncertainty=uncertainty)
