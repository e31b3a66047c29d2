"""`semsearch index --lexical-only`: an index of the store and BM25 alone, made and used with no
model: query (lexical by default, one line for dense or hybrid), --append, remove, check, the
Python API and the server; an append or remove rescoring from the saved term counts gives the
scores a fresh build of the same documents gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.index.lexical import LexicalConfig, LexicalIndex

DOCS = [
    {"id": "d1", "text": "Gradient descent minimises a loss by small steps against its gradient."},
    {"id": "d2", "text": "A random forest averages many decision trees trained on bootstraps."},
    {"id": "d3", "text": "Tides rise and fall twice a day, pulled by the moon."},
    {"id": "d4", "text": "Stochastic gradient descent uses one mini-batch a step."},
    {"id": "d5", "text": "Coral reefs shelter a quarter of the ocean's species."},
]
MORE = [
    {"id": "m1", "text": "Momentum speeds gradient descent along shallow valleys."},
    {"id": "d3-again", "text": "Tides rise and fall twice a day, pulled by the moon."},
    {"id": "m2", "text": "Whales migrate thousands of kilometres across the ocean."},
]
QUERIES = ["gradient descent step", "ocean", "decision trees", "moon tides"]


@pytest.fixture(autouse=True)
def no_model(tmp_path, monkeypatch):
    """No model may be loaded: loading one fails the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for an index without vectors")

    monkeypatch.setattr("semsearch.embedder.load_embedder", refuse)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def hits(folder: Path, query: str, *more: str) -> list[dict]:
    result = run("query", query, "--index", str(folder), "--json", "-k", "10", *more)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


def scores_by_id(folder: Path) -> dict[str, list[tuple[str, float]]]:
    return {q: [(h["id"], round(h["score"], 5)) for h in hits(folder, q)] for q in QUERIES}


def test_a_lexical_only_index_holds_no_vectors_and_searches_bm25(tmp_path):
    corpus = write(tmp_path / "docs.jsonl", DOCS)
    result = run("index", str(corpus), "--lexical-only", "--out", "bm25")
    assert result.exit_code == 0, result.output
    assert "no model" in result.output and "indexed 5 documents (no vectors)" in result.output
    folder = tmp_path / "bm25"
    assert not (folder / "index.faiss").exists() and not (folder / "vectors.f32").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["recipe"]["kind"] == "lexical" and manifest["count"] == 0
    assert manifest["documents"] == 5 and manifest["lexical"]["documents"] == 5
    found = hits(folder, "gradient descent")
    assert {h["id"] for h in found} == {"d1", "d4"}
    assert all(h["dense_score"] is None and h["lexical_rank"] == h["rank"] for h in found)
    assert found[0]["text"] in (DOCS[0]["text"], DOCS[3]["text"])  # the whole document
    for mode in ("dense", "hybrid"):
        result = run("query", "gradient", "--index", str(folder), "--mode", mode)
        assert result.exit_code == 1
        assert result.output.count("\n") == 1 and "has no vectors" in result.output
        assert "--mode lexical" in result.output


