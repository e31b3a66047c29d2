"""`semsearch query` through CliRunner: the hash embedder for behaviour, a tiny model for the
README flow."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import HashEmbedder

from semsearch.cli import main

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "corpora" / "docs.txt"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    return tmp_path


@pytest.fixture
def hashed(workspace, monkeypatch):
    """An index of three documents built with the hash embedder."""
    embedders = {"other": HashEmbedder(name="other")}
    monkeypatch.setattr(
        "semsearch.embedder.load_embedder",
        lambda model, device=None, texts=None, precision="fp32", backend=None, one_shot=False:
        embedders.get(
            str(model), HashEmbedder()),
    )
    (workspace / "pets.txt").write_text("cats purr softly\ndogs bark loudly\nparrots talk\n")
    assert run("index", "pets.txt").exit_code == 0
    return workspace


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_query_prints_rank_score_id_text(hashed):
    result = run("query", "dogs bark", "-k", "2")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0].split()
    assert first[0] == "1" and first[2] == "pets:2" and "dogs bark loudly" in result.output
    assert -1.0 <= float(first[1]) <= 1.0
    assert len(result.output.splitlines()) == 2


def test_query_json_lines(hashed):
    result = run("query", "cats", "-k", "3", "--json", "--index", "pets")
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["rank"] for line in lines] == [1, 2, 3]
    assert set(lines[0]) == {"query", "rank", "score", "id", "chunk", "chunks", "text", "metadata",
                             "dense_score", "dense_rank", "lexical_score", "lexical_rank",
                             "fusion"}
    # a hybrid answer says how the index fuses: this one was built by an uncalibrated model
    assert lines[0]["fusion"]["source"] == "default" and not lines[0]["fusion"]["calibrated"]
    dense = json.loads(run("query", "cats", "--json", "--index", "pets", "--mode", "dense")
                       .output.splitlines()[0])
    assert "fusion" not in dense


def test_queries_from_a_file_and_stdin(hashed):
    (hashed / "q.txt").write_text("cats\n\nparrots\n")
    result = run("query", "--queries", "q.txt", "-k", "1", "--json")
    assert [json.loads(line)["id"] for line in result.output.splitlines()] == ["pets:1", "pets:3"]
    result = run("query", "--queries", "-", "-k", "1", input="dogs\ncats\n")
    assert "query: dogs" in result.output and "query: cats" in result.output


def test_k_larger_than_the_index(hashed):
    result = run("query", "cats", "-k", "10")
    assert result.exit_code == 0 and "holds 3 documents" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "empty query"),
        ([], "give a query"),
        (["cats", "--index", "nowhere"], "no index at"),
        (["cats", "--model", "other"], "built with model hash"),
        (["--queries", "-"], "no queries"),
    ],
)
def test_refusals_are_one_line(hashed, args, message):
    result = run("query", *args, input="")
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_no_index_yet_says_how_to_build_one(workspace):
    result = run("query", "cats")
    assert result.exit_code == 1 and "semsearch index CORPUS" in result.output


def test_corrupt_index_is_one_line(hashed):
    (hashed / "indexes" / "pets" / "index.faiss").write_bytes(b"junk")
    result = run("query", "cats")
    assert result.exit_code == 1 and "corrupt" in result.output


def test_nprobe_and_ef_are_accepted(hashed):
    assert run("index", "pets.txt", "--type", "IVF1,Flat", "--out", "ivf").exit_code == 0
    assert run("query", "cats", "--index", "ivf", "--nprobe", "1").exit_code == 0
    assert run("index", "pets.txt", "--type", "hnsw", "--out", "hnsw").exit_code == 0
    assert run("query", "cats", "--index", "hnsw", "--ef", "8").exit_code == 0


def test_demo_corpus_is_several_hundred_distinct_documents():
    lines = [line.strip() for line in DOCS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) >= 300 and len(set(lines)) == len(lines)


@pytest.mark.slow
def test_readme_flow_with_a_tiny_model(workspace, tiny_model_dir):
    """README: `semsearch index corpora/docs.txt`, then `semsearch query "Machine learning and
    AI" -k 2`. A tiny model's answers are not judged; a trained model's are."""
    result = run("index", str(DOCS), "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    result = run("query", "Machine learning and AI", "-k", "2")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()] == ["1", "2"]
    hits = [json.loads(x) for x in run("query", "ocean", "-k", "2", "--json").output.splitlines()]
    assert len(hits) == 2 and all(hit["id"].startswith("docs:") for hit in hits)


@pytest.mark.slow
def test_a_tiny_model_other_than_the_index_is_refused(workspace, tiny_model_dir, monkeypatch):
    (workspace / "pets.txt").write_text("cats purr\n")
    assert run("index", "pets.txt", "--model", str(tiny_model_dir)).exit_code == 0
    manifest = workspace / "indexes" / "pets" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["model_fingerprint"] = "0" * 16
    manifest.write_text(json.dumps(data))
    result = run("query", "cats")
    assert result.exit_code == 1 and "fingerprint 0000000000000000" in result.output


@pytest.mark.slow
def test_a_query_never_imports_torch(workspace, tiny_model_dir):
    """Importing torch costs more than a whole query should; the numpy path answers instead."""
    import subprocess
    import sys

    assert run("index", str(DOCS), "--model", str(tiny_model_dir)).exit_code == 0
    script = ("import sys; from semsearch.cli import main\n"
              "try:\n    main(['query', 'ocean waves', '-k', '2', '--json'])\n"
              "except SystemExit:\n    pass\n"
              "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    done = subprocess.run([sys.executable, "-c", script], cwd=workspace, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "NO-TORCH", done.stdout + done.stderr
    assert len(done.stdout.strip().splitlines()) == 3  # two hits, then the marker


def test_a_model_that_fails_to_load_beside_the_index_is_one_line(hashed, monkeypatch):
    """The encoder loads in a thread while the index opens; its error still reaches the user as
    one line from the command's own thread."""
    from semsearch.errors import ModelError

    def broken(model, **options):
        raise ModelError("model folder models/gone is missing; train or import one")

    monkeypatch.setattr("semsearch.embedder.load_embedder", broken)
    result = run("query", "cats")
    assert result.exit_code == 1 and "models/gone is missing" in result.output
    assert "Traceback" not in result.output
    assert run("query", "cats", "--mode", "lexical").exit_code == 0  # BM25 needs no model


