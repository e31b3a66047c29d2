"""`semsearch index` and `semsearch remove` through CliRunner, with the model-free HashEmbedder."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import HashEmbedder

from semsearch.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def workspace(tmp_path, monkeypatch):
    """Run in a temp folder with indexes/ there and the hash embedder standing in for a model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setattr("semsearch.embedder.load_embedder",
                        lambda model, **options: HashEmbedder())
    (tmp_path / "pets.txt").write_text("cats purr\ndogs bark\nparrots talk\n")
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_index_writes_the_default_folder_and_reports(workspace):
    result = run("index", "pets.txt")
    assert result.exit_code == 0, result.output
    assert "indexed 3 documents" in result.output and "Flat" in result.output
    assert (workspace / "indexes" / "pets" / "manifest.json").is_file()
    assert (workspace / "indexes" / ".semsearch-latest").read_text().strip() == "pets"


def test_index_json_and_options(workspace):
    result = run("index", "pets.txt", "--type", "hnsw", "--out", "g", "--batch-size", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["factory"] == "HNSW32,Flat" and report["documents_added"] == 3
    assert report["index"] == "g"


def test_append_and_remove(workspace):
    run("index", "pets.txt")
    (workspace / "more.txt").write_text("cats purr\nhamsters run\n")
    result = run("index", "more.txt", "--append", "--out", "indexes/pets")
    assert result.exit_code == 0, result.output
    assert "added 1 documents (1 vectors, 1 duplicates skipped)" in result.output
    result = run("remove", "pets:1", "more:2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["documents_removed"] == 2
    result = run("remove", "pets:1")
    assert result.exit_code == 1 and "no document with id pets:1" in result.output


def test_remove_on_hnsw_says_it_cannot(workspace):
    run("index", "pets.txt", "--type", "hnsw")
    result = run("remove", "pets:1")
    assert result.exit_code == 1
    assert "cannot delete vectors" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["empty.txt"], b"\n\n", "has no documents"),
        (["bad.txt"], b"ok\n\xff\xfe\n", "line 2: bytes that are not UTF-8"),
        (["missing.txt"], None, "not found"),
        (["pets.txt", "--type", "Nonsense9"], None, "not flat, hnsw, ivf, ivfpq, auto"),
        (["pets.txt", "--type", "IVF9,Flat"], None, "IVF9 needs at least 9 vectors"),
        (["pets.txt", "--max-memory", "lots"], None, "cannot read the size"),
        (["docs.jsonl"], b'{"body": "x"}\n', "no field 'text'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(workspace, args, content, message):
    if content is not None:
        (workspace / args[0]).write_bytes(content)
    result = run("index", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()[-1]) > 20


def test_errors_skip_goes_on(workspace):
    (workspace / "bad.txt").write_bytes(b"ok then\n\xff\xfe\nfine\n")
    result = run("index", "bad.txt", "--errors", "skip")
    assert result.exit_code == 0, result.output
    assert "skipped line 2" in result.output and "indexed 2 documents" in result.output


def test_jsonl_and_csv_fields(workspace):
    (workspace / "a.jsonl").write_text('{"key": "k1", "body": "red apples", "shop": "x"}\n')
    result = run("index", "a.jsonl", "--text-field", "body", "--id-field", "key")
    assert result.exit_code == 0, result.output
    hit = json.loads(run("query", "apples", "--json").output.splitlines()[-1])
    assert (hit["id"], hit["metadata"]) == ("k1", {"shop": "x"})
    (workspace / "b.csv.gz").write_bytes(__import__("gzip").compress(b"text,n\ngreen pears,1\n"))
    assert run("index", "b.csv.gz").exit_code == 0


def test_every_help_ends_with_examples():
    for command in ("index", "query", "remove"):
        output = run(command, "--help").output.rstrip()
        tail = output[output.rindex("Examples:") :]
        assert tail.count(f"semsearch {command}") >= 3 and "Options:" not in tail
