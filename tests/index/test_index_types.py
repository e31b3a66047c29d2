"""Every index type against exact search on seeded synthetic vectors, through the whole
pipeline (corpus file -> store -> FAISS -> search), at the default search settings."""

import numpy as np
import pytest
from conftest import TableEmbedder, clustered_unit_vectors

from semsearch.errors import IndexError_
from semsearch.index import (
    SearchIndex,
    VectorFile,
    build_index,
    choose_recipe,
    exact_search,
    recall_at_k,
    search_vectors,
)
from semsearch.indexing import IndexOptions, index_corpus

TYPES = ["flat", "hnsw", "ivf", "ivfpq", "auto", "IVF16,SQ8"]


def hit_rows(results) -> np.ndarray:
    """Document ids "corpus:<line>" back to vector rows (line - 1)."""
    return np.array([[int(hit.id.split(":")[1]) - 1 for hit in hits] for hits in results])


@pytest.mark.parametrize("index_type", TYPES)
def test_recall_at_10_against_exact_search(index_type, tmp_path, vectors, table_corpus):
    embedder = TableEmbedder(vectors)
    out = tmp_path / "indexes" / index_type.replace(",", "_")
    index_corpus(table_corpus, embedder, out, IndexOptions(type=index_type), progress=False)
    queries = vectors[2000:]
    _, true_ids = exact_search(vectors[:2000], queries, 10)
    opened = SearchIndex.open(out)
    try:
        results = opened.search(queries, 10)
    finally:
        opened.close()
    assert all(len(hits) == 10 for hits in results)
    assert recall_at_k(hit_rows(results), true_ids, 10) >= 0.95
    exact_scores = queries @ vectors[hit_rows(results[:1])[0]].T
    np.testing.assert_allclose([hit.score for hit in results[0]], exact_scores[0], atol=0.05)


def test_pq_codes_alone_fall_short_which_is_why_ivfpq_reranks(tmp_path, vectors):
    """The ivfpq default re-ranks PQ candidates against the float32 vectors on disk."""
    recipe = choose_recipe("ivfpq", 2000, 32)
    spool = VectorFile(tmp_path / "v.f32", 32)
    spool.append(vectors[:2000])
    index, trained_on = build_index(recipe, spool, 2000)
    assert trained_on == recipe.train_size
    _, true_ids = exact_search(vectors[:2000], vectors[2000:], 10)
    _, raw_ids = search_vectors(index, vectors[2000:], 10, nprobe=recipe.nprobe)
    assert recall_at_k(raw_ids, true_ids, 10) < 0.95


def test_nprobe_and_ef_trade_recall(tmp_path, vectors, table_corpus):
    out = tmp_path / "ivf"
    index_corpus(
        table_corpus, TableEmbedder(vectors), out, IndexOptions(type="ivf"), progress=False
    )
    _, true_ids = exact_search(vectors[:2000], vectors[2000:], 10)
    opened = SearchIndex.open(out)
    low = recall_at_k(hit_rows(opened.search(vectors[2000:], 10, nprobe=1)), true_ids, 10)
    high = recall_at_k(hit_rows(opened.search(vectors[2000:], 10, nprobe=32)), true_ids, 10)
    opened.close()
    assert low < high == 1.0


def test_vector_file_take_keeps_order_and_repeats_and_sees_appended_rows(tmp_path):
    file = VectorFile(tmp_path / "v.f32", 3)
    first = np.arange(12, dtype=np.float32).reshape(4, 3)
    file.append(first)
    rows = np.array([[3, 0, 3], [1, 1, 2]])
    np.testing.assert_array_equal(file.take(rows), first[rows])  # (2, 3, dim), row order kept
    file.append(first + 100)  # the kept memory map is renewed once the file grows
    np.testing.assert_array_equal(file.take(np.array([7, 0])), np.stack([first[3] + 100, first[0]]))
    file.write_rows(0, first[:1] - 1)  # rewritten in place: the shared map sees it
    np.testing.assert_array_equal(file.take(np.array([0])), first[:1] - 1)


def test_vector_file_inner_products_read_rows_in_place(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.standard_normal((50, 8)).astype(np.float32)
    file = VectorFile(tmp_path / "v.f32", 8)
    file.append(stored)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    rows = np.array([[4, 49, -1], [0, 0, 7], [-1, -1, -1]])
    found = file.inner_products(queries, rows)
    for i, j in np.ndindex(rows.shape):
        expected = -np.inf if rows[i, j] < 0 else stored[rows[i, j]] @ queries[i]
        assert found[i, j] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(IndexError_, match="past the 50 vectors"):
        file.inner_products(queries[:1], np.array([[50]]))


def test_a_small_k_reranks_as_deep_as_tuning_measured(tmp_path):
    # 300 vectors get 2-bit PQ codes: 10 candidates for k=1 often miss the true best, which the
    # 100 of k=10 hold; a small k must not see a worse top hit than k=10 does
    table = clustered_unit_vectors(360, 64, seed=5, clusters=30)
    corpus = tmp_path / "small.txt"
    corpus.write_text("".join(f"v{i}\n" for i in range(300)))
    index_corpus(corpus, TableEmbedder(table), tmp_path / "pq",
                 IndexOptions(type="ivfpq", target_recall=0), progress=False)
    opened = SearchIndex.open(tmp_path / "pq")
    queries = table[300:]
    one = opened.search(queries, 1)
    ten = opened.search(queries, 10)
    opened.close()
    assert opened.recipe.factory.endswith("x2") and opened.recipe.rerank
    assert [hits[0].id for hits in one] == [hits[0].id for hits in ten]
