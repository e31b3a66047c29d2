"""The evaluation runner with a deterministic fake encoder (no torch), and the report on disk."""

import json
import math
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from semsearch.eval.pairs import LabelledPair
from semsearch.eval.report import format_report, report_path, write_report
from semsearch.eval.retrieval import RetrievalSet, evaluate_retrieval, snli_retrieval_set
from semsearch.eval.runner import (
    clean_floats,
    contamination_warnings,
    evaluate,
    limit_retrieval_set,
    pairs_report,
    score_pairs,
    separation,
    unique_embed,
)
from semsearch.eval.tfidf import tokenize


class FakeEncoder:
    """Hashed bag of words, 64-dim, L2-normalised: same text, same vector."""

    dim = 64
    name = "fake"
    fingerprint = "0000"

    def __init__(self, path, config=None):
        self.path = Path(path)
        self.config = config or {}
        self.calls = []

    def encode(self, texts, batch_size=64, progress=False):
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in tokenize(text) or ["<empty>"]:
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_unique_embed_embeds_each_text_once():
    fake = FakeEncoder(".")
    vectors = unique_embed(fake.encode)(["a", "b", "a"])
    assert fake.calls == [["a", "b"]]
    assert np.array_equal(vectors[0], vectors[2])


def test_score_pairs():
    scores = score_pairs(FakeEncoder(".").encode, [("red car", "red car"), ("red", "blue")])
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] < 1.0


def test_separation_pass_and_fail():
    result = separation([0.9, 0.8], [0.1, 0.3])
    assert result["similar_mean"] == pytest.approx(0.85)
    assert result["gap"] == pytest.approx(0.65)
    assert result["pass"] == {"similar": True, "dissimilar": True, "gap": True}
    result = separation([0.6], [0.55])
    assert result["pass"] == {"similar": False, "dissimilar": False, "gap": False}
    result = separation([], [0.2])
    assert result["gap"] is None and result["pass"]["similar"] is None


def test_pairs_report_per_pair_and_summary():
    pairs = [LabelledPair("a red car", "a red car", "similar"), LabelledPair("cat", "stocks", "dissimilar")]
    report = pairs_report({"model": FakeEncoder(".").encode}, pairs)
    assert report["pairs"][0]["model"] == pytest.approx(1.0)
    assert report["model"]["met"] == 2
    assert report["model"]["similar_pairs"] == 1


def test_contamination_warnings_read_the_training_mixture():
    assert contamination_warnings(None) == []
    assert contamination_warnings({"data": {"sources": ["snli:dev", "stsb:train", "flickr30k"]}}) == []
    [warning] = contamination_warnings({"data": {"sources": [{"name": "snli", "split": "test"}]}})
    assert "SNLI test" in warning and "contaminated" in warning
    assert len(contamination_warnings({"data": {"sources": ["snli_test", "stsbenchmark-test"]}})) == 2
    # a mixture name is expanded (the default "local" leaves SNLI test out), and specs count
    assert contamination_warnings({"data": {"sources": ["local"]}}) == []
    [warning] = contamination_warnings({"data": {"sources": ["snli:dev+test", "stsb:train"]}})
    assert "snli:dev+test" in warning
    config = {"data": {"sources": ["snli:test"]}, "data_report": {"snli:test": {}, "snli:dev+test": {}}}
    assert len(contamination_warnings(config)) == 1


def pair(premise, hypothesis, label):
    return SimpleNamespace(premise=premise, hypothesis=hypothesis, label=label)


