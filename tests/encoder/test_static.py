"""Static embedding models: the numpy encoder, the torch module it is trained as, the weights,
the config checks, and distillation's teacher cache, resume and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.encoder.static import StaticEncoder, sif_from_counts, sif_weights, static_module
from semsearch.encoder.store import read_config
from semsearch.errors import DataError, ModelError


def run(*args, **env):
    return CliRunner().invoke(main, [str(a) for a in args], env=env or None)


def test_vectors_are_unit_rows_for_any_text(static_model_dir):
    encoder = StaticEncoder.load(static_model_dir)
    texts = ["a cat sits on the mat", "", "\x00\x01", "word " * 5000, "ünïcödé ☃ 字"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (5, 16) and vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"] and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # batches do not change a text's vector
    assert np.allclose(encoder.encode(texts[:1]), vectors[:1], atol=1e-6)


def test_numpy_vectors_equal_the_training_module(static_model_dir):
    from safetensors.numpy import load_file

    tensors = load_file(str(static_model_dir / "model.safetensors"))
    module = static_module(tensors["embedding"], tensors["weight"])
    encoder = StaticEncoder.load(static_model_dir)
    texts = ["rivers flow to the sea", "the quick brown fox", "tea"]
    ids = encoder.token_ids(texts)
    flat = torch.tensor([t for s in ids for t in s])
    offsets = torch.tensor([0, len(ids[0]), len(ids[0]) + len(ids[1])])
    with torch.no_grad():
        expected = module(flat, offsets).numpy()
    assert np.allclose(encoder.encode(texts), expected, atol=1e-5)


def test_a_long_text_keeps_its_first_window(static_model_dir):
    encoder = StaticEncoder.load(static_model_dir)
    window = encoder.max_seq_len
    head = " ".join(["river"] * window)
    assert encoder.count_tokens([head])[0] >= window
    a, b = encoder.encode([head, head + " mountain " * 50])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-6)


def test_sif_weights_fall_with_frequency():
    zipf = sif_weights(1000)
    assert zipf[0] < zipf[500] < zipf[999] and zipf.mean() == pytest.approx(1.0, rel=1e-5)
    counts = sif_from_counts([[1, 1, 1, 2]], 4)
    assert counts[1] < counts[2] < counts[3]


def test_every_loader_gives_the_static_encoder(static_model_dir):
    import semsearch
    from semsearch.embedder import load_embedder
    from semsearch.encoder.numpy_encoder import NumpyEncoder
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    for encoder in (SentenceEncoder.load(static_model_dir),
                    SentenceEncoder.load(static_model_dir, precision="int8"),
                    NumpyEncoder.load(static_model_dir),
                    load_embedder(static_model_dir, backend="onnx"),
                    load_embedder(static_model_dir, backend="torch"),
                    semsearch.load(static_model_dir)):
        assert isinstance(encoder, StaticEncoder)


def test_config_names_the_kind_and_refuses_transformer_fields(static_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(static_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    assert read_config(folder)["model"]["kind"] == "static"
    config["model"]["layers"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="static model has no 'layers'"):
        read_config(folder)
    config["model"].pop("layers")
    config["model"]["kind"] = "mamba"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="model kind 'mamba'"):
        read_config(folder)


def test_tensors_that_do_not_match_the_config_are_refused(static_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(static_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["hidden"] = 32
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="do not match config.json"):
        StaticEncoder.load(folder)


def test_distill_resumes_from_the_teacher_cache(tiny_model_dir, wiki_text_file, tmp_path,
                                                monkeypatch):
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "student"
    args = ["distill", "--teacher", tiny_model_dir, "--wiki", "none", "--text", wiki_text_file,
            "--set", "hidden=8", "--set", "epochs=1", "--out", out]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert "encoding 399 of 399 texts" in first.output
    again = run(*args[:-1], tmp_path / "second", "--set", "epochs=2")
    assert again.exit_code == 0, again.output
    assert "399 from the cache" in again.output and "encoding" not in again.output
    assert StaticEncoder.load(out).dim == 8


def test_distill_resume_continues_a_checkpoint(tiny_model_dir, wiki_text_file, tmp_path,
                                               monkeypatch):
    from semsearch.encoder import static_train

    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "student"
    args = ["distill", "--teacher", tiny_model_dir, "--wiki", "none", "--text", wiki_text_file,
            "--set", "hidden=8", "--set", "epochs=2", "--out", out]
    real = static_train._save_checkpoint
    calls = []

    def stop_after_first(*a, **k):
        real(*a, **k)
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(static_train, "_save_checkpoint", stop_after_first)
    killed = run(*args)
    assert calls == [1] and killed.exit_code != 0
    assert (tmp_path / "student.partial" / "checkpoint" / "loop.json").is_file()
    monkeypatch.setattr(static_train, "_save_checkpoint", real)
    resumed = run(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming after epoch 1 of 2" in resumed.output and "from the cache" in resumed.output
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert not (tmp_path / "student.partial").exists()


@pytest.mark.parametrize("content, words", [
    (b"", "holds no text"),
    (b"\x00\x01\x02binary", "binary file"),
    (b"caf\xe9 au lait\n", "not UTF-8"),
])
def test_bad_text_files_get_one_line(tiny_model_dir, tmp_path, content, words):
    path = tmp_path / "t.txt"
    path.write_bytes(content)
    result = run("distill", "--teacher", tiny_model_dir, "--wiki", "none", "--text", path,
                 "--out", tmp_path / "s")
    assert result.exit_code != 0 and words in result.output
    assert "Traceback" not in result.output and not (tmp_path / "s").exists()


def test_a_student_wider_than_its_teacher_is_a_clear_line(tiny_model_dir, wiki_text_file,
                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    result = run("distill", "--teacher", tiny_model_dir, "--wiki", "none", "--text",
                 wiki_text_file, "--set", "hidden=64", "--out", tmp_path / "s")
    assert result.exit_code != 0 and "wider than its teacher's 32-dim" in result.output
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_transformer_settings_on_a_static_model_name_the_kind(tiny_model_dir, tmp_path):
    result = run("distill", "--teacher", tiny_model_dir, "--set", "model.layers=3",
                 "--out", tmp_path / "s")
    assert result.exit_code != 0 and "a static model has no setting 'model.layers'" in result.output


def test_unlabelled_readers_refuse_what_they_cannot_read(tmp_path):
    from semsearch.data.unlabelled import evenly, parse_spec, text_file

    assert evenly(list(range(10)), 5) == [0, 2, 4, 6, 8]
    with pytest.raises(DataError, match="unknown text source"):
        parse_spec("wiki-everything@5")
    with pytest.raises(DataError, match="not found"):
        text_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("spec, source", [("questions@300", "quora"),
                                          ("captions@300", "flickr30k"),
                                          ("paraphrases@300", "mrpc")])
def test_pair_sources_give_distinct_texts_and_never_an_sts_evaluation_sentence(data_dir, spec,
                                                                                 source):
    from semsearch.data.mixture import _evaluation_sentences, normalise
    from semsearch.data.unlabelled import wiki_texts

    texts = wiki_texts(spec, data_dir)
    assert len(texts) == 300 == len(set(texts))
    assert all(t.strip() == t and t for t in texts)
    blocked = _evaluation_sentences(data_dir)
    assert not {normalise(t) for t in texts} & blocked
    if source == "flickr30k":
        # captions do hold STS-B sentences: the filter is what keeps them out
        from semsearch.data import sources

        every = {normalise(p.anchor) for p in sources.load_training_pairs(
            "flickr30k", ("all",), data_dir, 0.0, 5)}
        assert every & blocked


def test_keep_rare_holds_the_rows_and_weights_of_rare_tokens(tiny_model_dir, wiki_text_file,
                                                             tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    from semsearch.encoder.static_train import StaticTrainConfig, distill_static
    from semsearch.encoder.tokenizer import Tokenizer

    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    texts = wiki_text_file.read_text(encoding="utf-8").splitlines()
    tensors = {}
    for keep, epochs in ((3, 1), (3, 3), (0, 3)):
        out = tmp_path / f"keep{keep}-{epochs}"
        # val_texts=0: every text is fitted, so the counts below are the fit's
        distill_static(tiny_model_dir, out, StaticTrainConfig(
            hidden=16, epochs=epochs, val_texts=0, extra_vocab=0, keep_rare=keep, lr=1e-2),
            texts, {"text": len(texts)}, progress=False, log=lambda _m: None)
        tensors[keep, epochs] = load_file(str(out / "model.safetensors"))
    tokenizer = Tokenizer.load(tiny_model_dir / "tokenizer.json")
    counts = np.bincount([t for e in tokenizer.inner.encode_batch_fast(
        texts, add_special_tokens=False) for t in e.ids], minlength=tokenizer.vocab_size)
    rare = np.flatnonzero((counts > 0) & (counts < 3))
    common = np.flatnonzero(counts >= 3)
    assert len(rare) and len(common)
    one, three, free = tensors[3, 1], tensors[3, 3], tensors[0, 3]
    # held: one epoch or three, the rare tokens' rows and weights are where they started ...
    np.testing.assert_array_equal(one["embedding"][rare], three["embedding"][rare])
    np.testing.assert_array_equal(one["weight"][rare], three["weight"][rare])
    # ... while the common ones were fitted, and without keep_rare the rare ones move too
    assert np.abs(one["embedding"][common] - three["embedding"][common]).max() > 1e-4
    assert np.abs(free["embedding"][rare] - three["embedding"][rare]).max() > 1e-4
