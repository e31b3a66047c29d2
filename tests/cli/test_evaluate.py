"""`semsearch evaluate` end to end on a tiny trained model, and its one-line errors."""

import json
from pathlib import Path

from click.testing import CliRunner

from semsearch.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def error_line(result) -> str:
    """The one `Error: ...` line a failed command ends with (stderr may hold progress before it)."""
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in result.output
    return last


def test_evaluate_tiny_model_json_and_report(tiny_model_dir, data_dir, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("I love programming\tI enjoy coding\tsimilar\nA cat\tStock prices\tdissimilar\n")
    result = run("evaluate", "--model", str(tiny_model_dir), "--data-dir", str(data_dir),
                 "--pairs", str(pairs), "--limit", "60", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["limit"] == 60
    assert Path(report["model"]["path"]).resolve() == tiny_model_dir.resolve()
    for task in ("stsb_test", "stsb_dev"):
        for method in ("model", "tfidf"):
            assert set(report["sts"][task][method]) == {"spearman", "pearson"}
    assert report["separation"]["stsb_test"]["model"]["similar_pairs"] > 0
    assert len(report["pairs"]["pairs"]) == 2
    assert set(report["retrieval"]["snli_test"]["model"]) == {"recall@1", "recall@10", "mrr@10", "ndcg@10"}
    assert report["semsearch_version"] and report["date"]

    saved = tiny_model_dir / "eval-limit60.json"  # a --limit run never overwrites eval.json
    assert json.loads(saved.read_text()) == report
    assert "report saved to" in result.stderr


def test_evaluate_prints_a_table(tiny_model_dir, data_dir):
    result = run("evaluate", "--model", str(tiny_model_dir), "--data-dir", str(data_dir), "--limit", "30")
    assert result.exit_code == 0, result.output
    for expected in ("STS-B test Spearman", "Separation on STS-B test", "Retrieval snli_test", "TF-IDF"):
        assert expected in result.stdout


def test_evaluate_missing_model_is_one_line_error(tmp_path):
    assert "nope" in error_line(run("evaluate", "--model", str(tmp_path / "nope")))


def test_evaluate_incompatible_model_format(tiny_model_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_model_dir, old)
    config = json.loads((old / "config.json").read_text())
    config["format_version"] = 999
    (old / "config.json").write_text(json.dumps(config))
    assert "old" in error_line(run("evaluate", "--model", str(old)))


def test_evaluate_missing_data_names_the_file(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = error_line(run("evaluate", "--model", str(tiny_model_dir), "--data-dir", str(empty)))
    assert "sts" in line.lower() and str(empty) in line


def test_evaluate_empty_pairs_file(tiny_model_dir, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# nothing here\n")
    line = error_line(run("evaluate", "--model", str(tiny_model_dir), "--pairs", str(pairs)))
    assert "has no pairs" in line and str(pairs) in line


def test_evaluate_help_lists_examples():
    result = run("evaluate", "--help")
    assert result.exit_code == 0 and "semsearch evaluate --limit" in result.output
