import json
from dataclasses import replace

import numpy as np
import pytest

from semsearch.encoder import SentenceEncoder
from semsearch.encoder.presets import preset
from semsearch.encoder.train import train_model
from semsearch.errors import ConfigError, ModelError, TrainingInterrupted

SENTENCES = ["A man is playing a guitar.", "A woman slices an onion.", "Kids play football."]


def quiet(**kwargs):
    return {"progress": False, "log": lambda _m: None, **kwargs}


def test_tiny_run_learns_and_writes_a_complete_folder(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}  # evaluate/plot tests may add reports
    assert names >= {"config.json", "tokenizer.json", "model.safetensors", "final.safetensors",
                     "history.json"}
    assert "checkpoint" not in names
    history = json.loads((tiny_model_dir / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for key in ("val_loss", "stsb_dev_spearman", "lr", "steps_per_s", "elapsed_s"):
        assert history[0][key] is not None
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["format_version"] == 1 and config["parameters"]["total"] > 0
    assert config["model"]["vocab_size"] <= 400
    assert not tiny_model_dir.with_name("tiny.partial").exists()


def test_save_load_gives_identical_embeddings(tiny_model_dir):
    first = SentenceEncoder.load(tiny_model_dir).encode(SENTENCES)
    second = SentenceEncoder.load(tiny_model_dir).encode(SENTENCES)
    assert first.dtype == np.float32 and first.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)


def test_encode_is_independent_of_batching(tiny_model_dir):
    encoder = SentenceEncoder.load(tiny_model_dir)
    together = encoder.encode(SENTENCES, batch_size=3)
    apart = np.concatenate([encoder.encode([s], batch_size=1) for s in SENTENCES])
    np.testing.assert_allclose(together, apart, atol=1e-5)


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(tmp_path, data_dir):
    config = preset("tiny")
    train_model(config, tmp_path / "straight", data_dir=data_dir, **quiet())
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train_model(config, tmp_path / "resumed", data_dir=data_dir,
                    **quiet(on_step=lambda step: step == 7))
    assert (tmp_path / "resumed.partial" / "checkpoint" / "state.pt").is_file()
    assert not (tmp_path / "resumed").exists()
    train_model(config, tmp_path / "resumed", data_dir=data_dir, resume=True, **quiet())
    a = SentenceEncoder.load(tmp_path / "straight").encode(SENTENCES)
    b = SentenceEncoder.load(tmp_path / "resumed").encode(SENTENCES)
    np.testing.assert_allclose(a, b, atol=1e-6)
    history_a = json.loads((tmp_path / "straight" / "history.json").read_text())
    history_b = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [h["train_loss"] for h in history_a] == pytest.approx([h["train_loss"] for h in history_b])


def test_refuses_existing_model_and_missing_checkpoint(tmp_path, tiny_model_dir, data_dir):
    with pytest.raises(ConfigError, match="already holds a model"):
        train_model(preset("tiny"), tiny_model_dir, data_dir=data_dir, **quiet())
    with pytest.raises(ConfigError, match="nothing to resume"):
        train_model(preset("tiny"), tmp_path / "new", data_dir=data_dir, resume=True, **quiet())


def test_batch_larger_than_data(tmp_path, data_dir):
    config = preset("tiny")
    config = replace(config, train=replace(config.train, batch_size=10_000))
    with pytest.raises(ConfigError, match="larger than"):
        train_model(config, tmp_path / "m", data_dir=data_dir, **quiet())


def test_load_rejects_other_format_versions(tmp_path, tiny_model_dir):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(tiny_model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["format_version"] = 99
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="format 99"):
        SentenceEncoder.load(copy)
    with pytest.raises(ModelError, match="not a model folder"):
        SentenceEncoder.load(tmp_path / "missing")


@pytest.mark.slow
def test_a_crashed_run_resumes_from_its_last_periodic_checkpoint(tmp_path, data_dir):
    """A process killed mid-epoch (no Ctrl-C, no clean stop) keeps its latest periodic
    checkpoint; resuming from it ends where an uninterrupted run ends."""
    config = preset("tiny")
    config = replace(config, train=replace(config.train, checkpoint_minutes=1e-9))  # every step
    train_model(config, tmp_path / "straight", data_dir=data_dir, **quiet())

    def crash(step):
        if step == 11:
            raise RuntimeError("simulated crash")
        return False

    with pytest.raises(RuntimeError, match="simulated crash"):
        train_model(config, tmp_path / "crashed", data_dir=data_dir, **quiet(on_step=crash))
    assert (tmp_path / "crashed.partial" / "checkpoint" / "state.pt").is_file()
    train_model(config, tmp_path / "crashed", data_dir=data_dir, resume=True, **quiet())
    a = SentenceEncoder.load(tmp_path / "straight").encode(SENTENCES)
    b = SentenceEncoder.load(tmp_path / "crashed").encode(SENTENCES)
    np.testing.assert_allclose(a, b, atol=1e-6)