def test_snli_retrieval_set_and_perfect_retrieval():
    pairs = [
        pair("A dog runs in snow.", "A dog is outside.", "entailment"),
        pair("A dog runs in snow.", "A cat sleeps.", "contradiction"),
        pair("Two men cook food.", "Men are cooking.", "entailment"),
        pair("Two men cook food.", "A dog is outside.", "entailment"),  # shared hypothesis
        pair("A girl reads.", "A girl is reading a book.", "neutral"),  # no entailment: no query
    ]
    retrieval_set = snli_retrieval_set(pairs)
    assert sorted(retrieval_set.queries.values()) == ["A dog runs in snow.", "Two men cook food."]
    assert sorted(retrieval_set.corpus.values()) == ["A dog is outside.", "Men are cooking."]
    assert [len(r) for r in retrieval_set.qrels.values()] == [1, 2]

    def oracle(texts):  # a query's vector equals its relevant documents' vectors
        groups = {"A dog runs in snow.": 0, "A dog is outside.": 0, "Two men cook food.": 1, "Men are cooking.": 1}
        return np.eye(2)[[groups[t] for t in texts]]

    scores = evaluate_retrieval(retrieval_set, oracle)
    assert scores["queries"] == 2 and scores["corpus"] == 2
    assert scores["mrr@10"] == 1.0
    assert scores["recall@10"] == 1.0


def test_search_in_small_chunks_matches_one_chunk():
    from semsearch.eval.retrieval import search

    rng = np.random.default_rng(0)
    queries, corpus = rng.standard_normal((7, 8)), rng.standard_normal((30, 8))
    assert np.array_equal(search(queries, corpus, k=5, max_scores=60), search(queries, corpus, k=5))
    expected = np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :5]
    assert np.array_equal(search(queries, corpus, k=5), expected)


def test_limit_retrieval_set_keeps_relevant_documents():
    retrieval_set = RetrievalSet(
        "s", {"q1": "x", "q2": "y"}, {f"d{i}": str(i) for i in range(10)}, {"q1": {"d9": 1}, "q2": {"d1": 1}}
    )
    small = limit_retrieval_set(retrieval_set, 1)
    assert small.queries == {"q1": "x"}
    assert set(small.corpus) == {"d0", "d9"}


def test_clean_floats_makes_valid_json():
    cleaned = clean_floats({"a": math.nan, "b": np.float32(0.5), "c": [np.int64(2), np.bool_(True)]})
    assert cleaned == {"a": None, "b": 0.5, "c": [2, True]}
    json.dumps(cleaned, allow_nan=False)


def test_write_report_is_atomic_and_round_trips(tmp_path):
    path = write_report({"x": 1, "text": "é"}, tmp_path / "eval.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {"x": 1, "text": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]  # no temporary left behind
    assert report_path(tmp_path).name == "eval.json"
    assert report_path(tmp_path, limit=50).name == "eval-limit50.json"


def test_evaluate_end_to_end_with_fake_encoder(tmp_path, data_dir):
    beir = tmp_path / "mine"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text('{"_id": "d1", "text": "cats purr"}\n{"_id": "d2", "text": "rain falls"}\n')
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "why do cats purr"}\n')
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    encoder = FakeEncoder(tmp_path, config={"data": {"sources": ["snli:test"]}})
    pairs = [LabelledPair("a red car", "a red car", "similar"), LabelledPair("cat", "stocks", "dissimilar")]

    report = evaluate(encoder, data_dir=data_dir, retrieval_dirs=[beir], pairs=pairs, limit=40)

    json.dumps(report, allow_nan=False)
    assert report["limit"] == 40 and report["model"]["name"] == "fake"
    assert report["sts"]["stsb_test"]["pairs"] == 40
    assert set(report["sts"]["stsb_dev"]["tfidf"]) == {"spearman", "pearson"}
    assert -100 <= report["sts"]["stsb_test"]["model"]["spearman"] <= 100
    assert set(report["separation"]["stsb_test"]) == {"model", "tfidf"}
    assert report["pairs"]["model"]["met"] == 2
    assert set(report["retrieval"]) == {"snli_test", "mine"}
    assert report["retrieval"]["mine"]["model"]["recall@1"] == 1.0
    assert set(report["retrieval"]["snli_test"]["tfidf"]) == {"recall@1", "recall@10", "mrr@10", "ndcg@10"}
    assert any("SNLI test" in w for w in report["warnings"])

    table = format_report(report)
    for expected in ("STS-B test Spearman", "Separation on STS-B test", "Hand-written pairs",
                     "Retrieval snli_test", "Retrieval mine", "quick check", "warning: SNLI test"):
        assert expected in table
