"""The search loop as ask/tell: no I/O, no evaluation. A driver asks for a batch of
candidates, gets their metrics scored somewhere (a process pool, optimizer replicas, a
store of earlier results) and tells them back.

NSGA-II is pymoo's; random search (the benchmark's baseline) samples the same unit cube.
Both are deterministic for a seed: the same seed and the same metrics give the same
candidates, which is what makes a stopped search resumable (the re-run asks the same
candidates, and the store answers the ones already scored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .objectives import objective_values
from .space import Candidate, SearchSpace

__all__ = ["ALGORITHMS", "Budget", "BudgetError", "Nsga2Settings", "Optimizer", "make_optimizer"]

ALGORITHMS = ("nsga2", "random")


class BudgetError(ValueError):
    """A population or generation count out of range."""


@dataclass(frozen=True, slots=True)
class Budget:
    """How many candidates a search scores: ``population`` per generation."""

    population: int = 24
    generations: int = 10

    def __post_init__(self) -> None:
        if not 4 <= self.population <= 500:
            raise BudgetError(f"population must be in 4..500, got {self.population}")
        if not 1 <= self.generations <= 200:
            raise BudgetError(f"generations must be in 1..200, got {self.generations}")

    @property
    def evaluations(self) -> int:
        return self.population * self.generations


class Optimizer:
    """Ask/tell over a :class:`SearchSpace`; subclasses choose the candidates."""

    def __init__(self, space: SearchSpace, objectives: Sequence[str], budget: Budget, seed: int):
        self.space = space
        self.objectives = tuple(objectives)
        self.budget = budget
        self.seed = seed
        self.generation = 0

    @property
    def done(self) -> bool:
        return self.generation >= self.budget.generations

    def ask(self) -> list[Candidate]:
        raise NotImplementedError

    def tell(self, metrics: Sequence[Mapping[str, float]]) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Nsga2Settings:
    """How NSGA-II is set up (the defaults are what the benchmark measured).

    * ``sampling``: the first generation; ``lhs`` is a Latin hypercube (maximin of a few
      draws), so each knob, the class count included, is spread evenly over its range
      rather than left to uniform luck; ``random`` is pymoo's uniform sampling.
    * ``distinct``: offspring whose *decoded* configuration was asked before (in this
      search) or twice in one generation are redrawn. Many unit-cube points decode to one
      configuration (e.g. every spread for a single class), and a repeat costs a slot of
      the budget while teaching nothing.
    * ``crossover_eta`` / ``mutation_eta``: SBX and polynomial-mutation distribution
      indices (lower: children further from their parents).
    """

    sampling: str = "lhs"
    distinct: bool = True
    crossover_eta: float = 15.0
    mutation_eta: float = 20.0


def _config_duplicates(space: SearchSpace) -> Any:
    """pymoo duplicate elimination on decoded configurations, against everything the search
    asked before too (an archive filled by :meth:`Nsga2Search.tell`)."""
    from pymoo.core.duplicate import DuplicateElimination

    class ConfigDuplicates(DuplicateElimination):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.asked: set[str] = set()

        def _do(self, pop: Any, other: Any, is_duplicate: np.ndarray) -> np.ndarray:
            seen = set(self.asked)
            if other is not None:
                seen.update(space.decode(x).config_hash for x in other.get("X"))
            for i, x in enumerate(pop.get("X")):
                key = space.decode(x).config_hash
                if key in seen:
                    is_duplicate[i] = True
                else:
                    seen.add(key)
            return is_duplicate

    return ConfigDuplicates()


class Nsga2Search(Optimizer):
    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[str],
        budget: Budget,
        seed: int,
        settings: Nsga2Settings | None = None,
    ):
        super().__init__(space, objectives, budget, seed)
        self.settings = settings = settings or Nsga2Settings()
        # pymoo is imported here, not at module level: the CLI and the service start without
        # paying for it until a search runs
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.sampling.lhs import LHS
        from pymoo.operators.sampling.rnd import FloatRandomSampling

        if settings.sampling not in ("lhs", "random"):
            raise ValueError(f"sampling {settings.sampling!r} is not lhs or random")
        self._problem = Problem(n_var=space.dimensions, n_obj=len(self.objectives), xl=0.0, xu=1.0)
        self._duplicates = _config_duplicates(space) if settings.distinct else None
        self._algorithm = NSGA2(
            pop_size=budget.population,
            sampling=LHS() if settings.sampling == "lhs" else FloatRandomSampling(),
            crossover=SBX(eta=settings.crossover_eta, prob=0.9),
            mutation=PM(eta=settings.mutation_eta),
            eliminate_duplicates=self._duplicates or True,
        )
        self._algorithm.setup(
            self._problem, termination=("n_gen", budget.generations), seed=seed, verbose=False
        )
        self._pending: Any = None

    def ask(self) -> list[Candidate]:
        if self.done:
            return []
        self._pending = self._algorithm.ask()
        return [self.space.decode(x) for x in self._pending.get("X")]

    def tell(self, metrics: Sequence[Mapping[str, float]]) -> None:
        if self._pending is None:
            raise RuntimeError("tell() without ask()")
        F = np.array([objective_values(m, self.objectives) for m in metrics], dtype=float)
        # NSGA-II ranks on order only; log scale keeps crowding distances meaningful
        # when an objective spans decades (JCT, error), +1 keeps zeros finite; a failed
        # evaluation (inf) gets the worst value any objective can have here
        F = np.log10(1.0 + np.minimum(F, 1e300))
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        if self._duplicates is not None:
            self._duplicates.asked.update(
                self.space.decode(x).config_hash for x in self._pending.get("X")
            )
        Evaluator().eval(StaticProblem(self._problem, F=F), self._pending)
        self._algorithm.tell(infills=self._pending)
        self._pending = None
        self.generation += 1


class RandomSearch(Optimizer):
    def __init__(self, space: SearchSpace, objectives: Sequence[str], budget: Budget, seed: int):
        super().__init__(space, objectives, budget, seed)
        self._rng = np.random.default_rng(seed)

    def ask(self) -> list[Candidate]:
        if self.done:
            return []
        x = self._rng.random((self.budget.population, self.space.dimensions))
        return [self.space.decode(row) for row in x]

    def tell(self, metrics: Sequence[Mapping[str, float]]) -> None:
        self.generation += 1


def make_optimizer(
    algorithm: str, space: SearchSpace, objectives: Sequence[str], budget: Budget, seed: int
) -> Optimizer:
    if algorithm == "nsga2":
        return Nsga2Search(space, objectives, budget, seed)
    if algorithm == "random":
        return RandomSearch(space, objectives, budget, seed)
    raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
