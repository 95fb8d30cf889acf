"""The in-memory vector index of one replica, partitioned by scope.

A lookup only ever compares a prompt with entries of its own scope (tenant, app, model
class, system prompt, context), so the index is one small index per scope. Each starts as
an exact numpy matrix (a dot product per row; no recall loss) and is promoted to an
inverted-file index (faiss ``IndexIVFFlat``) once it holds ``ann_min_entries`` vectors.
Why IVF, and why that early: see bench/cache/README.md (on the shared 2-core machine a
10k-row matrix product had a 17 ms p99 while IVF answered 100k rows in 0.2 ms at the
median, and an HNSW graph took 73 s to build for 200k rows against 3.2 s for IVF).

Vectors are L2-normalised, so inner product is cosine similarity. Ids are the caller's
non-negative integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["ExactIndex", "IvfIndex", "Neighbour", "ScopedIndex", "VectorIndex"]

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Neighbour:
    id: int
    similarity: float


class VectorIndex(Protocol):
    def add(self, id_: int, vector: Vector) -> None: ...

    def remove(self, id_: int) -> None: ...

    def search(self, vector: Vector, k: int) -> list[Neighbour]: ...

    def __len__(self) -> int: ...

    def vectors(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Every (id, vector) held, for promotion to another index."""
        ...

    def memory_bytes(self) -> int: ...


class ExactIndex:
    """A growable matrix; exact top-k by one matrix-vector product."""

    def __init__(self, dimensions: int, *, capacity: int = 16) -> None:
        self._matrix = np.zeros((capacity, dimensions), dtype=np.float32)
        self._ids = np.full(capacity, -1, dtype=np.int64)
        self._slots: dict[int, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, id_: int, vector: Vector) -> None:
        if id_ in self._slots:
            self._matrix[self._slots[id_]] = vector
            return
        if self._size == len(self._ids):
            grown = max(16, self._size * 2)
            self._matrix = np.resize(self._matrix, (grown, self._matrix.shape[1]))
            self._ids = np.concatenate([self._ids, np.full(grown - self._size, -1, np.int64)])
        self._matrix[self._size] = vector
        self._ids[self._size] = id_
        self._slots[id_] = self._size
        self._size += 1

    def remove(self, id_: int) -> None:
        slot = self._slots.pop(id_, None)
        if slot is None:
            return
        last = self._size - 1
        if slot != last:  # keep rows dense: move the last row into the hole
            moved = int(self._ids[last])
            self._matrix[slot] = self._matrix[last]
            self._ids[slot] = moved
            self._slots[moved] = slot
        self._ids[last] = -1
        self._size = last

    def search(self, vector: Vector, k: int) -> list[Neighbour]:
        if self._size == 0 or k <= 0:
            return []
        scores = self._matrix[: self._size] @ vector
        k = min(k, self._size)
        top = np.argpartition(-scores, k - 1)[:k] if k < self._size else np.arange(self._size)
        top = top[np.argsort(-scores[top])]
        return [Neighbour(int(self._ids[i]), float(scores[i])) for i in top]

    def vectors(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        return self._ids[: self._size].copy(), self._matrix[: self._size].copy()

    def memory_bytes(self) -> int:
        return int(self._matrix.nbytes + self._ids.nbytes)


class IvfIndex:
    """faiss ``IndexIVFFlat`` (inner product): k-means cells, ``probes`` cells searched.

    Trained on the vectors it is built from; a caller rebuilds it when it has grown well
    past them (see :class:`ScopedIndex`).
    """

    def __init__(
        self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], *, probes: int = 16
    ) -> None:
        import faiss  # imported here: small deployments never build one

        dimensions = vectors.shape[1]
        # faiss wants >= 39 training points per cell
        cells = max(1, min(4096, int(4 * math.sqrt(len(ids))), len(ids) // 39))
        self._quantiser = faiss.IndexFlatIP(dimensions)
        self._index: Any = faiss.IndexIVFFlat(
            self._quantiser, dimensions, cells, faiss.METRIC_INNER_PRODUCT
        )
        sample = vectors if len(vectors) <= 64 * cells else vectors[:: len(vectors) // (64 * cells)]
        self._index.train(np.ascontiguousarray(sample, dtype=np.float32))
        self._index.nprobe = min(probes, cells)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._vectors: dict[int, Vector] = dict(zip(ids.tolist(), vectors, strict=True))
        self.trained_on = len(ids)

    def __len__(self) -> int:
        return len(self._vectors)

    def add(self, id_: int, vector: Vector) -> None:
        if id_ in self._vectors:
            self.remove(id_)
        self._index.add_with_ids(vector.reshape(1, -1), np.array([id_], dtype=np.int64))
        self._vectors[id_] = vector

    def remove(self, id_: int) -> None:
        if self._vectors.pop(id_, None) is not None:
            self._index.remove_ids(np.array([id_], dtype=np.int64))

    def search(self, vector: Vector, k: int) -> list[Neighbour]:
        if not self._vectors or k <= 0:
            return []
        scores, ids = self._index.search(vector.reshape(1, -1), k)
        return [
            Neighbour(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0
        ]

    def vectors(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        ids = np.fromiter(self._vectors, dtype=np.int64, count=len(self._vectors))
        if not len(ids):
            return ids, np.zeros((0, self._index.d), dtype=np.float32)
        return ids, np.stack(list(self._vectors.values())).astype(np.float32)

    def memory_bytes(self) -> int:
        # the inverted lists and our copy for rebuilds: two float32 rows per entry
        return 2 * len(self._vectors) * (self._index.d * 4 + 8)


class ScopedIndex:
    """One index per scope digest; exact below ``ann_min_entries``, IVF above."""

    def __init__(self, dimensions: int, *, ann_min_entries: int = 2_000) -> None:
        self._dimensions = dimensions
        self._ann_min = ann_min_entries
        self._scopes: dict[str, VectorIndex] = {}

    def __len__(self) -> int:
        return sum(len(index) for index in self._scopes.values())

    def add(self, scope: str, id_: int, vector: Vector) -> None:
        index = self._scopes.get(scope)
        if index is None:
            index = self._scopes[scope] = ExactIndex(self._dimensions)
        index.add(id_, vector)
        size = len(index)
        if size >= self._ann_min and (
            isinstance(index, ExactIndex)
            or (isinstance(index, IvfIndex) and size >= 2 * index.trained_on)
        ):
            # grown past its training: re-cluster so cells stay balanced
            self._scopes[scope] = IvfIndex(*index.vectors())

    def add_many(self, scope: str, ids: npt.NDArray[np.int64], vectors: Vector) -> None:
        """Bulk load (rebuild at start): one index build instead of one insert per row."""
        if scope in self._scopes or len(ids) < self._ann_min:
            for id_, vector in zip(ids.tolist(), vectors, strict=True):
                self.add(scope, id_, vector)
            return
        self._scopes[scope] = IvfIndex(ids, np.ascontiguousarray(vectors, dtype=np.float32))

    def remove(self, scope: str, id_: int) -> None:
        index = self._scopes.get(scope)
        if index is None:
            return
        index.remove(id_)
        if len(index) == 0:
            del self._scopes[scope]

    def search(self, scope: str, vector: Vector, k: int) -> list[Neighbour]:
        index = self._scopes.get(scope)
        return [] if index is None else index.search(vector, k)

    def scope_size(self, scope: str) -> int:
        index = self._scopes.get(scope)
        return 0 if index is None else len(index)

    def memory_bytes(self) -> int:
        return sum(index.memory_bytes() for index in self._scopes.values())
