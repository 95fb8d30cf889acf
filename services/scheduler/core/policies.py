"""Scheduling policies: pure functions from the active jobs' columns to GPU allocations.

Every policy sees the active jobs as numpy columns in submission order (:class:`ActiveJobs`) and
returns one allocation per job, never above its demand, summing to at most the capacity. The
allocation functions are written over plain numpy operations so that they also run on ``object``
arrays of :class:`fractions.Fraction` (the hand-checked tests use exact arithmetic).

Semantics follow the PCS artifact (github.com/abdullahfsm/PCS, osdi2024-artifact,
``simulation/*Scheduler.py``) read for linear scaling; each class says where it departs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .model import ConfigError, WfqConfig
from .waiting import WaitingRule

__all__ = [
    "POLICY_NAMES",
    "ActiveJobs",
    "Afs",
    "Fifo",
    "Las",
    "MaxMinFair",
    "Policy",
    "Srsf",
    "ThemisLike",
    "WfqPcs",
    "fill_in_order",
    "make_policy",
    "max_min_fair",
    "themis_greedy",
    "themis_greedy_reference",
    "weighted_water_fill",
]


class ActiveJobs:
    """The active jobs as columns, in submission order. Sizes are *believed* values
    (estimates), the only thing a real scheduler can know. Columns a policy never reads are
    never computed (``attained``, ``contention``)."""

    __slots__ = (
        "_attained",
        "_contention",
        "arrival",
        "demand",
        "job_class",
        "now",
        "remaining",
        "size",
    )

    def __init__(
        self,
        *,
        now: float,
        arrival: np.ndarray,
        size: np.ndarray,
        remaining: np.ndarray,
        demand: np.ndarray,
        job_class: np.ndarray,
        attained: np.ndarray | Callable[[], np.ndarray],
        contention: np.ndarray | Callable[[], np.ndarray],
    ) -> None:
        #: decision time, seconds
        self.now = now
        #: submission times
        self.arrival = arrival
        #: believed total size, GPU-seconds
        self.size = size
        #: believed remaining work, GPU-seconds
        self.remaining = remaining
        #: demand caps, GPUs
        self.demand = demand
        #: class index given at submission (0 for class-less policies)
        self.job_class = job_class
        self._attained = attained
        self._contention = contention

    @property
    def attained(self) -> np.ndarray:
        """Work done so far (attained service), GPU-seconds."""
        if callable(self._attained):
            self._attained = self._attained()
        return self._attained

    @property
    def contention(self) -> np.ndarray:
        """Average number of active jobs each job has seen at scheduling events."""
        if callable(self._contention):
            self._contention = self._contention()
        return self._contention

    def __len__(self) -> int:
        return len(self.demand)


@runtime_checkable
class Policy(Protocol):
    """What the core needs from a policy."""

    #: registry name, as given to :func:`make_policy`
    name: str
    #: seconds between forced re-decisions with no arrival or completion (None: only at events)
    reallocation_interval: float | None
    #: True when, with no arrivals, a job that holds its whole demand keeps it until it
    #: completes (departures only ever give a job more); lets the predictor stop early
    keeps_full_demand: bool

    def job_class(self, believed_size: float) -> int:
        """Class of a job, fixed at submission."""
        ...

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        """GPUs for each active job (same order as ``jobs``)."""
        ...


def fill_in_order(demand: np.ndarray, order: np.ndarray | None, capacity: Any) -> np.ndarray:
    """Strict priority: jobs in ``order`` (None: as given) each take min(demand, what is left)."""
    ranked = demand if order is None else demand[order]
    before = np.cumsum(ranked) - ranked
    left = capacity - before
    taken = np.minimum(ranked, np.maximum(left, ranked * 0))
    if order is None:
        return taken
    out = np.empty_like(taken)
    out[order] = taken
    return out


def weighted_water_fill(demands: Sequence[Any], weights: Sequence[Any], capacity: Any) -> list[Any]:
    """Weighted max-min fair split of ``capacity`` over entities with demand caps.

    Entities whose weighted share exceeds their demand get their demand; what they leave is
    shared by the others in proportion to their weights, repeatedly (water-filling). Entities
    with zero demand get nothing. Exact for Fraction inputs.
    """
    given = [d * 0 for d in demands]
    open_ = [i for i, d in enumerate(demands) if d > 0]
    left = capacity
    while open_ and left > 0:
        total_weight = sum(weights[i] for i in open_)
        saturated = [i for i in open_ if demands[i] - given[i] <= left * weights[i] / total_weight]
        if not saturated:
            for i in open_:
                given[i] += left * weights[i] / total_weight
            break
        for i in saturated:
            left -= demands[i] - given[i]
            given[i] = demands[i]
        open_ = [i for i in open_ if i not in saturated]
    return given


def max_min_fair(demand: np.ndarray, capacity: Any) -> np.ndarray:
    """Equal shares with demand caps, what capped jobs leave going to the others."""
    n = len(demand)
    if n == 0:
        return demand.copy()
    total = demand.sum()
    if total <= capacity:
        return demand.copy()
    order = np.argsort(demand, kind="stable")
    ranked = demand[order]
    smaller = np.cumsum(ranked) - ranked
    remaining_jobs = np.arange(n, 0, -1)
    levels = (capacity - smaller) / remaining_jobs
    # the first job whose demand exceeds the level set by everyone smaller fixes the level
    over = np.flatnonzero(ranked > levels)
    level = levels[over[0]]
    return np.minimum(demand, np.maximum(demand * 0 + level, demand * 0))


class _NoClasses:
    reallocation_interval: float | None = None
    keeps_full_demand = False
    # optional policy attribute (not in the Protocol): class weights when the policy is
    # "weighted water-fill over classes, FIFO with demand caps inside each", which the
    # predictor replays by queue heads only; None: the straightforward replay
    fifo_class_weights: tuple[float, ...] | None = None
    # optional policy attribute (not in the Protocol): when a waiting job is sure to get
    # nothing (the core then keeps it out of its decisions); None: every job is decided
    waiting_rule: WaitingRule | None = None
    # optional policy attribute (not in the Protocol): True when the policy is max-min fair
    # sharing with demand caps, which the predictor replays by the fair level only
    max_min_shares = False

    def job_class(self, believed_size: float) -> int:
        return 0


class Fifo(_NoClasses):
    """First come, first served with demand caps (artifact: ``AppPrioScheduler`` by submit time)."""

    name = "fifo"
    # the jobs ahead of a job only ever leave
    keeps_full_demand = True
    # one class with all the GPUs: the predictor's queue-head replay applies
    fifo_class_weights = (1.0,)
    waiting_rule = WaitingRule("submission")

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        return fill_in_order(jobs.demand, None, capacity)


class Srsf(_NoClasses):
    """Shortest remaining service first (Tiresias-like): priority to the least believed
    remaining GPU-seconds; ties in submission order. Under linear scaling this is the
    artifact's ``demand * remaining / thrpt(demand)``."""

    name = "srsf"
    waiting_rule = WaitingRule("remaining")

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        return fill_in_order(jobs.demand, np.argsort(jobs.remaining, kind="stable"), capacity)


