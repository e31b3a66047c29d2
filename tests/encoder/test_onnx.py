"""The ONNX export and the ONNX Runtime encoder against the torch encoder, on tiny models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnx", reason="the onnx extra is not installed")

from semsearch.encoder.onnx_encoder import OnnxEncoder, plan_batches  # noqa: E402
from semsearch.encoder.onnx_files import onnx_path  # noqa: E402
from semsearch.encoder.sentence_encoder import SentenceEncoder  # noqa: E402
from semsearch.errors import ModelError  # noqa: E402

TEXTS = ["Machine learning and AI", "A man is playing a guitar in the park.", "x", "",
         "Two dogs run across the snowy field while a child watches them from far away, " * 3]


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """A copy of the tiny trained (pre-LN) model, exported to ONNX once for the module."""
    from semsearch.encoder.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    return folder, export_onnx(folder)


def _post_ln_copy(tiny_model_dir, folder, seed=0):
    """A post-LN (imported-BERT-shaped) random model with BERT's LayerNorm eps."""
    import torch

    from semsearch.encoder.model import Encoder, EncoderConfig
    from semsearch.encoder.store import save_weights

    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"].update(prenorm=False, layer_norm_eps=1e-12)
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    save_weights(Encoder(EncoderConfig(**config["model"])), folder / "model.safetensors")
    return folder


def test_export_fuses_and_records_the_weights(exported):
    folder, report = exported
    assert set(report["files"]) == {"fp32", "int8"}
    assert report["fused_ops"].get("Attention") == 2  # one per block: the fusion applied
    assert len(report["int8_kept_fp32"]) == 2  # each block's feed-forward output stays fp32
    encoder = OnnxEncoder.load(folder, export=False)
    assert encoder.fingerprint == SentenceEncoder.load(folder).fingerprint
    assert not list((folder / "onnx").glob("*.tmp")) and not list((folder / "onnx").glob(".*"))


def test_queries_take_ort_when_warm_and_numpy_when_one_shot(exported):
    from semsearch.embedder import ONE_SHOT_NUMPY_TEXTS, load_embedder
    from semsearch.encoder.numpy_encoder import NumpyEncoder

    folder, _ = exported
    assert isinstance(load_embedder(folder, texts=1), OnnxEncoder)  # serve: warm, ORT
    one_shot = load_embedder(folder, texts=1, one_shot=True)  # a shell query: start-up counts
    assert isinstance(one_shot, NumpyEncoder)
    many = load_embedder(folder, texts=ONE_SHOT_NUMPY_TEXTS + 1, one_shot=True)
    assert isinstance(many, OnnxEncoder)
    ort = OnnxEncoder.load(folder, export=False)
    cosine = np.sum(one_shot.encode(TEXTS) * ort.encode(TEXTS), axis=1)
    assert cosine.min() >= 0.9999  # the same vectors either way


def test_onnx_fp32_matches_torch(exported):
    folder, _ = exported
    expected = SentenceEncoder.load(folder, device="cpu").encode(TEXTS)
    found = OnnxEncoder.load(folder, export=False, threads=1).encode(TEXTS, token_budget=64)
    assert found.dtype == np.float32 and found.flags["C_CONTIGUOUS"] and found.shape == expected.shape
    assert ((found * expected).sum(1) >= 0.9999).all()


def test_onnx_int8_stays_close_to_fp32(exported):
    folder, _ = exported
    expected = SentenceEncoder.load(folder, device="cpu").encode(TEXTS)
    int8 = OnnxEncoder.load(folder, precision="int8", export=False)
    found = int8.encode(TEXTS)
    assert int8.precision == "int8"
    assert onnx_path(folder, "int8").stat().st_size < onnx_path(folder, "fp32").stat().st_size
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    assert (found * expected).sum(1).mean() >= 0.95


def test_post_ln_model_matches_torch(tiny_model_dir, tmp_path):
    """The imported-BERT shape (post-LN, eps 1e-12) exports and matches too."""
    folder = _post_ln_copy(tiny_model_dir, tmp_path / "post")
    expected = SentenceEncoder.load(folder, device="cpu").encode(TEXTS)
    found = OnnxEncoder.load(folder).encode(TEXTS)  # exported on first use
    assert ((found * expected).sum(1) >= 0.9999).all()


def test_stale_graph_is_never_run(exported, tiny_model_dir, tmp_path):
    folder = tmp_path / "stale"
    shutil.copytree(exported[0], folder)
    _post_ln_copy(tiny_model_dir, tmp_path / "other", seed=1)
    shutil.copy(tmp_path / "other" / "model.safetensors", folder / "model.safetensors")
    shutil.copy(tmp_path / "other" / "config.json", folder / "config.json")
    with pytest.raises(ModelError, match="stale.*semsearch export"):
        OnnxEncoder.load(folder, export=False)
    encoder = OnnxEncoder.load(folder)  # re-exported from the new weights
    expected = SentenceEncoder.load(folder, device="cpu").encode(TEXTS)
    assert ((encoder.encode(TEXTS) * expected).sum(1) >= 0.9999).all()


def test_missing_graph_without_export_names_the_command(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    shutil.rmtree(tmp_path / "m" / "onnx", ignore_errors=True)  # another test may have exported
    with pytest.raises(ModelError, match="missing; export it with `semsearch export"):
        OnnxEncoder.load(tmp_path / "m", export=False)


def test_plan_batches_keeps_the_token_budget():
    rng = np.random.default_rng(0)
    ids = [[1] * int(n) for n in rng.integers(1, 40, size=300)]
    seen = []
    for rows, tokens, mask in plan_batches(ids, token_budget=256, max_rows=32):
        assert tokens.shape == mask.shape and len(rows) <= 32
        assert tokens.size <= 256 or len(rows) == 1
        assert (mask.sum(1) == [len(ids[i]) for i in rows]).all()
        seen += rows.tolist()
    assert sorted(seen) == list(range(300))
