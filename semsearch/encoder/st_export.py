"""A semsearch model folder as a sentence-transformers folder, on a stock transformers
architecture (no trust_remote_code).

The encoder maps exactly onto one of two Hugging Face models:

* pre-LayerNorm (semsearch's own, `prenorm=True`) -> RobertaPreLayerNormModel:
      token_embedding                  -> embeddings.word_embeddings
      position_embedding (row p)       -> embeddings.position_embeddings (row p + 1: RoBERTa
                                          numbers real tokens from pad_token_id + 1 = 1)
      (none)                           -> embeddings.token_type_embeddings (one zero row)
      embedding_norm                   -> embeddings.LayerNorm
      blocks.i.norm1 / norm2           -> layer.i.attention.LayerNorm / intermediate.LayerNorm
      blocks.i.attention.qkv           -> layer.i.attention.self.{query,key,value} (rows split)
      blocks.i.attention.out           -> layer.i.attention.output.dense
      blocks.i.mlp.0 / mlp.2           -> layer.i.intermediate.dense / output.dense
      final_norm                       -> LayerNorm (after the last layer)
* post-LayerNorm (imported BERT, `prenorm=False`) -> BertModel, the inverse of convert.py (the
  token-type row that import folded into the positions stays there; token types are zero).

The folder is laid out as sentence-transformers writes it (modules.json, sentence_bert_config.json,
config_sentence_transformers.json, 1_Pooling, 2_Normalize, tokenizer files, model.safetensors,
README.md), in the classic module names every sentence-transformers from 2.x to 6.x reads.
Torch-free: numpy and safetensors only. Mixture-of-experts models have no stock architecture
and are refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from semsearch import __version__
from semsearch.encoder.store import TOKENIZER, WEIGHTS, read_config, resolve_model, swap_in
from semsearch.encoder.tokenizer import CLS, MASK, PAD, SEP, UNK
from semsearch.errors import ModelError
from semsearch.permissions import set_default_mode
from semsearch.write_errors import write_failed

USAGE = """```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{path}")
vectors = model.encode(["I love programming", "I enjoy coding"])  # unit-length rows
print(model.similarity(vectors[:1], vectors[1:]))                  # cosine
```"""


def export_sentence_transformers(model: str | Path | None, out: str | Path,
                                 overwrite: bool = False) -> dict[str, Any]:
    """Write the model folder `model` as a sentence-transformers folder `out`; returns a summary.

    Written under a temporary sibling and renamed into place; an existing `out` is replaced only
    when it is a sentence-transformers folder and `overwrite` is given.
    """
    from safetensors.numpy import load_file, save_file

    folder = resolve_model(model)
    config = read_config(folder)
    shape = config.get("model") or {}
    if shape.get("kind") == "static":
        return _export_static(folder, Path(out).expanduser(), shape, overwrite)
    if shape.get("experts"):
        raise ModelError(f"{folder} is a mixture-of-experts model; no stock transformers "
                         "architecture holds its feed-forward experts, so it cannot be exported "
                         "to sentence-transformers")
    out = Path(out).expanduser()
    _check_out(out, overwrite)
    try:
        weights = {k: v.astype(np.float32) for k, v in load_file(str(folder / WEIGHTS)).items()}
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error type
        raise ModelError(f"{folder / WEIGHTS}: unreadable weights ({error})") from None
    prenorm = bool(shape.get("prenorm", True))
    hf_config = _hf_config(shape, prenorm)
    state = (_prenorm_state if prenorm else _bert_state)(weights, shape["layers"],
                                                         shape["hidden"])
    lowercase = bool((config.get("tokenizer") or {}).get("lowercase", False))

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        set_default_mode(partial)  # mkdtemp makes it private; a model folder is not
        save_file({k: np.ascontiguousarray(v) for k, v in state.items()},
                  str(partial / "model.safetensors"), metadata={"format": "pt"})
        set_default_mode(partial / "model.safetensors")  # the safetensors writer makes it 0600
        _write(partial / "config.json", hf_config)
        shutil.copyfile(folder / TOKENIZER, partial / "tokenizer.json")
        specials = {"unk_token": UNK, "sep_token": SEP, "pad_token": PAD, "cls_token": CLS,
                    "mask_token": MASK}
        _write(partial / "tokenizer_config.json", {
            # the tokenizer.json holds normalizer, WordPiece and [CLS] .. [SEP] post-processor
            "tokenizer_class": "PreTrainedTokenizerFast", **specials,
            "model_max_length": shape["max_seq_len"], "do_lower_case": lowercase,
            "padding_side": "right", "truncation_side": "right",
            "clean_up_tokenization_spaces": False})
        _write(partial / "special_tokens_map.json", specials)
        _write(partial / "sentence_bert_config.json",
               {"max_seq_length": shape["max_seq_len"], "do_lower_case": False})
        _write(partial / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling",
             "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize",
             "type": "sentence_transformers.models.Normalize"}])
        _write(partial / "config_sentence_transformers.json", {
            "__version__": {"sentence_transformers": "3.0.0", "semsearch": __version__},
            "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})
        (partial / "1_Pooling").mkdir()
        _write(partial / "1_Pooling" / "config.json", {
            "word_embedding_dimension": shape["hidden"], "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False, "include_prompt": True})
        (partial / "2_Normalize").mkdir()
        from semsearch.model_card import write_model_card

        write_model_card(folder, usage=USAGE.format(path=out), out=partial / "README.md")
        swap_in(partial, out)  # an old export is replaced only once the new one is whole
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        failed = write_failed(error, out, "an earlier export there is untouched")
        if failed is not None:
            raise failed from None
        raise
    return {"model": str(folder), "out": str(out), "format": "sentence-transformers",
            "architecture": hf_config["architectures"][0], "dim": shape["hidden"],
            "max_seq_len": shape["max_seq_len"]}


def _hf_config(shape: dict[str, Any], prenorm: bool) -> dict[str, Any]:
    common = {
        "vocab_size": shape["vocab_size"], "hidden_size": shape["hidden"],
        "num_hidden_layers": shape["layers"], "num_attention_heads": shape["heads"],
        "intermediate_size": shape["ff"], "hidden_act": "gelu",
        "hidden_dropout_prob": shape.get("dropout", 0.1),
        "attention_probs_dropout_prob": shape.get("attention_dropout", 0.0),
        "type_vocab_size": 1, "initializer_range": 0.02,
        "layer_norm_eps": shape.get("layer_norm_eps", 1e-5), "pad_token_id": 0,
        "position_embedding_type": "absolute", "torch_dtype": "float32",
    }
    if prenorm:  # positions numbered from pad_token_id + 1, so one more row
        return {"architectures": ["RobertaPreLayerNormModel"],
                "model_type": "roberta-prelayernorm",
                "max_position_embeddings": shape["max_seq_len"] + 1, **common}
    return {"architectures": ["BertModel"], "model_type": "bert",
            "max_position_embeddings": shape["max_seq_len"], **common}


def _split_qkv(weights: dict[str, np.ndarray], block: str, layer: str,
               hidden: int) -> dict[str, np.ndarray]:
    """qkv rows [0, H) are q, [H, 2H) k, [2H, 3H) v (see convert.bert_to_encoder_state)."""
    state = {}
    for part in ("weight", "bias"):
        stacked = weights[f"{block}attention.qkv.{part}"]
        for number, name in enumerate(("query", "key", "value")):
            state[f"{layer}attention.self.{name}.{part}"] = stacked[number * hidden:
                                                                    (number + 1) * hidden]
    return state


def _embeddings(weights: dict[str, np.ndarray], positions: np.ndarray,
                hidden: int) -> dict[str, np.ndarray]:
    return {
        "embeddings.word_embeddings.weight": weights["token_embedding.weight"],
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": np.zeros((1, hidden), np.float32),
        "embeddings.LayerNorm.weight": weights["embedding_norm.weight"],
        "embeddings.LayerNorm.bias": weights["embedding_norm.bias"],
        # unused by sentence-transformers; an identity pooler keeps loading free of warnings
        "pooler.dense.weight": np.eye(hidden, dtype=np.float32),
        "pooler.dense.bias": np.zeros(hidden, np.float32),
    }


def _prenorm_state(weights: dict[str, np.ndarray], layers: int,
                   hidden: int) -> dict[str, np.ndarray]:
    positions = weights["position_embedding.weight"]
    padded = np.concatenate([np.zeros((1, hidden), np.float32), positions])  # row 0: padding
    state = _embeddings(weights, padded, hidden)
    for i in range(layers):
        block, layer = f"blocks.{i}.", f"encoder.layer.{i}."
        state.update(_split_qkv(weights, block, layer, hidden))
        for part in ("weight", "bias"):
            state[f"{layer}attention.LayerNorm.{part}"] = weights[f"{block}norm1.{part}"]
            state[f"{layer}attention.output.dense.{part}"] = weights[f"{block}attention.out.{part}"]
            state[f"{layer}intermediate.LayerNorm.{part}"] = weights[f"{block}norm2.{part}"]
            state[f"{layer}intermediate.dense.{part}"] = weights[f"{block}mlp.0.{part}"]
            state[f"{layer}output.dense.{part}"] = weights[f"{block}mlp.2.{part}"]
    for part in ("weight", "bias"):
        state[f"LayerNorm.{part}"] = weights[f"final_norm.{part}"]
    return state


def _bert_state(weights: dict[str, np.ndarray], layers: int,
                hidden: int) -> dict[str, np.ndarray]:
    state = _embeddings(weights, weights["position_embedding.weight"], hidden)
    for i in range(layers):
        block, layer = f"blocks.{i}.", f"encoder.layer.{i}."
        state.update(_split_qkv(weights, block, layer, hidden))
        for part in ("weight", "bias"):
            state[f"{layer}attention.output.dense.{part}"] = weights[f"{block}attention.out.{part}"]
            state[f"{layer}attention.output.LayerNorm.{part}"] = weights[f"{block}norm1.{part}"]
            state[f"{layer}intermediate.dense.{part}"] = weights[f"{block}mlp.0.{part}"]
            state[f"{layer}output.dense.{part}"] = weights[f"{block}mlp.2.{part}"]
            state[f"{layer}output.LayerNorm.{part}"] = weights[f"{block}norm2.{part}"]
    return state


def _export_static(folder: Path, out: Path, shape: dict[str, Any],
                   overwrite: bool) -> dict[str, Any]:
    """A static model as sentence-transformers' StaticEmbedding (+ Normalize): the table with
    each token's weight folded into its row (EmbeddingBag's mean then has our weighted sum's
    direction), the tokenizer truncating at the model's window as semsearch does."""
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer as HFTokenizer

    _check_out(out, overwrite)
    try:
        tensors = load_file(str(folder / WEIGHTS))
        table = tensors["embedding"].astype(np.float32) * tensors["weight"].astype(np.float32)[:, None]
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error type
        raise ModelError(f"{folder / WEIGHTS}: unreadable static weights ({error})") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        partial.chmod(0o755)
        save_file({"embedding.weight": np.ascontiguousarray(table)},
                  str(partial / "model.safetensors"))
        tokenizer = HFTokenizer.from_file(str(folder / TOKENIZER))
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(shape["max_seq_len"]))
        tokenizer.save(str(partial / "tokenizer.json"))
        _write(partial / "modules.json", [
            {"idx": 0, "name": "0", "path": "",
             "type": "sentence_transformers.models.StaticEmbedding"},
            {"idx": 1, "name": "1", "path": "1_Normalize",
             "type": "sentence_transformers.models.Normalize"}])
        _write(partial / "config_sentence_transformers.json", {
            "__version__": {"sentence_transformers": "3.3.0", "semsearch": __version__},
            "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})
        (partial / "1_Normalize").mkdir()
        from semsearch.model_card import write_model_card

        write_model_card(folder, usage=USAGE.format(path=out), out=partial / "README.md")
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"model": str(folder), "out": str(out), "format": "sentence-transformers",
            "architecture": "StaticEmbedding", "dim": int(shape["hidden"]),
            "max_seq_len": int(shape["max_seq_len"])}


def _check_out(out: Path, overwrite: bool) -> None:
    if (out / "modules.json").is_file():
        if not overwrite:
            raise ModelError(f"{out} already holds a sentence-transformers model; pass "
                             "--overwrite or choose another --out")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out} exists and is not an exported model folder; choose another "
                         "--out")


def _write(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