class Las(_NoClasses):
    """Least attained service first; ties in submission order."""

    name = "las"
    waiting_rule = WaitingRule("attained")

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        return fill_in_order(jobs.demand, np.argsort(jobs.attained, kind="stable"), capacity)


class MaxMinFair(_NoClasses):
    """Max-min fair share of the GPUs with demand caps (fluid)."""

    name = "maxmin"
    max_min_shares = True
    # the fair level only rises when jobs leave
    keeps_full_demand = True

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        return max_min_fair(jobs.demand, capacity)


class Afs(_NoClasses):
    """AFS (Hwang et al., NSDI'21), the artifact's ``alg_c_concept`` read for linear scaling.

    It hands out whole GPUs one at a time; under linear speed-up its pairwise rule always
    prefers the job with fewer GPUs, and among equals the one with less believed remaining
    work. So: whole-GPU max-min fair shares, the odd GPUs going to the shortest jobs; when
    there are more jobs than GPUs, the shortest jobs get one GPU each.
    """

    name = "afs"
    waiting_rule = WaitingRule("remaining", one_gpu_each=True)

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        demand = jobs.demand
        if len(demand) == 0 or demand.sum() <= capacity:
            return demand.copy()
        gpus = math.floor(capacity)
        level_fluid = max_min_fair(demand, capacity).max()
        level = math.floor(level_fluid)
        alloc = np.minimum(demand, demand * 0 + level)
        spare = gpus - round(float(alloc.sum()))
        if spare > 0:
            order = np.argsort(jobs.remaining, kind="stable")
            eligible = order[demand[order] > level][:spare]
            # a job never gets more than its demand (a fractional demand below the next GPU)
            alloc[eligible] = np.minimum(alloc[eligible] + 1, demand[eligible])
        return alloc


