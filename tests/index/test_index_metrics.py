import numpy as np

from semsearch.index import best_per_document, exact_search, recall_at_k
from semsearch.index.metrics import top_k_indices


def test_exact_search_known_answer():
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    scores, ids = exact_search(vectors, np.array([[0, 1]], dtype=np.float32), 2)
    assert ids.tolist() == [[1, 2]]
    np.testing.assert_allclose(scores, [[1.0, 0.8]])


def test_exact_search_k_larger_than_corpus():
    vectors = np.eye(3, dtype=np.float32)
    scores, ids = exact_search(vectors, vectors[:1], 10)
    assert ids.shape == (1, 3) and ids[0, 0] == 0


def test_recall_at_k():
    assert recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 2, 1]]), 3) == 1.0
    assert recall_at_k(np.array([[1, 9], [5, 6]]), np.array([[1, 2], [7, 8]]), 2) == 0.25
    # -1 padding never counts as found
    assert recall_at_k(np.array([[-1, -1]]), np.array([[0, 1]]), 2) == 0.0


def test_best_per_document_keeps_one_chunk_a_document():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    rows = np.array([10, 11, -1, 13])
    assert best_per_document(scores, rows, ["a", "a", None, "b"], 5) == [0, 3]


def test_top_k_indices_order_and_ties():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.9], [3.0, 2.0, 1.0, 0.0, -1.0]])
    assert top_k_indices(scores, 2).tolist() == [[1, 3], [0, 1]]
    assert top_k_indices(scores, 10).shape == (2, 5)
    assert top_k_indices(scores, 0).shape == (2, 0)


def test_top_k_indices_matches_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((20, 50))
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    assert np.array_equal(top_k_indices(scores, 7), expected)
