"""Merging chunk hits into document hits: pure functions over arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def best_per_document(
    scores: np.ndarray, rows: np.ndarray, documents: Sequence[str | None], k: int
) -> list[int]:
    """Positions of the best-scoring chunk of each of the top-k documents, best first.

    scores, rows: one query's candidates (c,); documents[i] names the document of candidate i
    (None for a padding row -1 or a row no longer stored).

    >>> best_per_document(np.array([.9, .8, .7]), np.array([4, 5, 6]), ["a", "a", "b"], 2)
    [0, 2]
    """
    kept: list[int] = []
    seen: set[str] = set()
    for position in np.argsort(-np.asarray(scores), kind="stable"):
        document = documents[position]
        if rows[position] < 0 or document is None or document in seen:
            continue
        seen.add(document)
        kept.append(int(position))
        if len(kept) == k:
            break
    return kept