class ThemisLike(_NoClasses):
    """Finish-time fairness (Themis-like), as the artifact's ``AppThemisScheduler``.

    Every ``quantum`` seconds and at each arrival or completion, GPUs go greedily to the job
    with the worst finish-time fairness ``rho = t_shared / t_ideal``, each taking
    min(demand, what is left): ``t_shared = age + remaining / gpus_it_would_get`` and
    ``t_ideal = size / min(capacity / average contention, demand)``.
    """

    name = "themis"

    def __init__(self, quantum: float = 600.0) -> None:
        if not quantum > 0:
            raise ConfigError("quantum", f"must be > 0, got {quantum!r}")
        self.reallocation_interval = float(quantum)

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        if jobs.demand.dtype != np.float64:
            return themis_greedy_reference(jobs, capacity)
        return themis_greedy(jobs, capacity)


def _themis_columns(jobs: ActiveJobs, capacity: Any) -> tuple[Any, Any]:
    fair_gpus = np.minimum(capacity / jobs.contention, jobs.demand)
    return jobs.size / fair_gpus, jobs.now - jobs.arrival


def themis_greedy_reference(jobs: ActiveJobs, capacity: Any) -> np.ndarray:
    """Themis-like greedy allocation, literally: one pass over every job per job served
    (O(GPUs x jobs)); exact on Fraction columns. :func:`themis_greedy` is the fast form."""
    demand = jobs.demand
    alloc = demand * 0
    left = min(demand.sum(), capacity)
    if len(demand) == 0:
        return alloc
    t_ideal, age = _themis_columns(jobs, capacity)
    open_ = np.ones(len(demand), dtype=bool)
    while left > 0 and open_.any():
        could_get = np.minimum(demand, left)
        rho = (age + jobs.remaining / could_get) / t_ideal
        rho = np.where(open_, rho, -np.inf)
        top = int(np.argmax(rho))
        alloc[top] = could_get[top]
        left -= could_get[top]
        open_[top] = False
    return alloc


#: jobs the fast Themis-like greedy ranks up front (more only when it walks past them)
_THEMIS_TOP = 256


def themis_greedy(jobs: ActiveJobs, capacity: Any) -> np.ndarray:
    """The same allocation as :func:`themis_greedy_reference` (float columns), in
    O(jobs + served x log jobs) instead of a pass over every job per job served.

    A job whose demand fits in what is left would take its whole demand, so its rho is fixed
    (``rho_full``): the best of those is the first of a ranking by rho_full that is computed
    once. A job whose demand exceeds what is left would take all of it (and end the pass);
    its rho depends on what is left, and what is left only shrinks, so those jobs are a
    growing suffix of the jobs sorted by demand, evaluated afresh at each step. Ties go to
    the lowest index, as ``argmax`` does in the reference."""
    demand = jobs.demand
    n = len(demand)
    alloc = np.zeros(n)
    left = min(demand.sum(), capacity)
    if n == 0:
        return alloc
    t_ideal, age = _themis_columns(jobs, capacity)
    remaining = jobs.remaining
    rho_full = (age + remaining / demand) / t_ideal
    if n > _THEMIS_TOP:
        kth = np.partition(rho_full, n - _THEMIS_TOP)[n - _THEMIS_TOP]
        ranked = np.flatnonzero(rho_full >= kth)
        ranked = ranked[np.argsort(-rho_full[ranked], kind="stable")]
    else:
        ranked = np.argsort(-rho_full, kind="stable")
    complete = len(ranked) == n
    ranked_list = ranked.tolist()
    fits = demand[ranked].tolist()
    largest = float(demand.max())
    ptr = 0
    while left > 0:
        # the best job that fits: the first ranked one whose demand fits (a job passed over
        # because it did not fit never fits again); every earlier ranked one is served
        while True:
            if ptr == len(ranked_list) and not complete:
                ranked_list = np.argsort(-rho_full, kind="stable").tolist()
                fits = demand[ranked_list].tolist()
                complete = True
            if ptr == len(ranked_list) or fits[ptr] <= left:
                break
            ptr += 1
        fit = ranked_list[ptr] if ptr < len(ranked_list) else -1
        # the best job that does not fit (it would take all that is left)
        over, over_rho = -1, -math.inf
        if left < largest:
            cand = np.flatnonzero((demand > left) & (alloc == 0))
            if len(cand):
                rho_over = (age[cand] + remaining[cand] / left) / t_ideal[cand]
                best = rho_over.max()
                over = int(cand[np.flatnonzero(rho_over == best)[0]])
                over_rho = float(best)
        if fit < 0 and over < 0:
            break
        fit_rho = float(rho_full[fit]) if fit >= 0 else -math.inf
        if over >= 0 and (fit < 0 or over_rho > fit_rho or (over_rho == fit_rho and over < fit)):
            alloc[over] = left
            break
        alloc[fit] = demand[fit]
        left -= demand[fit]
        ptr += 1
    return alloc


