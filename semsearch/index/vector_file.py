"""The float32 vectors on disk: an append-only raw file, read through a memory map.

`semsearch index` streams embeddings here in batches so memory stays bounded; indexes that
compress vectors (ivfpq) keep the file to re-rank their candidates exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class VectorFile:
    """Row i of the (n, dim) float32 file at `path` is the vector of row id i."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self._map: np.ndarray | None = None  # kept between `take`s; remapped when the file grows

    def __len__(self) -> int:
        return self.path.stat().st_size // (4 * self.dim) if self.path.exists() else 0

    def append(self, vectors: np.ndarray) -> None:
        """Write rows at the end of the file."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        assert vectors.ndim == 2 and vectors.shape[1] == self.dim, vectors.shape
        with open(self.path, "ab") as handle:
            handle.write(vectors.tobytes())

    def write_rows(self, start: int, vectors: np.ndarray) -> None:
        """Write rows start.. start+len(vectors), growing the file if needed."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        mode = "r+b" if self.path.exists() else "w+b"
        with open(self.path, mode) as handle:
            handle.seek(start * 4 * self.dim)
            handle.write(vectors.tobytes())

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop as an in-memory (stop - start, dim) array (no memory map kept)."""
        count = max(0, stop - start)
        with open(self.path, "rb") as handle:
            handle.seek(start * 4 * self.dim)
            data = np.fromfile(handle, dtype=np.float32, count=count * self.dim)
        return data.reshape(-1, self.dim)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of arbitrary rows, in that order, through a read-only memory map.

        The map is kept for the next call, and each distinct row is read once, in file order:
        re-ranking 1,000 queries' 200 candidates in 781K rows took 230-1,090 ms mapping afresh
        and gathering in candidate order, against faiss's 400 ms for the search itself."""
        rows = np.asarray(rows, dtype=np.int64)
        size = self.path.stat().st_size // (4 * self.dim)
        if self._map is None or len(self._map) != size:
            self._map = np.memmap(self.path, dtype=np.float32, mode="r", shape=(size, self.dim))
        unique, inverse = np.unique(rows.reshape(-1), return_inverse=True)
        return self._map[unique][inverse].reshape(*rows.shape, self.dim)


def rerank_exact(
    queries: np.ndarray, candidate_ids: np.ndarray, candidate_vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidates by exact inner product and keep the best k a query.

    queries (nq, d); candidate_ids (nq, c) with -1 for none; candidate_vectors (nq, c, d).
    Returns (scores, ids), each (nq, min(k, c)), best first, -1 / -inf padding.

    >>> q = np.array([[1.0, 0.0]], dtype=np.float32)
    >>> v = np.array([[[0.0, 1.0], [1.0, 0.0]]], dtype=np.float32)
    >>> rerank_exact(q, np.array([[5, 7]]), v, 1)[1].tolist()
    [[7]]
    """
    scores = np.einsum("qd,qcd->qc", queries, candidate_vectors)  # (nq, c)
    scores = np.where(candidate_ids >= 0, scores, -np.inf)
    k = min(k, candidate_ids.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (
        np.take_along_axis(scores, order, axis=1).astype(np.float32),
        np.take_along_axis(candidate_ids, order, axis=1),
    )
