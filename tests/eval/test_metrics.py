"""Metrics against cases worked out by hand."""

import math

import numpy as np
import pytest
from scipy import sparse

from semsearch.eval.metrics import (
    mrr_at_k,
    ndcg_at_k,
    paired_cosine,
    pearson,
    recall_at_k,
    retrieval_scores,
    spearman,
)


def test_spearman_by_hand():
    # ranks of predicted: 1 3 2 4; ranks of gold: 1 2 3 4; d^2 = 0+1+1+0 = 2
    # rho = 1 - 6*2 / (4 * (16 - 1)) = 1 - 12/60 = 0.8
    assert spearman([0.1, 0.5, 0.3, 0.9], [0.0, 1.0, 2.0, 3.0]) == pytest.approx(80.0)


def test_spearman_is_rank_only_and_signed():
    assert spearman([1, 2, 3], [10, 200, 3000]) == pytest.approx(100.0)
    assert spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-100.0)


def test_pearson_by_hand():
    # x = 1,2,3 (mean 2), y = 2,4,7 (mean 13/3): cov = 5, var x = 2, var y = 38/3
    # r = 5 / sqrt(2 * 38/3) = 0.99339...
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(100 * 5 / math.sqrt(2 * 38 / 3))


def test_correlation_of_constant_input_is_nan():
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))
    assert math.isnan(spearman([1], [2]))


def test_correlation_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


RANKED = ["d1", "d2", "d3", "d4", "d5"]


def test_recall_at_k_by_hand():
    relevant = {"d2": 1, "d5": 1, "d9": 1}
    assert recall_at_k(RANKED, relevant, 1) == 0.0
    assert recall_at_k(RANKED, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, relevant, 10) == pytest.approx(2 / 3)
    # grade 0 means judged not relevant
    assert recall_at_k(RANKED, {"d1": 0, "d2": 1}, 1) == 0.0


def test_mrr_at_k_by_hand():
    assert mrr_at_k(RANKED, {"d3": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(RANKED, {"d3": 1, "d5": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(RANKED, {"d3": 1}, 2) == 0.0
    assert mrr_at_k(RANKED, {"d1": 1}, 1) == 1.0


def test_ndcg_at_k_binary_by_hand():
    # relevant at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal = 1/log2(2) + 1/log2(3)
    relevant = {"d2": 1, "d4": 1}
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(RANKED, relevant, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["d2", "d4"], relevant, 10) == pytest.approx(1.0)


def test_ndcg_at_k_graded_by_hand():
    # grades d1=1, d3=3; ranked d1 (gain 1 at rank 1), d3 (gain 3 at rank 3)
    # DCG@3 = 1 + 3/log2(4) = 2.5; ideal d3 then d1: 3 + 1/log2(3)
    relevant = {"d1": 1, "d3": 3}
    assert ndcg_at_k(RANKED, relevant, 3) == pytest.approx(2.5 / (3 + 1 / math.log2(3)))
    # cut at k=1 on both sides: DCG = 1, ideal = 3
    assert ndcg_at_k(RANKED, relevant, 1) == pytest.approx(1 / 3)


def test_retrieval_scores_average_over_judged_queries():
    rankings = {"q1": ["a", "b"], "q2": ["c", "a"], "q3": ["a"]}
    qrels = {"q1": {"a": 1}, "q2": {"a": 1}, "q3": {"a": 0}}  # q3 has no relevant document
    scores = retrieval_scores(rankings, qrels, ks=(1, 10))
    assert scores["queries"] == 2
    assert scores["recall@1"] == pytest.approx(0.5)
    assert scores["recall@10"] == pytest.approx(1.0)
    assert scores["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_paired_cosine_dense_and_sparse_agree():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 4))
    b = rng.standard_normal((5, 4))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    expected = [float(x @ y) for x, y in zip(a, b, strict=True)]
    assert paired_cosine(a, b) == pytest.approx(expected)
    assert paired_cosine(sparse.csr_matrix(a), sparse.csr_matrix(b)) == pytest.approx(expected)