def test_the_encoding_follows_a_folder_swapped_to_another_model(workspace, monkeypatch):
    """QueryEncoding reads the manifest before the index opens; when the folder it opens names
    another model (swapped meanwhile), that model is loaded and encodes the queries."""
    from semsearch.index import SearchIndex
    from semsearch.querying import QueryEncoding, search

    embedders = {"hash": HashEmbedder(), "other": HashEmbedder(name="other")}
    loaded = []

    def load(model, **options):
        loaded.append(str(model))
        return embedders[Path(model).name]

    monkeypatch.setattr("semsearch.embedder.load_embedder", load)
    for name in embedders:
        (workspace / name).mkdir()  # the manifests' model folders exist, so they are used
    (workspace / "pets.txt").write_text("cats purr softly\ndogs bark loudly\n")
    assert run("index", "pets.txt", "--model", "hash", "--out", "a").exit_code == 0
    assert run("index", "pets.txt", "--model", "other", "--out", "b").exit_code == 0
    loaded.clear()

    same = QueryEncoding(workspace / "a", None, ["dogs"])
    index = SearchIndex.open(workspace / "a")
    embedder, vectors = same.result(index)
    assert embedder is embedders["hash"] and loaded == ["hash"]
    assert np.array_equal(vectors, embedders["hash"].encode(["dogs"]))
    assert search(index, embedder, ["dogs"], 1, vectors=vectors)[0][0].id == "pets:2"
    index.close()

    swapped = QueryEncoding(workspace / "a", None, ["dogs"])
    index = SearchIndex.open(workspace / "b")
    embedder, vectors = swapped.result(index)
    assert embedder is embedders["other"] and vectors is None
    assert loaded == ["hash", "hash", "other"]
    assert search(index, embedder, ["dogs"], 1)[0][0].id == "pets:2"
    index.close()
