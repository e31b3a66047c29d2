"""Malformed and oversized inputs: reported with line numbers, obeying --errors, in bounded
memory; terminal output cannot carry escape sequences."""

from __future__ import annotations

import json
import resource
import sys

import pytest
from faults_support import cli

from semsearch.corpora import CorpusReader, ReaderOptions
from semsearch.index import SearchIndex

RAGGED = 'id,text\n1,hello\n2,"multi\nline",extra\n3,fine\n4,short\n5,"open quote\n6,after\n'


def read(path, errors="strict"):
    reader = CorpusReader(path, ReaderOptions(errors=errors))
    return [(d.id, d.text) for d in reader], reader.skipped


def test_csv_ragged_rows_and_an_unclosed_quote_are_reported_by_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(RAGGED.replace("4,short", "4"))
    documents, skipped = read(path, "skip")
    assert documents == [("1", "hello"), ("3", "fine"), ("6", "after")]
    assert [line for line, _ in skipped] == [3, 6, 7]
    assert "3 fields where the header has 2" in skipped[0][1]
    assert "1 fields" in skipped[1][1] and "not closed" in skipped[2][1]


@pytest.mark.parametrize("errors", ["strict", "skip"])
def test_csv_errors_obey_the_errors_flag_through_the_cli(workspace, errors):
    (workspace / "r.csv").write_text(RAGGED)
    result = cli("index", "r.csv", "--out", "r", "--errors", errors)
    if errors == "strict":
        assert result.exit_code == 1 and "line 3" in result.output
        assert not (workspace / "r").exists()
    else:
        assert result.exit_code == 0, result.output
        assert "skipped line 3" in result.output and "skipped line 7" in result.output


def test_jsonl_null_nested_and_repeated_ids_are_decided_and_reported(workspace):
    lines = [{"id": "a", "text": "first"}, {"id": "b", "text": None},
             {"id": "c", "text": {"nested": "object"}}, {"id": "a", "text": "again"},
             {"id": {"x": 1}, "text": "odd id"}, {"id": "d", "text": "fine", "meta": {"k": [1]}}]
    (workspace / "c.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    strict = cli("index", "c.jsonl", "--out", "c")
    assert strict.exit_code == 1 and "line 2" in strict.output and "null" in strict.output
    result = cli("index", "c.jsonl", "--out", "c", "--errors", "skip", "--json")
    assert result.exit_code == 0, result.output
    for line in ("skipped line 2", "skipped line 3", "skipped line 4", "skipped line 5"):
        assert line in result.output
    opened = SearchIndex.open(workspace / "c")
    ids = sorted(opened.store.rows_of(["a", "b", "c", "d"]))
    chunk = opened.store.chunks([opened.store.rows_of(["d"])["d"][0]])
    opened.close()
    assert ids == ["a", "d"] and next(iter(chunk.values())).metadata == {"meta": {"k": [1]}}
    assert json.loads(result.output.strip().splitlines()[-1])["lines_skipped"] == 4


def test_a_binary_queries_file_is_a_clean_error(workspace):
    (workspace / "docs.txt").write_text("cats purr\ndogs bark\n")
    assert cli("index", "docs.txt").exit_code == 0
    (workspace / "q.bin").write_bytes(bytes(range(256)) * 4)
    result = cli("query", "--queries", "q.bin")
    assert result.exit_code == 1 and "not UTF-8" in result.output
    assert "Traceback" not in result.output


def test_control_characters_never_reach_the_terminal(workspace):
    (workspace / "evil.jsonl").write_text(json.dumps(
        {"id": "x\x1b]0;owned\x07", "text": "cats \x1b[2J purr \u202e reversed"}) + "\n")
    assert cli("index", "evil.jsonl").exit_code == 0
    result = cli("query", "cats")
    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\u202e" not in result.output and "\\x1b" in result.output
    as_json = cli("query", "cats", "--json")
    assert json.loads(as_json.output.splitlines()[0])["id"] == "x\x1b]0;owned\x07"


def test_a_long_query_is_reported_once(workspace):
    (workspace / "docs.txt").write_text("cats purr\ndogs bark\n")
    assert cli("index", "docs.txt").exit_code == 0
    result = cli("query", " ".join(["word"] * 100))  # the hash embedder's window is 32
    assert result.exit_code == 0 and result.output.count("longer than the model's window") == 1


def test_the_chunk_cap_is_reported(workspace):
    (workspace / "book.txt").write_text("short one\n" + "word " * 2000 + "\nshort two\n")
    result = cli("index", "book.txt", "--max-chunks", "5", "--json")
    assert result.exit_code == 0, result.output
    assert "line 2: document book:2 cut at 5 chunks" in result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert (report["documents"], report["vectors"], report["documents_cut"]) == (3, 7, 1)


def limit_memory(megabytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))
    return apply


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
@pytest.mark.parametrize("kind", ["txt", "jsonl"])
def test_a_huge_line_is_indexed_in_bounded_memory(workspace, kind):
    """A 2.5 MB line once became 41,667 chunks in 1.4 GB; a 50 MB one grew past 11 GB."""
    words = " ".join(f"w{i % 5000}" for i in range(2_500_000))  # about 17 MB on one line
    if kind == "txt":
        (workspace / "big.txt").write_text(f"short\n{words}\nshort again\n")
    else:
        (workspace / "big.txt").write_text(
            json.dumps({"text": "short"}) + "\n" + json.dumps({"text": words}) + "\n")
    from faults_support import start

    process = start(workspace, "index", "big.txt", "--out", "big", "--json",
                    "--format", kind, preexec_fn=limit_memory(1024))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    report = json.loads(out)
    assert report["documents_cut"] == 1 and report["vectors"] == (1002 if kind == "txt" else 1001)  # 1,000 + short
    assert "cut" in err and "Traceback" not in err
