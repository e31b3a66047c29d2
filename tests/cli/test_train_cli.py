import json
import os
import shutil

import pytest
from click.testing import CliRunner

from semsearch.cli import main


def run(*args, env=None):
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


def one_line_error(result, *fragments):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_commands_and_examples():
    result = run("--help")
    assert result.exit_code == 0 and "train" in result.output
    result = run("train", "--help")
    assert "Examples:" in result.output and "--resume" in result.output


def test_tiny_train_end_to_end_json(tmp_path, data_dir):
    result = run("train", "--preset", "tiny", "--out", str(tmp_path / "m"), "--json", "-q",
                 "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["model"] == str(tmp_path / "m") and summary["steps"] > 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_default_out_is_models_preset(tmp_path, data_dir):
    result = run("train", "--preset", "tiny", "-q", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / "tiny" / "config.json").is_file()


def test_show_config_applies_overrides():
    result = run("train", "--preset", "production", "--set", "lr=1e-3", "--mixture", "reference",
                 "--show-config")
    config = json.loads(result.output)
    assert config["train"]["lr"] == 1e-3
    assert config["data"]["sources"] == ["snli:train", "stsb:train"]
    assert config["model"]["hidden"] == 384


def test_config_file(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"train": {"epochs": 7}}))
    result = run("train", "--config", str(tmp_path / "c.json"), "--show-config")
    assert json.loads(result.output)["train"]["epochs"] == 7


@pytest.mark.parametrize("args, fragments", [
    (["--preset", "huge"], ["huge"]),
    (["--set", "bogus=1"], ["not a config key", "train.lr"]),
    (["--set", "epochs"], ["key=value"]),
    (["--data-dir", "/nonexistent/data"], ["/nonexistent/data", "does not exist"]),
    (["--set", "batch_size=100000"], ["larger than"]),
    (["--resume"], ["nothing to resume"]),
])
def test_bad_input_is_one_line(tmp_path, data_dir, args, fragments):
    base = ["train", "--preset", "tiny", "-q", "--out", str(tmp_path / "m")]
    if "--data-dir" not in args:
        base += ["--data-dir", str(data_dir)]
    result = run(*base, *args)
    one_line_error(result, *fragments)
    assert not (tmp_path / "m").exists()
    if "--resume" not in args:
        assert not (tmp_path / "m.partial").exists()  # nothing left to block the next run


def test_existing_model_is_refused_then_overwritten(tmp_path, tiny_model_dir, data_dir):
    target = tmp_path / "m"
    shutil.copytree(tiny_model_dir, target)
    result = run("train", "--preset", "tiny", "-q", "--out", str(target), "--data-dir",
                 str(data_dir))
    one_line_error(result, "already holds a model", "--overwrite")
    result = run("train", "--preset", "tiny", "-q", "--out", str(target), "--data-dir",
                 str(data_dir), "--overwrite")
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path, data_dir):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run("train", "--preset", "tiny", "-q", "--out", str(locked / "m"), "--data-dir",
                 str(data_dir))
    one_line_error(result, "cannot write")


def test_output_under_a_file_is_refused(tmp_path, data_dir):
    (tmp_path / "file").write_text("x")
    result = run("train", "--preset", "tiny", "-q", "--out", str(tmp_path / "file" / "m"),
                 "--data-dir", str(data_dir))
    one_line_error(result, "cannot write")


def test_malformed_data_file_names_file_and_line(tmp_path, data_dir):
    broken = tmp_path / "data"
    shutil.copytree(data_dir / "stsbenchmark", broken / "stsbenchmark")
    shutil.copytree(data_dir / "snli", broken / "snli")
    (broken / "stsbenchmark" / "sts-train.csv").write_text("only one field\nstill bad\n")
    result = run("train", "--preset", "tiny", "-q", "--out", str(tmp_path / "m"), "--data-dir",
                 str(broken))
    one_line_error(result, "sts-train.csv", "line 1")


def test_missing_source_file_names_where_it_looked(tmp_path, data_dir):
    partial = tmp_path / "data"
    shutil.copytree(data_dir / "stsbenchmark", partial / "stsbenchmark")
    result = run("train", "--preset", "tiny", "-q", "--out", str(tmp_path / "m"), "--data-dir",
                 str(partial))
    one_line_error(result, "snli dev", str(partial))


def test_interrupted_run_is_resumed_via_cli(tmp_path, data_dir):
    from semsearch.encoder.presets import preset
    from semsearch.encoder.train import train_model
    from semsearch.errors import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        train_model(preset("tiny"), tmp_path / "m", data_dir=data_dir, progress=False,
                    log=lambda _m: None, on_step=lambda step: step == 3)
    fresh = run("train", "--preset", "tiny", "-q", "--out", str(tmp_path / "m"), "--data-dir",
                str(data_dir))
    one_line_error(fresh, "--resume")
    result = run("train", "--out", str(tmp_path / "m"), "--resume", "-q", "--data-dir",
                 str(data_dir))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_no_data_folder_and_no_hub_fails_fast(tmp_path, monkeypatch):
    from semsearch.data import sources

    monkeypatch.delenv("SEMSEARCH_DATA", raising=False)
    monkeypatch.setattr(sources, "hub_reachable", lambda: False)
    result = run("train", "--preset", "tiny", "-q", "--out", str(tmp_path / "m"))
    one_line_error(result, "SEMSEARCH_DATA", "--data-dir", "hub is not reachable")
    assert not (tmp_path / "m.partial").exists()
