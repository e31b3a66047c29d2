"""Exact search and recall against it: the yardstick every approximate index is measured by;
and the exact top k of a score matrix (the Python API's top_k, evaluation's rankings)."""

from __future__ import annotations

import numpy as np


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-k: returns (scores, ids), each (n_queries, min(k, n)).

    >>> v = np.eye(3, dtype=np.float32)
    >>> exact_search(v, v[[2]], 2)[1].tolist()
    [[2, 0]]
    """
    k = min(k, len(vectors))
    scores = queries @ vectors.T  # (nq, n)
    # argpartition then sort the k survivors; stable so ties go to the lower id, as in faiss
    top = (
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
        if k < len(vectors)
        else np.tile(np.arange(len(vectors)), (len(queries), 1))
    )
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    ids = np.take_along_axis(top, order, axis=1)
    return np.take_along_axis(scores, ids, axis=1), ids.astype(np.int64)


def recall_at_k(found_ids: np.ndarray, true_ids: np.ndarray, k: int) -> float:
    """Mean fraction of the true top-k ids that appear in the found top-k (k-recall@k).

    >>> recall_at_k(np.array([[1, 2, 9]]), np.array([[1, 2, 3]]), 3)
    0.6666666666666666
    """
    found = np.asarray(found_ids)[:, :k]
    true = np.asarray(true_ids)[:, :k]
    if true.size == 0:
        return 1.0
    hits = [
        len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist()))
        for f, t in zip(found, true, strict=True)
    ]
    denominator = [max(1, int((t >= 0).sum())) for t in true]
    return float(np.mean(np.array(hits) / np.array(denominator)))


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k highest scores in each row, best first; ties go to the lower index.

    >>> top_k_indices(np.array([[0.1, 0.9, 0.5, 0.9]]), 3).tolist()
    [[1, 3, 2]]
    """
    scores = np.atleast_2d(scores)  # (queries, documents)
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64)
    # argpartition then a stable sort of the k survivors; mergesort keeps the lower index first
    # on ties, but argpartition may drop a tied lower index, so widen to every tie with the kth.
    kth = np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]  # (queries, 1), negated kth best
    rows = []
    for row, cut in zip(scores, kth[:, 0], strict=True):
        candidates = np.flatnonzero(-row <= cut)
        order = np.argsort(-row[candidates], kind="mergesort")
        rows.append(candidates[order][:k])
    return np.stack(rows).astype(np.int64)
