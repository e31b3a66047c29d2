"""The CoSENT stage on STS-B train's graded pairs that follows the InfoNCE epochs."""

import json
from dataclasses import replace

import numpy as np
import pytest

from semsearch.data import load_stsb
from semsearch.encoder import SentenceEncoder
from semsearch.encoder.presets import apply_overrides, preset
from semsearch.encoder.train import train_model
from semsearch.encoder.train_data import graded_batches
from semsearch.encoder.train_steps import lr_factor
from semsearch.errors import ConfigError, DataError, TrainingInterrupted

SENTENCES = ["A man is playing a guitar.", "A woman slices an onion.", "Kids play football."]


def quiet(**kwargs):
    return {"progress": False, "log": lambda _m: None, **kwargs}


def _with_stage(**train):
    # 36 InfoNCE steps (2 epochs of 18), then STS-B steps of 16 graded pairs, capped at 60 steps
    return apply_overrides(preset("tiny"), {"train.sts_epochs": "2", "train.sts_batch": "16",
                                            "train.max_steps": "60", **train})


def test_schedule_warms_up_and_decays_twice():
    cfg = replace(preset("tiny").train, lr=1e-3, sts_lr=1e-4, warmup_ratio=0.1)
    stage_one, total = 100, 150
    one = [lr_factor(s, stage_one, total, cfg) for s in range(stage_one)]
    two = [lr_factor(s, stage_one, total, cfg) for s in range(stage_one, total)]
    assert max(one) == pytest.approx(1.0) and one[-1] < 0.01
    assert max(two) == pytest.approx(0.1)  # sts_lr / lr
    assert two[0] < max(two) and two[-1] < 0.01 * 0.1


def test_graded_batches_are_full_disjoint_and_seeded():
    batches = graded_batches(70, 16, seed=3)
    assert [len(b) for b in batches] == [16] * 4
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == 64 and set(flat) <= set(range(70))
    assert batches == graded_batches(70, 16, seed=3) != graded_batches(70, 16, seed=4)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["cosine", "cosent"])
def test_stage_runs_after_infonce_and_is_recorded(tmp_path, data_dir, loss):
    train_model(_with_stage(**{"train.sts_loss": loss}), tmp_path / "m", data_dir=data_dir,
                **quiet())
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[1]["train_loss"] is not None and "sts_loss" not in history[1]
    assert history[2]["train_loss"] is None and history[2]["sts_loss"] > 0
    assert history[2]["step"] == 60 and history[2]["stsb_dev_spearman"] is not None
    # the stage moved the weights: its epoch scores STS-B dev differently from the last InfoNCE one
    assert history[2]["stsb_dev_spearman"] != history[1]["stsb_dev_spearman"]


@pytest.mark.slow
def test_early_stop_in_the_infonce_epochs_jumps_to_the_stage(tmp_path, data_dir):
    # at lr 1e-12 the InfoNCE epochs cannot move STS-B dev, so patience 1 stops them after the
    # second of four; the run must go on to the stage, not end
    config = apply_overrides(preset("tiny"), {
        "train.epochs": "4", "train.patience": "1", "train.lr": "1e-12", "train.sts_lr": "1e-4",
        "train.sts_epochs": "1", "train.sts_batch": "16", "train.max_steps": "90"})
    lines = []
    train_model(config, tmp_path / "m", data_dir=data_dir, progress=False, log=lines.append)
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert any(line.startswith("early stop") for line in lines)
    assert [h["epoch"] for h in history] == [1, 2, 5] and [h["step"] for h in history] == [
        18, 36, 90]
    assert history[1]["stsb_dev_spearman"] == history[0]["stsb_dev_spearman"]
    assert history[2]["train_loss"] is None and history[2]["sts_loss"] > 0
    assert history[2]["stsb_dev_spearman"] != history[1]["stsb_dev_spearman"]


@pytest.mark.slow
def test_the_cosine_stage_moves_cosines_toward_the_gold_scores(tmp_path, data_dir):
    """Squared error of STS-B dev cosines against gold / 5 falls from the InfoNCE model (the same
    seed, so the same first two epochs) to the one that went on through the stage."""
    rows = load_stsb("dev", data_dir)[:300]
    gold = np.array([r.score for r in rows]) / 5

    def error(folder):
        encoder = SentenceEncoder.load(folder)
        a = encoder.encode([r.sentence1 for r in rows])
        b = encoder.encode([r.sentence2 for r in rows])
        return float(np.mean(((a * b).sum(1) - gold) ** 2))

    train_model(preset("tiny"), tmp_path / "before", data_dir=data_dir, **quiet())
    staged = _with_stage(**{"train.sts_lr": "2e-3", "train.max_steps": "0", "train.sts_epochs": "1",
                            "train.patience": "0"})
    train_model(staged, tmp_path / "after", data_dir=data_dir, **quiet())
    for folder in ("before", "after"):  # the last weights, whichever epoch scored best
        (tmp_path / folder / "final.safetensors").replace(tmp_path / folder / "model.safetensors")
    assert error(tmp_path / "after") < error(tmp_path / "before")


def test_unknown_stage_loss_is_refused():
    with pytest.raises(ConfigError, match="sts_loss"):
        apply_overrides(preset("tiny"), {"train.sts_loss": "mse"})


@pytest.mark.slow
def test_resume_inside_the_stage_matches_an_uninterrupted_run(tmp_path, data_dir):
    config = _with_stage()
    train_model(config, tmp_path / "straight", data_dir=data_dir, **quiet())
    with pytest.raises(TrainingInterrupted):
        train_model(config, tmp_path / "resumed", data_dir=data_dir,
                    **quiet(on_step=lambda step: step == 45))
    train_model(config, tmp_path / "resumed", data_dir=data_dir, resume=True, **quiet())
    a = SentenceEncoder.load(tmp_path / "straight").encode(SENTENCES)
    b = SentenceEncoder.load(tmp_path / "resumed").encode(SENTENCES)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_too_few_graded_pairs_is_a_data_error_before_any_work(tmp_path, data_dir):
    with pytest.raises(DataError, match="train.sts_batch"):
        train_model(_with_stage(**{"train.sts_batch": "100000"}), tmp_path / "m",
                    data_dir=data_dir, **quiet())
    assert not (tmp_path / "m.partial").exists()
