"""A static model through every command: index, query, serve, embed, similarity, export, adapt,
and `train --preset static` from scratch, on tiny real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.encoder.static import StaticEncoder

DOCS = "".join(json.dumps(row) + "\n" for row in [
    {"id": "a", "text": "Machine learning lets computers learn patterns from examples."},
    {"id": "b", "text": "A recipe for hummus: chickpeas, tahini, lemon and garlic."},
    {"id": "c", "text": "The river flows through the valley to the sea."},
    {"id": "d", "text": "Neural networks are trained with gradient descent on a loss."},
])


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def docs(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(DOCS)
    return path


def test_index_query_check_and_append(static_model_dir, docs, tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    out = tmp_path / "idx"
    built = run("index", docs, "--model", static_model_dir, "--out", out)
    assert built.exit_code == 0, built.output
    found = run("query", "river valley", "-k", "2", "--index", out, "--json")
    assert found.exit_code == 0, found.output
    hits = [json.loads(line) for line in found.output.splitlines()]
    assert hits[0]["id"] == "c" and hits[0]["fusion"]["calibrated"] is False
    dense = run("query", "river valley", "-k", "4", "--index", out, "--mode", "dense", "--json")
    assert len(dense.output.splitlines()) == 4
    (tmp_path / "more.txt").write_text("Tides rise and fall with the moon.\n")
    appended = run("index", tmp_path / "more.txt", "--append", "--out", out, "--model",
                   static_model_dir)
    assert appended.exit_code == 0, appended.output
    checked = run("check", out)
    assert checked.exit_code == 0, checked.output
    assert "fusion" in checked.output and "uncalibrated" in checked.output


def test_embed_and_similarity_equal_encode(static_model_dir, docs, tmp_path):
    result = run("embed", docs, "--model", static_model_dir, "--out", tmp_path / "v.npy")
    assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "v.npy")
    texts = [json.loads(line)["text"] for line in DOCS.splitlines()]
    assert np.allclose(vectors, StaticEncoder.load(static_model_dir).encode(texts), atol=1e-6)
    similar = run("similarity", "a cat", "a kitten", "--model", static_model_dir)
    assert similar.exit_code == 0, similar.output
    assert -1.0 <= float(similar.output.split()[-1]) <= 1.0


def test_sentence_transformers_export_gives_the_same_vectors(static_model_dir, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    result = run("export", static_model_dir, "--out", tmp_path / "st")
    assert result.exit_code == 0, result.output
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert modules[0]["type"].endswith("StaticEmbedding")
    model = st.SentenceTransformer(str(tmp_path / "st"), device="cpu")
    texts = ["I love programming", "The cat sat on the mat.", "word " * 2000]
    theirs = model.encode(texts, normalize_embeddings=True)
    ours = StaticEncoder.load(static_model_dir).encode(texts)
    assert (theirs * ours).sum(1).min() >= 0.9999


def test_serve_answers_search_and_embeddings(static_model_dir, docs, tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from semsearch.serve.app import create_app
    from semsearch.serve.state import ServeConfig

    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    assert run("index", docs, "--model", static_model_dir, "--out", tmp_path / "idx").exit_code == 0
    with TestClient(create_app(ServeConfig(index=str(tmp_path / "idx")))) as client:
        hits = client.get("/search", params={"q": "hummus recipe", "k": 2}).json()["hits"]
        assert hits[0]["id"] == "b"
        health = client.get("/health").json()
        assert health["model"]["dim"] == 16
        assert health["index"]["fusion"]["source"] == "default"
        embedded = client.post("/v1/embeddings", json={"input": ["a", "b"]}).json()
        assert len(embedded["data"]) == 2 and len(embedded["data"][0]["embedding"]) == 16


def test_adapt_a_static_model_to_a_corpus(static_model_dir, tmp_path, data_dir):
    corpus = tmp_path / "articles.jsonl"
    import gzip

    with gzip.open(data_dir / "wikipedia" / "articles.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus.write_text("".join(next(f) for _ in range(3)), encoding="utf-8")
    result = run("adapt", static_model_dir, "--corpus", corpus, "--out", tmp_path / "adapted",
                 "--set", "epochs=1", "--set", "batch_size=32", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["adapted_from"] == str(static_model_dir) and summary["pairs"] > 10
    adapted = StaticEncoder.load(tmp_path / "adapted")
    assert adapted.dim == 16
    config = json.loads((tmp_path / "adapted" / "config.json").read_text())
    assert config["run"]["init_from"] == str(static_model_dir)
    bad = run("adapt", static_model_dir, "--corpus", corpus, "--out", tmp_path / "x",
              "--set", "train.lr=1e-3")
    assert bad.exit_code != 0 and "a static model has no setting 'train.lr'" in bad.output


@pytest.mark.slow
def test_train_static_from_scratch(tmp_path, data_dir):
    out = tmp_path / "scratch"
    result = run("train", "--preset", "static", "--mixture", "stsb:train@400,mrpc@400",
                 "--set", "hidden=16", "--set", "epochs=2", "--set", "vocab_size=800",
                 "--set", "batch_size=64", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    losses = [h["train_loss"] for h in summary["history"]]
    assert len(losses) == 2 and losses[1] < losses[0]
    encoder = StaticEncoder.load(out)
    assert encoder.dim == 16 and encoder.tokenizer.vocab_size <= 800
    assert (out / "README.md").read_text().count("static embedding model") == 1
