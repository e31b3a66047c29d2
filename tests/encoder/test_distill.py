import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.data.records import TrainingPair
from semsearch.encoder.distill import TeacherTargets, distill_loss, teacher_targets
from semsearch.errors import ConfigError


def test_targets_follow_the_loops_sequence_order():
    vectors = np.arange(12, dtype=np.float32).reshape(6, 2)
    targets = TeacherTargets(vectors, [(0, 1, None), (2, 3, 4), (5, 0, None)])
    rows = targets.batch([1, 2], torch.device("cpu"))
    # anchors of the batch, then its positives, then the hard negatives that exist
    assert rows.tolist() == vectors[[2, 5, 3, 0, 4]].tolist()


def test_distill_loss_is_two_minus_two_cos():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    assert distill_loss(a, b).item() == pytest.approx(2.0)


def test_teacher_vectors_are_cached_and_width_checked(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    pairs = [TrainingPair("a cat sits", "a cat is sitting", "a dog runs"),
             TrainingPair("rain falls", "it rains")]
    messages = []
    first = teacher_targets(tiny_model_dir, pairs, 32, messages.append)
    again = teacher_targets(tiny_model_dir, pairs, 32, messages.append)
    assert "from the cache" in messages[-1] and "encoding 5 texts" in messages[0]
    assert torch.equal(first.vectors, again.vectors) and first.rows[0] == (0, 1, 2)
    [cached] = (tmp_path / "cache" / "teachers").glob("*.npy")
    assert np.load(cached, allow_pickle=False).shape == (5, 32)
    with pytest.raises(ConfigError, match="model.hidden=32"):
        teacher_targets(tiny_model_dir, pairs, 64, messages.append)


def test_train_with_a_teacher_records_it(tiny_model_dir, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "student"
    result = CliRunner().invoke(main, [
        "train", "--preset", "tiny", "--teacher", str(tiny_model_dir), "--out", str(out),
        "--set", "train.epochs=1", "--data-dir", str(data_dir), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["teacher"] == str(tiny_model_dir.resolve())
    from semsearch.eval.runner import model_kind

    assert model_kind(config).startswith("distilled from")


def test_distilled_preset_needs_a_teacher(tmp_path):
    result = CliRunner().invoke(main, ["train", "--preset", "distilled", "--out",
                                       str(tmp_path / "m")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--teacher MODEL_DIR" in result.output