class WfqPcs:
    """WFQ-PCS: weighted fair queueing over size classes (the artifact's ``AppMCScheduler``).

    A job's class is the first threshold >= its estimated size at submission. Classes split the
    GPUs by weight; a class never takes more than its jobs' total demand and what it cannot use
    goes to the other classes in weight proportion (water-filling, work-conserving). Inside a
    class jobs are served first come first served, each capped at its demand. The artifact's
    GPU-clipping (``clip_demand_factor``/``delta``) only lowers a demand when an extra GPU
    speeds a job up by less than the factor; under linear scaling it never does, so it is inert.
    """

    name = "wfq"
    reallocation_interval: float | None = None
    # departures only raise the other classes' shares and shrink the queue ahead in a class
    keeps_full_demand = True
    waiting_rule = WaitingRule("submission", per_class=True)

    def __init__(self, config: WfqConfig | None = None) -> None:
        self.config = config or WfqConfig.single_class()
        self._weights: tuple[Fraction, ...] = self.config.weights
        self._float_weights = [float(w) for w in self._weights]
        #: weighted classes, FIFO inside each: the predictor's queue-head replay applies
        self.fifo_class_weights: tuple[float, ...] = tuple(self._float_weights)

    def job_class(self, believed_size: float) -> int:
        return self.config.class_of(believed_size)

    def class_shares(self, class_demand: Sequence[Any], capacity: Any) -> list[Any]:
        exact = isinstance(capacity, Fraction)
        weights: Sequence[Any] = self._weights if exact else self._float_weights
        return weighted_water_fill(class_demand, weights, capacity)

    def allocate(self, jobs: ActiveJobs, capacity: Any) -> np.ndarray:
        demand = jobs.demand
        classes = self.config.num_classes
        if classes == 1:
            return fill_in_order(demand, None, capacity)
        # one row per class: the demand of that class's jobs, running sums in submission order
        member = jobs.job_class[None, :] == np.arange(classes)[:, None]
        queued = np.cumsum(np.where(member, demand[None, :], demand * 0), axis=1)
        class_demand = queued[:, -1].tolist() if len(demand) else [0] * classes
        shares = np.array(self.class_shares(class_demand, capacity), dtype=demand.dtype)
        ahead = queued[jobs.job_class, np.arange(len(demand))] - demand
        return np.minimum(demand, np.maximum(shares[jobs.job_class] - ahead, demand * 0))


#: every name :func:`make_policy` knows
POLICY_NAMES = ("fifo", "srsf", "las", "afs", "themis", "maxmin", "wfq")


def make_policy(name: str, **params: Any) -> Policy:
    """Build a policy by name. ``wfq`` takes ``config`` (a :class:`WfqConfig` or a mapping);
    ``themis`` takes ``quantum`` (seconds, default 600 as in the artifact's trace runs)."""
    key = name.strip().lower()
    aliases = {"tiresias": "srsf", "pcs": "wfq", "wfq-pcs": "wfq", "fair": "maxmin", "fs": "maxmin"}
    key = aliases.get(key, key)
    if key == "wfq":
        config = params.pop("config", None)
        if config is not None and not isinstance(config, WfqConfig):
            config = WfqConfig.from_mapping(config)
        policy: Policy = WfqPcs(config)
    elif key == "themis":
        policy = ThemisLike(**params)
        params = {}
    elif key in {"fifo", "srsf", "las", "afs", "maxmin"}:
        classes: dict[str, type[Policy]] = {
            "fifo": Fifo,
            "srsf": Srsf,
            "las": Las,
            "afs": Afs,
            "maxmin": MaxMinFair,
        }
        policy = classes[key]()
    else:
        raise ConfigError("policy", f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}")
    if params:
        raise ConfigError("policy", f"{key} takes no parameters {sorted(params)}")
    return policy
