"""A tiny mixture-of-experts run on real data: history, save/load, the numpy query path."""

import json

import numpy as np
import pytest

from semsearch.encoder import NumpyEncoder, SentenceEncoder
from semsearch.encoder.presets import apply_overrides, preset
from semsearch.encoder.train import train_model

pytestmark = pytest.mark.slow  # trains its own model (tens of seconds on a busy 2-core CPU)

TEXTS = ["A man is playing a guitar.", "A woman slices an onion.", "x",
         "Two dogs run across the snowy field while a child watches them from far away."]


@pytest.fixture(scope="module")
def moe_model_dir(tmp_path_factory, data_dir):
    config = apply_overrides(preset("tiny"), {"model.experts": "4", "model.expert_top_k": "2"})
    out = tmp_path_factory.mktemp("models") / "tiny-moe"
    lines: list[str] = []
    train_model(config, out, data_dir=data_dir, progress=False, log=lines.append)
    (out / "log.txt").write_text("\n".join(lines))
    return out


def test_tiny_moe_run_learns_and_records_expert_utilisation(moe_model_dir):
    history = json.loads((moe_model_dir / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for record in history:
        shares = np.array(record["expert_utilisation"])
        assert shares.shape == (2, 4)  # layers x experts
        np.testing.assert_allclose(shares.sum(1), 1.0, atol=1e-3)
        assert shares.min() > 0.05  # no expert left idle
        # summed over 2 layers: about 1.0 each when balanced, 4.0 each when collapsed
        assert 0 < record["balance_loss"] < 3.0
    log = (moe_model_dir / "log.txt").read_text()
    assert "balance_loss" in log and "experts % " in log
    config = json.loads((moe_model_dir / "config.json").read_text())
    assert (config["model"]["experts"], config["model"]["expert_top_k"]) == (4, 2)
    assert config["train"]["balance_loss_weight"] == 0.01


def test_moe_save_load_gives_identical_embeddings(moe_model_dir):
    first = SentenceEncoder.load(moe_model_dir).encode(TEXTS)
    second = SentenceEncoder.load(moe_model_dir).encode(TEXTS)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)


def test_moe_numpy_forward_matches_torch(moe_model_dir):
    torch_vectors = SentenceEncoder.load(moe_model_dir).encode(TEXTS)
    numpy_vectors = NumpyEncoder.load(moe_model_dir).encode(TEXTS, batch_size=2)
    assert ((torch_vectors * numpy_vectors).sum(1) >= 0.9999).all()
    np.testing.assert_allclose(numpy_vectors, torch_vectors, atol=1e-5)