def test_append_remove_and_check_rescore_as_a_fresh_build(tmp_path):
    write(tmp_path / "docs.jsonl", DOCS)
    write(tmp_path / "more.jsonl", MORE)
    assert run("index", "docs.jsonl", "--lexical-only", "--out", "grown").exit_code == 0
    result = run("index", "more.jsonl", "--append", "--out", "grown")
    assert result.exit_code == 0, result.output
    assert "added 2 documents (no vectors, 1 duplicates skipped)" in result.output
    result = run("remove", "d2", "m2", "--index", "grown", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1]) == {
        "index": "grown", "documents_removed": 2, "vectors_removed": 0}
    kept = [row for row in DOCS + MORE if row["id"] not in ("d2", "m2", "d3-again")]
    write(tmp_path / "kept.jsonl", kept)
    assert run("index", "kept.jsonl", "--lexical-only", "--out", "fresh").exit_code == 0
    assert scores_by_id(tmp_path / "grown") == scores_by_id(tmp_path / "fresh")
    # the saved counts were updated, not rebuilt from the store: the files say so
    grown = LexicalIndex(tmp_path / "grown", LexicalConfig())
    assert sorted(grown.rows.tolist()) == [0, 2, 3, 4, 5]  # rows of removed documents are gone
    result = run("check", "grown", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["healthy"] and {c["name"] for c in report["checks"]} >= {"store", "lexical"}


def test_a_model_is_refused_on_either_side_of_the_line(tmp_path, monkeypatch):
    from fakes import HashEmbedder

    write(tmp_path / "docs.jsonl", DOCS)
    assert run("index", "docs.jsonl", "--lexical-only", "--out", "bm25").exit_code == 0
    monkeypatch.setattr("semsearch.embedder.load_embedder", lambda *a, **k: HashEmbedder())
    result = run("index", "docs.jsonl", "--append", "--out", "bm25", "--model", "hash")
    assert result.exit_code == 1 and "has no vectors" in result.output
    assert run("index", "docs.jsonl", "--out", "dense").exit_code == 0
    result = run("index", "docs.jsonl", "--append", "--out", "dense", "--lexical-only")
    assert result.exit_code == 1 and "holds vectors" in result.output
    result = run("index", "docs.jsonl", "--lexical-only", "--model", "hash", "--out", "x")
    assert result.exit_code == 2 and "loads no model" in result.output


def test_the_api_and_the_server_search_it_without_a_model(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import semsearch
    from semsearch.serve.app import create_app
    from semsearch.serve.state import ServeConfig

    write(tmp_path / "docs.jsonl", DOCS)
    assert run("index", "docs.jsonl", "--lexical-only", "--out", "bm25").exit_code == 0
    folder = tmp_path / "bm25"
    found = semsearch.query("coral reefs", index=folder, k=3)
    assert [hit["id"] for hit in found] == ["d5"]
    with pytest.raises(semsearch.errors.IndexError_, match="has no vectors"):
        semsearch.query("coral reefs", index=folder, mode="hybrid")
    with TestClient(create_app(ServeConfig(index=str(folder)))) as client:
        answer = client.get("/search", params={"q": "coral reefs", "k": 3})
        assert answer.status_code == 200, answer.text
        assert [hit["id"] for hit in answer.json()["hits"]] == ["d5"]
        assert client.get("/health").json()["model"] is None
        dense = client.post("/search", json={"queries": ["coral"], "mode": "dense"})
        assert dense.status_code == 409 and "has no vectors" in dense.text
        assert client.post("/v1/embeddings", json={"input": "coral"}).status_code == 409


def test_scores_after_an_append_are_those_of_bm25s_over_all_the_documents(tmp_path):
    """The incremental rescoring is bm25s' own scoring of every document, to the bit."""
    bm25s = pytest.importorskip("bm25s")
    from semsearch.index.lexical import STOPWORDS, _stemmer, tokenize

    write(tmp_path / "docs.jsonl", DOCS)
    write(tmp_path / "more.jsonl", MORE)
    assert run("index", "docs.jsonl", "--lexical-only", "--out", "bm25").exit_code == 0
    assert run("index", "more.jsonl", "--append", "--out", "bm25").exit_code == 0
    ours = LexicalIndex(tmp_path / "bm25", LexicalConfig())
    texts = [row["text"] for row in DOCS + MORE if row["id"] != "d3-again"]  # in row order
    config = LexicalConfig()
    theirs = bm25s.BM25(method=config.method, k1=config.k1, b=config.b)
    theirs.index(bm25s.tokenize(texts, lower=True, stopwords=sorted(STOPWORDS[config.stopwords]),
                                stemmer=_stemmer(config.stemmer), show_progress=False),
                 show_progress=False)
    order = np.argsort(ours.rows)
    for query in QUERIES:
        mine = ours.scores_of([i for _, i in ours._known(query)])[order]
        tokens = [t for t in tokenize([query], config)[0] if t in theirs.vocab_dict]
        np.testing.assert_array_equal(mine, theirs.get_scores(tokens))
        assert mine.max() > 0
