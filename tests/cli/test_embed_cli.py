"""`semsearch embed`: vectors with ids in npy (+ ids file) or parquet, equal to encode's."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import HashEmbedder

from semsearch.cli import main
from semsearch.embed_corpus import embed_corpus


@pytest.fixture
def hashed(monkeypatch):
    monkeypatch.setattr("semsearch.embedder.load_embedder",
                        lambda model, **options: HashEmbedder())


def run(*args):
    return CliRunner().invoke(main, list(args))


def corpus(tmp_path, lines=5):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"text number {i} cat"}) + "\n"
                            for i in range(lines)))
    return path


def test_npy_and_ids_in_the_same_order(tmp_path, hashed, monkeypatch):
    monkeypatch.setattr("semsearch.embed_corpus.WINDOW", 2)  # several windows
    result = run("embed", str(corpus(tmp_path)), "--out", str(tmp_path / "v.npy"))
    assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "v.npy")
    ids = (tmp_path / "v.ids.txt").read_text().splitlines()
    assert vectors.shape == (5, 64) and vectors.dtype == np.float32
    assert ids == [f"d{i}" for i in range(5)]
    expected = HashEmbedder().encode([f"text number {i} cat" for i in range(5)])
    assert np.allclose(vectors, expected)
    assert list(tmp_path.glob(".*tmp")) == []


def test_without_a_terminal_a_long_corpus_says_how_far_it_is(tmp_path, hashed, monkeypatch):
    """No bar (stderr is not a terminal here): lines through the log callback instead, the
    last with the whole file read (the meter's 15 s made 0 so that every window says it)."""
    import functools

    from semsearch.progress import Meter

    monkeypatch.setattr("semsearch.embed_corpus.WINDOW", 2)
    monkeypatch.setattr("semsearch.embed_corpus.Meter", functools.partial(Meter, every=0))
    path = corpus(tmp_path)
    result = run("embed", str(path), "--out", str(tmp_path / "v.npy"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("embedding c.jsonl:")]
    size = path.stat().st_size
    assert len(lines) >= 2 and f"{size:,} of {size:,} bytes" in lines[-1]


def test_parquet_reads_back(tmp_path, hashed):
    pq = pytest.importorskip("pyarrow.parquet")
    result = run("embed", str(corpus(tmp_path)), "--out", str(tmp_path / "v.parquet"), "--json")
    assert json.loads(result.output)["documents"] == 5
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.column("id").to_pylist() == [f"d{i}" for i in range(5)]
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    assert np.allclose(vectors, HashEmbedder().encode([f"text number {i} cat" for i in range(5)]))


def test_refuses_to_overwrite_bad_suffix_and_empty(tmp_path, hashed):
    out = tmp_path / "v.npy"
    out.write_bytes(b"mine")
    result = run("embed", str(corpus(tmp_path)), "--out", str(out))
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert out.read_bytes() == b"mine"
    assert run("embed", str(corpus(tmp_path)), "--out", str(out), "--overwrite").exit_code == 0
    bad = run("embed", str(corpus(tmp_path)), "--out", str(tmp_path / "v.csv"))
    assert bad.exit_code == 1 and ".npy or a .parquet" in bad.output
    (tmp_path / "empty.txt").write_text("\n\n")
    empty = run("embed", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "e.npy"))
    assert empty.exit_code == 1 and "no documents" in empty.output
    assert not (tmp_path / "e.npy").exists() and list(tmp_path.glob(".*tmp")) == []


def test_a_real_model_gives_encode_vectors(tmp_path, tiny_model_dir):
    import semsearch
    from semsearch.encoder import SentenceEncoder

    report = embed_corpus(corpus(tmp_path), SentenceEncoder.load(tiny_model_dir),
                          tmp_path / "v.npy")
    assert report.documents == 5
    expected = semsearch.encode([f"text number {i} cat" for i in range(5)], model=tiny_model_dir)
    assert np.allclose(np.load(tmp_path / "v.npy"), expected, atol=1e-5)
