"""Tuning nprobe / efSearch to a recall target on the corpus itself."""

import json

import numpy as np
import pytest
from conftest import TableEmbedder, clustered_unit_vectors

from semsearch.index import VectorFile, build_index, choose_recipe, exact_search, recall_at_k
from semsearch.index.search_index import search_with_recipe
from semsearch.index.tuning import (
    NO_ROW,
    QueryVectors,
    _drop_self,
    nprobe_steps,
    span_texts,
    tune_recipe,
)
from semsearch.indexing import IndexOptions, index_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    vectors = clustered_unit_vectors(6000, 32, seed=3, clusters=60)
    file = VectorFile(tmp_path_factory.mktemp("tune") / "v.f32", 32)
    file.append(vectors[:5000])
    return vectors, file


@pytest.mark.parametrize("kind,setting", [("ivf", "nprobe"), ("ivfpq", "nprobe"),
                                          ("hnsw", "ef_search")])
def test_the_tuned_setting_reaches_the_target_on_held_out_queries(corpus, kind, setting):
    vectors, file = corpus
    recipe = choose_recipe(kind, 5000, 32)
    index, _ = build_index(recipe, file, 5000)
    tuned, tuning = tune_recipe(index, recipe, file, 5000, target=0.9, queries=300)
    assert tuning.setting == setting and getattr(tuned, setting) == tuning.value
    assert tuning.recall >= 0.9
    queries = vectors[5000:]
    _, truth = exact_search(vectors[:5000], queries, 10)
    _, found = search_with_recipe(index, tuned, file, queries, 10)
    assert recall_at_k(found, truth, 10) >= 0.85  # held-out queries, not the tuning sample


def test_an_unreachable_target_takes_the_largest_setting_and_says_so(corpus):
    _, file = corpus
    recipe = choose_recipe("IVF64,PQ2x4", 5000, 32)
    index, _ = build_index(recipe, file, 5000)
    tuned, tuning = tune_recipe(index, recipe, file, 5000, target=1.0, queries=200)
    assert tuned.nprobe == 64 and tuning.recall < 1.0
    assert "short of the 1.0 target" in tuning.describe()


def test_exact_and_tiny_indexes_are_left_alone(corpus):
    _, file = corpus
    recipe = choose_recipe("flat", 5000, 32)
    index, _ = build_index(recipe, file, 5000)
    assert tune_recipe(index, recipe, file, 5000) == (recipe, None)
    ivf = choose_recipe("IVF1,Flat", 5, 32)
    index, _ = build_index(ivf, file, 5)
    assert tune_recipe(index, ivf, file, 5) == (ivf, None)


def test_a_query_finding_itself_earns_nothing():
    found = np.array([[7, 1, 2], [3, 7, 4]])
    assert _drop_self(found, np.array([7, 7]), 2).tolist() == [[1, 2], [3, 4]]


def test_index_corpus_records_the_tuned_setting(tmp_path):
    vectors = clustered_unit_vectors(3000, 16, seed=5)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"v{i}\n" for i in range(3000)))
    embedder = TableEmbedder(vectors)
    index_corpus(corpus, embedder, tmp_path / "tuned", IndexOptions(type="ivf"), progress=False)
    index_corpus(corpus, embedder, tmp_path / "plain", IndexOptions(type="ivf", target_recall=0),
                 progress=False)
    tuned = json.loads((tmp_path / "tuned" / "manifest.json").read_text())["recipe"]
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text())["recipe"]
    assert "tuned nprobe=" in tuned["reason"] and "tuned" not in plain["reason"]
    assert "on 1,000 corpus spans" in tuned["reason"]  # encoded text, not the stored vectors
    assert plain["nprobe"] == choose_recipe("ivf", 3000, 16).nprobe
    assert tuned["nprobe"] <= plain["nprobe"]


def test_nprobe_steps_try_the_quarter_values_and_end_on_every_list():
    assert nprobe_steps(64) == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48,
                                56, 64]
    assert nprobe_steps(100)[-5:] == [56, 64, 80, 96, 100]
    assert nprobe_steps(1) == [1] and nprobe_steps(3) == [1, 2, 3]
    steps = nprobe_steps(1024)
    assert steps == sorted(set(steps)) and {128, 160, 192, 224} <= set(steps)
    assert steps[-1] == 1024


