"""Pure core of the PCS Pareto search: search space, objectives, workloads, the NSGA-II /
random ask-tell loop, fronts and presets, and the scoring of one candidate by simulation."""

from .front import PRED_JCT_SLACK, PRESETS, hypervolume, non_dominated, presets
from .objectives import DEFAULT_OBJECTIVES, OBJECTIVES, ObjectiveError, parse_objectives
from .search import ALGORITHMS, Budget, BudgetError, Nsga2Settings, Optimizer, make_optimizer
from .space import MAX_CLASSES, SPACES, Candidate, SearchSpace, canonical_candidate
from .workload import WorkloadError, WorkloadSpec, load_jobs

__all__ = [
    "ALGORITHMS",
    "DEFAULT_OBJECTIVES",
    "MAX_CLASSES",
    "OBJECTIVES",
    "PRED_JCT_SLACK",
    "PRESETS",
    "SPACES",
    "Budget",
    "BudgetError",
    "Candidate",
    "Nsga2Settings",
    "ObjectiveError",
    "Optimizer",
    "SearchSpace",
    "WorkloadError",
    "WorkloadSpec",
    "canonical_candidate",
    "hypervolume",
    "load_jobs",
    "make_optimizer",
    "non_dominated",
    "parse_objectives",
    "presets",
]
