"""Evaluation metrics as pure functions over arrays and rankings; no model, no files.

Correlations follow the STS convention (x100). Ranking metrics follow BEIR / pytrec_eval: a
document is relevant when its judgment is > 0, recall@k is the share of a query's relevant
documents found in its top k, nDCG uses linear gains, and queries without any relevant document
are left out of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def spearman(predicted: Sequence[float], gold: Sequence[float]) -> float:
    """Spearman rank correlation x100 (nan when either side is constant).

    >>> spearman([0.1, 0.4, 0.3], [1.0, 5.0, 2.0])
    100.0
    """
    predicted, gold = _paired(predicted, gold)
    if _constant(predicted) or _constant(gold):
        return math.nan
    return float(stats.spearmanr(predicted, gold).statistic) * 100.0


def pearson(predicted: Sequence[float], gold: Sequence[float]) -> float:
    """Pearson correlation x100 (nan when either side is constant).

    >>> round(pearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]), 2)
    99.34
    """
    predicted, gold = _paired(predicted, gold)
    if _constant(predicted) or _constant(gold):
        return math.nan
    return float(stats.pearsonr(predicted, gold).statistic) * 100.0


def recall_at_k(ranked: Sequence, relevant: Mapping, k: int) -> float:
    """Share of the relevant documents (judgment > 0) that appear in the first k of `ranked`.

    >>> recall_at_k(["d3", "d1", "d7"], {"d1": 1, "d2": 1}, k=2)
    0.5
    """
    positives = {doc for doc, grade in relevant.items() if grade > 0}
    if not positives:
        return 0.0
    return len(positives.intersection(ranked[:k])) / len(positives)


def mrr_at_k(ranked: Sequence, relevant: Mapping, k: int) -> float:
    """Reciprocal rank of the first relevant document within the first k, else 0.

    >>> mrr_at_k(["d3", "d1", "d7"], {"d1": 1}, k=10)
    0.5
    """
    for rank, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence, relevant: Mapping, k: int) -> float:
    """Normalised discounted cumulative gain at k with linear gains: sum(rel / log2(rank + 1)),
    divided by the same sum for the ideal ordering of all judged documents.

    >>> round(ndcg_at_k(["d3", "d1"], {"d1": 1}, k=10), 4)  # 1/log2(3)
    0.6309
    """
    dcg = sum(
        max(relevant.get(doc, 0), 0) / math.log2(rank + 1)
        for rank, doc in enumerate(ranked[:k], start=1)
    )
    ideal = sorted((grade for grade in relevant.values() if grade > 0), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def retrieval_scores(
    rankings: Mapping, qrels: Mapping, ks: Sequence[int] = (1, 10)
) -> dict[str, float]:
    """Mean recall@k, MRR@k and nDCG@k over the queries with at least one relevant document.

    `rankings` maps a query id to its ranked document ids, `qrels` a query id to {doc id: grade}.
    Returns keys like "recall@1", "recall@10", "mrr@10", "ndcg@10", and "queries" (the count).

    >>> retrieval_scores({"q": ["a", "b"]}, {"q": {"b": 1}}, ks=(1,))
    {'recall@1': 0.0, 'mrr@1': 0.0, 'ndcg@1': 0.0, 'queries': 1}
    """
    judged = [q for q, rel in qrels.items() if any(grade > 0 for grade in rel.values())]
    scores: dict[str, float] = {}
    for k in ks:
        for name, metric in (("recall", recall_at_k), ("mrr", mrr_at_k), ("ndcg", ndcg_at_k)):
            values = [metric(list(rankings.get(q, [])), qrels[q], k) for q in judged]
            scores[f"{name}@{k}"] = float(np.mean(values)) if values else math.nan
    scores["queries"] = len(judged)
    return scores


def paired_cosine(a, b) -> np.ndarray:
    """Row-wise dot product of two L2-normalised matrices (dense or scipy.sparse): the cosine of
    row i of `a` with row i of `b`.

    >>> paired_cosine(np.eye(2), np.array([[1.0, 0.0], [1.0, 0.0]])).tolist()
    [1.0, 0.0]
    """
    if hasattr(a, "multiply"):  # scipy.sparse
        return np.asarray(a.multiply(b).sum(axis=1), dtype=np.float64).ravel()
    return np.einsum("ij,ij->i", np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def _paired(predicted, gold) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predicted, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    if predicted.shape != gold.shape or predicted.ndim != 1:
        raise ValueError(f"need two 1-d sequences of one length, got {predicted.shape} and {gold.shape}")
    return predicted, gold


def _constant(values: np.ndarray) -> bool:
    return len(values) < 2 or bool(np.all(values == values[0]))