def test_fast_scan_codes_rerank_more_candidates_than_8_bit_codes():
    fast = choose_recipe("ivfpq", 1_000_000, 384)
    eight_bit = choose_recipe("ivfpq", 1_000_000, 5)  # an odd width cannot pair 4-bit codes
    assert fast.factory.endswith("PQ192x4fs") and fast.rerank == 20
    assert eight_bit.factory.endswith(",PQ1") and eight_bit.rerank == 10


def test_spans_are_short_runs_of_a_text_seeded():
    text = " ".join(f"w{i}" for i in range(40))
    spans = span_texts([text] * 200 + ["two words", ""], seed=3)
    assert spans == span_texts([text] * 200 + ["two words", ""], seed=3)
    assert spans[-2:] == ["two words", ""]  # shorter than a span: the whole text
    sizes = {len(span.split()) for span in spans[:200]}
    assert sizes == set(range(3, 9))  # 3 to 8 words, each size drawn
    assert all(f" {span} " in f" {text} " for span in spans[:200])  # contiguous words of it
    assert len(set(spans[:200])) > 100  # at random places


def test_tuning_on_harder_queries_probes_more_and_says_what_it_tuned_on(corpus):
    vectors, file = corpus
    recipe = choose_recipe("ivf", 5000, 32)
    index, _ = build_index(recipe, file, 5000)
    _, on_vectors = tune_recipe(index, recipe, file, 5000, target=0.95, queries=300)
    rng = np.random.default_rng(0)
    harder = vectors[rng.choice(5000, 300)] + vectors[rng.choice(5000, 300)]
    harder /= np.linalg.norm(harder, axis=1, keepdims=True)  # between clusters, as questions are
    tuned, on_queries = tune_recipe(index, recipe, file, 5000, target=0.95,
                                    query_vectors=QueryVectors(harder, np.full(300, NO_ROW)))
    assert on_vectors.source == "corpus vectors" and on_queries.source == "corpus spans"
    assert on_queries.queries == 300 and "on 300 corpus spans" in on_queries.describe()
    assert on_queries.value > on_vectors.value
    _, truth = exact_search(vectors[:5000], harder, 10)
    _, found = search_with_recipe(index, tuned, file, harder, 10)
    assert recall_at_k(found, truth, 10) >= 0.95  # the target holds for the queries tuned on


def test_tuning_queries_are_encoded_spans_and_whole_chunks_leave_themselves_out(tmp_path):
    from fakes import HashEmbedder

    from semsearch.index import DocumentStore
    from semsearch.index_tuning import tuning_queries

    store = DocumentStore(tmp_path / "documents.sqlite")
    long_text = " ".join(f"word{i}" for i in range(30))
    for row in range(50):
        text = "a short title" if row % 2 else f"{long_text} {row}"
        store.add_document(f"d{row}", text, [text], row, {})
    embedder = HashEmbedder()
    queries = tuning_queries(store, embedder, np.arange(50), count=20)
    store.close()
    assert queries.vectors.shape == (20, embedder.dim)
    assert np.allclose(np.linalg.norm(queries.vectors, axis=1), 1.0)
    whole = queries.own != NO_ROW
    assert whole.any() and (~whole).any()
    assert all(row % 2 == 1 for row in queries.own[whole])  # the 3-word titles, cut whole
    assert tuning_queries(DocumentStore(tmp_path / "empty.sqlite"), embedder,
                          np.arange(0)) is None


def test_no_spans_are_encoded_for_an_index_with_nothing_to_tune(corpus):
    from semsearch.index_tuning import tune_to_target

    _, file = corpus
    asked = []

    def queries():
        asked.append(1)
        return None

    for kind in ("flat", "PQ4"):  # exact, and a factory with neither nprobe nor efSearch
        recipe = choose_recipe(kind, 5000, 32)
        index, _ = build_index(recipe, file, 5000)
        assert tune_to_target(index, recipe, file, 5000, 0.95, queries) == recipe
    assert asked == []
    recipe = choose_recipe("ivf", 5000, 32)
    index, _ = build_index(recipe, file, 5000)
    assert tune_to_target(index, recipe, file, 5000, 0.9, queries).recall >= 0.9
    assert asked == [1]  # a tunable index asks once (None: it tunes on stored vectors)
