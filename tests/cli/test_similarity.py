"""`semsearch similarity` on a tiny trained model."""

import json

import pytest
from click.testing import CliRunner

from semsearch.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_two_texts_print_one_cosine(tiny_model_dir):
    result = run("similarity", "I love programming", "I enjoy coding", "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    assert -1.0 <= float(result.stdout) <= 1.0


def test_same_text_scores_one_as_json(tiny_model_dir):
    result = run("similarity", "A dog runs.", "A dog runs.", "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert row["text_a"] == "A dog runs."


def test_pairs_file_scores_each_pair(tiny_model_dir, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("A cat\tA kitten\tsimilar\nA cat\tTaxes\n")
    result = run("similarity", "--pairs", str(pairs), "--model", str(tiny_model_dir), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2
    assert rows[0]["expected"] == "similar" and isinstance(rows[0]["pass"], bool)
    assert "expected" not in rows[1]


@pytest.mark.parametrize("args", [["only one"], ["a", "b", "c"], ["a", "b", "--pairs", "x.tsv"]])
def test_wrong_arguments_are_usage_errors(args):
    result = run("similarity", *args)
    assert result.exit_code == 2


def test_missing_model_and_empty_pairs_are_one_line_errors(tmp_path):
    result = run("similarity", "a", "b", "--model", str(tmp_path / "nope"))
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    result = run("similarity", "--pairs", str(empty))
    assert result.exit_code == 1 and "has no pairs" in result.output
