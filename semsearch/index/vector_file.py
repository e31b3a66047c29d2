"""The float32 vectors on disk: an append-only raw file, read through a memory map.

`semsearch index` streams embeddings here in batches so memory stays bounded; indexes that
compress vectors (ivfpq) keep the file to re-rank their candidates exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semsearch.errors import IndexError_


class VectorFile:
    """Row i of the (n, dim) float32 file at `path` is the vector of row id i."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self._map: np.ndarray | None = None  # kept between reads; remapped when the file grows
        self._pinned = False  # mapped once and kept: the folder may be swapped away meanwhile

    def pin(self) -> None:
        """Map the file now and keep that mapping (a reader's view of one index version)."""
        self._mapped()
        self._pinned = True

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
        """The vectors of arbitrary rows, in that order, through a read-only memory map."""
        return self._mapped()[np.asarray(rows, dtype=np.int64)]

    def inner_products(self, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(nq, c) inner products of each query with its c rows, -inf where a row is -1.

        faiss reads the rows in place through the memory map: for 1,000 queries' 200 re-rank
        candidates among 704K rows, 46 ms against 147-186 ms gathering them with numpy first.
        """
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        assert queries.ndim == 2 and queries.shape[1] == self.dim and len(rows) == len(queries)
        mapped = self._mapped()
        if rows.size and rows.max() >= len(mapped):  # faiss would read past the file's end
            raise IndexError_(f"row {int(rows.max())} is past the {len(mapped):,} vectors in "
                              f"{self.path}; rebuild the index with `semsearch index CORPUS`")
        out = np.empty(rows.shape, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(out), faiss.swig_ptr(queries), faiss.swig_ptr(mapped),
            faiss.swig_ptr(rows), self.dim, rows.shape[0], rows.shape[1],
        )
        return out

    def _mapped(self) -> np.ndarray:
        """The (n, dim) read-only memory map, kept between calls and made again once the file
        has grown: mapping afresh on every search cost more than faiss's own search."""
        if self._pinned and self._map is not None:
            return self._map
        size = self.path.stat().st_size // (4 * self.dim)
        if self._map is None or len(self._map) != size:
            self._map = np.memmap(self.path, dtype=np.float32, mode="r", shape=(size, self.dim))
        return self._map


def rerank_exact(
    queries: np.ndarray, candidate_ids: np.ndarray, vectors: VectorFile, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidates by exact inner product against `vectors` and keep the best k a query.

    queries (nq, d); candidate_ids (nq, c) with -1 for none. Returns (scores, ids), each
    (nq, min(k, c)), best first, -1 / -inf padding.
    """
    scores = vectors.inner_products(queries, candidate_ids)  # (nq, c), -inf for -1
    k = min(k, candidate_ids.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (
        np.take_along_axis(scores, order, axis=1),
        np.take_along_axis(candidate_ids, order, axis=1),
    )
