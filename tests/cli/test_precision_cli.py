"""`--precision int8` on `semsearch index` and `semsearch evaluate` with a tiny trained model."""

import json

from click.testing import CliRunner

from semsearch.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_index_in_int8_records_it_and_fp32_queries_still_search(tiny_model_dir, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    corpus = tmp_path / "pets.txt"
    corpus.write_text("cats purr softly\ndogs bark loudly\nparrots talk\n")
    out = tmp_path / "indexes" / "pets"
    result = run("index", corpus, "--model", tiny_model_dir, "--precision", "int8", "--out", out)
    assert result.exit_code == 0, result.output
    assert "(int8)" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["corpora"][0]["precision"] == "int8"
    # the query path embeds in fp32 (numpy); the same weights, so the index accepts it
    result = run("query", "cats", "--index", out, "--model", tiny_model_dir, "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    # appending in fp32 is allowed too, and recorded per corpus
    (tmp_path / "more.txt").write_text("hamsters run\n")
    result = run("index", tmp_path / "more.txt", "--append", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["corpora"][1]["precision"] == "fp32"


def test_int8_on_a_gpu_is_one_line_error(tiny_model_dir, tmp_path):
    (tmp_path / "a.txt").write_text("a\n")
    result = run("index", tmp_path / "a.txt", "--model", tiny_model_dir, "--precision", "int8",
                 "--device", "cuda", "--out", tmp_path / "i")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "CPU only" in result.stderr.strip().splitlines()[-1]


def test_evaluate_int8_saves_its_own_report(tiny_model_dir, data_dir):
    result = run("evaluate", "--model", tiny_model_dir, "--data-dir", data_dir, "--limit", "30",
                 "--precision", "int8", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"]["precision"] == "int8"
    saved = tiny_model_dir / "eval-int8-limit30.json"
    assert json.loads(saved.read_text()) == report
