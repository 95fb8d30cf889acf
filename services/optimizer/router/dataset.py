"""The labelled routing data: MMLU prompts with, per model, whether it answered correctly.

Reads ``../shared/data/routing/mmlu/`` (lm-sys/RouteLLM, Apache-2.0): one ``mmlu_<domain>.csv``
per domain with a ``prompt`` column and one boolean column per model, plus
``contaminated_prompts.jsonl`` listing prompts that leaked into some router's training data,
which are dropped here. Splits are by **domain** (whole domains held out), never by row, so
a reported number never comes from a domain the router was fit on.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmproxy.platform.errors import ConfigurationError, InvalidArgumentError

__all__ = [
    "CHEAP_MODEL",
    "DEFAULT_DATA_DIR",
    "STRONG_MODEL",
    "RoutingData",
    "domain_folds",
    "load_mmlu",
]

#: ``../shared/data/routing/mmlu`` next to the project checkout
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared/data/routing/mmlu"
CHEAP_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"


@dataclass(frozen=True, slots=True)
class RoutingData:
    """Prompts, their domain, and one correctness column per dataset model."""

    prompts: tuple[str, ...]
    domains: tuple[str, ...]
    #: dataset model name -> bool array aligned with ``prompts``
    correct: dict[str, npt.NDArray[np.bool_]]
    #: prompts dropped because they are listed as contaminated
    excluded_contaminated: int

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.correct)

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, index: npt.NDArray[np.intp]) -> RoutingData:
        return RoutingData(
            prompts=tuple(self.prompts[i] for i in index),
            domains=tuple(self.domains[i] for i in index),
            correct={m: c[index] for m, c in self.correct.items()},
            excluded_contaminated=self.excluded_contaminated,
        )


def _contaminated(directory: Path) -> set[str]:
    path = directory / "contaminated_prompts.jsonl"
    if not path.exists():
        return set()
    found: set[str] = set()
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            # both spellings: the eval prompt is the dataset's, the train prompt its twin
            found.update(_normal(row[k]) for k in ("eval_prompt", "train_prompt") if row.get(k))
    return found


def _normal(text: str) -> str:
    return " ".join(text.split())


def _bool(value: str, where: str) -> bool:
    if value in ("True", "true", "1"):
        return True
    if value in ("False", "false", "0"):
        return False
    raise ConfigurationError(f"{where}: expected True/False, got {value!r}")


def load_mmlu(
    directory: Path = DEFAULT_DATA_DIR,
    *,
    domains: Sequence[str] = (),
    per_domain_limit: int = 0,
) -> RoutingData:
    """Every (or the named) domain's prompts, contaminated prompts excluded.

    ``per_domain_limit`` keeps the first N prompts of each domain (smoke runs).
    Raises ConfigurationError when the directory or a named domain is missing.
    """
    if not directory.is_dir():
        raise ConfigurationError(f"routing data directory {directory} does not exist")
    files = sorted(directory.glob("mmlu_*.csv"))
    available = {f.stem.removeprefix("mmlu_"): f for f in files}
    wanted = list(domains) or sorted(available)
    unknown = [d for d in wanted if d not in available]
    if unknown:
        raise InvalidArgumentError(
            f"unknown domains {unknown}; available: {', '.join(sorted(available))}",
            field="domains",
        )
    contaminated = _contaminated(directory)
    csv.field_size_limit(sys.maxsize)
    prompts: list[str] = []
    names: list[str] = []
    columns: dict[str, list[bool]] = {}
    dropped = 0
    for domain in wanted:
        with available[domain].open(newline="") as file:
            reader = csv.DictReader(file)
            models = [c for c in reader.fieldnames or () if c != "prompt"]
            if not columns:
                columns = {m: [] for m in models}
            elif set(models) != set(columns):
                raise ConfigurationError(f"{available[domain]}: model columns differ: {models}")
            kept = 0
            for number, row in enumerate(reader, start=2):
                if per_domain_limit and kept >= per_domain_limit:
                    break
                if _normal(row["prompt"]) in contaminated:
                    dropped += 1
                    continue
                prompts.append(row["prompt"])
                names.append(domain)
                for model in models:
                    columns[model].append(_bool(row[model], f"{available[domain]}:{number}"))
                kept += 1
    return RoutingData(
        prompts=tuple(prompts),
        domains=tuple(names),
        correct={m: np.array(v, dtype=bool) for m, v in columns.items()},
        excluded_contaminated=dropped,
    )


def domain_folds(domains: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """Partition the distinct domains into ``folds`` groups (seeded shuffle, then round robin).

    Each group is held out once; the others are the training domains of that fold.
    """
    distinct = sorted(set(domains))
    if not 2 <= folds <= len(distinct):
        raise InvalidArgumentError(
            f"folds must be between 2 and {len(distinct)} (the domains), got {folds}",
            field="folds",
        )
    order = np.random.default_rng(seed).permutation(len(distinct))
    groups: list[list[str]] = [[] for _ in range(folds)]
    for position, index in enumerate(order):
        groups[position % folds].append(distinct[index])
    return [sorted(g) for g in groups]
