"""The hand-written pairs reader and the BEIR-layout reader, on files written in tmp_path."""

import json

import pytest

from semsearch.errors import DataError
from semsearch.eval.beir import read_beir
from semsearch.eval.pairs import LabelledPair, read_pairs


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_read_pairs_skips_comments_and_blank_lines(tmp_path):
    path = write(tmp_path / "p.tsv", "# a comment\n\nA cat\tA kitten\tsimilar\nA cat\tTaxes\tDissimilar\n")
    assert read_pairs(path) == [
        LabelledPair("A cat", "A kitten", "similar"),
        LabelledPair("A cat", "Taxes", "dissimilar"),
    ]


def test_read_pairs_label_optional_only_when_asked(tmp_path):
    path = write(tmp_path / "p.tsv", "A cat\tA kitten\n")
    assert read_pairs(path, require_label=False) == [LabelledPair("A cat", "A kitten", None)]
    with pytest.raises(DataError, match="line 1: no label"):
        read_pairs(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "has no pairs"),
        ("# only a comment\n\n", "has no pairs"),
        ("just one column\n", "line 1: want"),
        ("a\tb\tmaybe\n", "neither similar nor dissimilar"),
    ],
)
def test_read_pairs_bad_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as error:
        read_pairs(write(tmp_path / "p.tsv", text))
    assert "\n" not in str(error.value)


def test_read_pairs_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_pairs(tmp_path / "nope.tsv")


def write_beir(folder, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\tgone\t1\n"):
    write(folder / "corpus.jsonl", "\n".join(json.dumps(row) for row in [
        {"_id": "d1", "title": "Cats", "text": "Cats purr."},
        {"_id": "d2", "text": "Rain falls."},
        {"_id": 3, "title": "", "text": "Numbers as ids."},
    ]) + "\n")
    write(folder / "queries.jsonl", '{"_id": "q1", "text": "cat sounds"}\n{"_id": "q2", "text": "weather"}\n')
    write(folder / "qrels" / "test.tsv", qrels)
    return folder


def test_read_beir(tmp_path):
    retrieval_set = read_beir(write_beir(tmp_path / "mine"))
    assert retrieval_set.name == "mine"
    assert retrieval_set.corpus == {"d1": "Cats Cats purr.", "d2": "Rain falls.", "3": "Numbers as ids."}
    assert retrieval_set.queries == {"q1": "cat sounds", "q2": "weather"}
    assert retrieval_set.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}  # unknown "gone" dropped


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_read_beir_names_the_missing_file(tmp_path, missing):
    folder = write_beir(tmp_path / "set")
    (folder / missing).unlink()
    with pytest.raises(DataError, match=missing.split("/")[-1]) as error:
        read_beir(folder)
    assert str(folder) in str(error.value)


def test_read_beir_rejects_bad_rows_and_empty_judgments(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_beir(tmp_path / "absent")
    folder = write_beir(tmp_path / "bad_qrels", qrels="q1\td1\n")
    with pytest.raises(DataError, match="line 1: want"):
        read_beir(folder)
    folder = write_beir(tmp_path / "no_match", qrels="query-id\tcorpus-id\tscore\nqx\td1\t1\n")
    with pytest.raises(DataError, match="no positive judgment"):
        read_beir(folder)
    folder = write_beir(tmp_path / "bad_json")
    write(folder / "queries.jsonl", '{"_id": "q1", "text": "ok"}\n{oops\n')
    with pytest.raises(DataError, match="line 2: not JSON"):
        read_beir(folder)
