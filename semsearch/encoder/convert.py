"""Import a sentence-transformers (or plain Hugging Face) BERT model as a semsearch model folder.

BERT is the post-LN transformer that `Encoder(prenorm=False)` is, so its weights map one to one:

    embeddings.word_embeddings                 -> token_embedding
    embeddings.position_embeddings (+ token_type_embeddings[0] on every row, since a single
      sentence has token type 0 throughout; rows past max_seq_len dropped)
                                               -> position_embedding
    embeddings.LayerNorm                       -> embedding_norm
    layer.i.attention.self.{query,key,value}   -> blocks.i.attention.qkv (stacked q, k, v)
    layer.i.attention.output.dense / LayerNorm -> blocks.i.attention.out / norm1
    layer.i.intermediate.dense                 -> blocks.i.mlp.0
    layer.i.output.dense / LayerNorm           -> blocks.i.mlp.2 / norm2

and the pooler is dropped (sentence-transformers does not use it). The model's tokenizer.json is
kept as it is, with its own padding and truncation switched off (semsearch pads and truncates
itself). Only mean pooling imports, since that is what `Encoder` computes; a trailing Normalize
module or its absence makes no difference to cosine similarity.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from semsearch import __version__
from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.store import (
    CONFIG,
    FORMAT_VERSION,
    TOKENIZER,
    WEIGHTS,
    check_model_replaceable,
    load_weights,
    publish,
    save_weights,
    sha256_file,
    write_json,
)
from semsearch.encoder.tokenizer import CLS, PAD, SEP, Tokenizer
from semsearch.errors import ModelError
from semsearch.permissions import set_default_mode
from semsearch.write_errors import write_failed

BERT_WEIGHTS = "model.safetensors"
# sentence-transformers module types by class name (the dotted path changed across versions)
MODULE_KINDS = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class Source:
    """What `read_source` found in a model folder: where the BERT files are, and its settings."""

    folder: Path  # the folder given
    bert_folder: Path  # config.json, model.safetensors, tokenizer.json (the Transformer module)
    kind: str  # "sentence-transformers" or "bert"
    bert_config: dict[str, Any]
    max_seq_len: int  # tokens per text, [CLS] and [SEP] included
    lowercase_input: bool  # sentence-transformers' do_lower_case: lower-case before tokenizing
    normalize: bool  # whether the source ends in a Normalize module


def import_model(source: str | Path, out: str | Path, max_seq_len: int | None = None,
                 overwrite: bool = False) -> dict[str, Any]:
    """Convert the BERT model folder `source` into the semsearch model folder `out`.

    `source` is a sentence-transformers folder (modules.json: Transformer, mean Pooling, optional
    Normalize) or a plain BERT folder (config.json, model.safetensors, tokenizer.json; pooled by
    mean, as sentence-transformers pools a plain model). `max_seq_len` defaults to the source's
    (sentence-transformers' max_seq_length, else the learned positions). The folder is written
    under a temporary name and renamed when complete. Raises ModelError naming what cannot be
    imported. Returns a summary (out, source, shape, parameter counts).
    """
    source_path, out = Path(source).expanduser(), Path(out).expanduser()
    _check_out(out, overwrite)
    found = read_source(source_path, max_seq_len)
    bert = found.bert_config
    config = EncoderConfig(
        vocab_size=int(bert["vocab_size"]),
        hidden=int(bert["hidden_size"]),
        layers=int(bert["num_hidden_layers"]),
        heads=int(bert["num_attention_heads"]),
        ff=int(bert["intermediate_size"]),
        max_seq_len=found.max_seq_len,
        dropout=float(bert.get("hidden_dropout_prob", 0.1)),
        prenorm=False,
        layer_norm_eps=float(bert.get("layer_norm_eps", 1e-12)),
    )
    weights_path = found.bert_folder / BERT_WEIGHTS
    state = bert_to_encoder_state(load_weights(weights_path), config)
    model = Encoder(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ModelError(f"{found.bert_folder}: weights do not match its config.json "
                         f"({_first_line(error)}); cannot import it") from None
    tokenizer = import_tokenizer(found.bert_folder / TOKENIZER, config.vocab_size,
                                 found.lowercase_input)
    counts = model.parameter_counts()
    meta = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "name": out.name,
        "model": dataclasses.asdict(config),
        "tokenizer": {"vocab_size": tokenizer.vocab_size,
                      "lowercase": tokenizer.inner.normalizer is not None
                      and tokenizer.inner.normalizer.normalize_str("ABC") == "abc"},
        "train": None,  # not trained by semsearch: see "source"
        "data": None,
        "parameters": counts,
        "source": {
            "imported_from": str(found.folder.resolve()),
            "kind": found.kind,
            "architecture": (bert.get("architectures") or ["BertModel"])[0],
            "name_or_path": bert.get("_name_or_path"),
            "weights_sha256": sha256_file(weights_path),
            "pooling": "mean",
            "normalize": found.normalize,
            "max_position_embeddings": int(bert["max_position_embeddings"]),
            "training_data": "unknown to semsearch"
            + ("; the source lists it in data_config.json"
               if (found.folder / "data_config.json").is_file() else ""),
        },
        "imported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        set_default_mode(partial)  # mkdtemp makes it private; a model folder is not
        tokenizer.save(partial / TOKENIZER)
        save_weights(model, partial / WEIGHTS)
        write_json(partial / CONFIG, meta)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # an empty folder is no model to keep
        publish(partial, out, overwrite)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)
        failed = write_failed(error, out, "a model already there is untouched")
        if failed is not None:
            raise failed from None
        raise
    return {"model": str(out), "source": str(found.folder), "kind": found.kind,
            "hidden": config.hidden, "layers": config.layers, "heads": config.heads,
            "max_seq_len": config.max_seq_len, "vocab_size": tokenizer.vocab_size,
            "parameters": counts}


def read_source(folder: Path, max_seq_len: int | None = None) -> Source:
    """Inspect a sentence-transformers or BERT folder; ModelError for anything not importable."""
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a folder; give a local sentence-transformers or BERT "
                         "model folder (config.json, model.safetensors, tokenizer.json)")
    bert_folder, kind, lowercase, normalize, st_max = folder, "bert", False, False, None
    if (folder / "modules.json").is_file():
        kind = "sentence-transformers"
        modules = _read_json(folder / "modules.json")
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise ModelError(f"{folder / 'modules.json'}: not a list of modules; cannot import it")
        kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
            raise ModelError(f"{folder}: modules {' -> '.join(kinds)}; only Transformer -> "
                             "Pooling (-> Normalize) imports, since semsearch models end in mean "
                             "pooling and L2 normalisation")
        bert_folder = folder / modules[0].get("path", "")
        pooling = _read_json(folder / modules[1].get("path", "") / "config.json")
        if _pooling_modes(pooling) != ["mean"]:
            raise ModelError(f"{folder}: pooling {'+'.join(_pooling_modes(pooling))}; only mean "
                             "pooling imports (semsearch models pool by mean)")
        normalize = "Normalize" in kinds
        if (bert_folder / "sentence_bert_config.json").is_file():
            settings = _read_json(bert_folder / "sentence_bert_config.json")
            st_max = settings.get("max_seq_length")
            lowercase = bool(settings.get("do_lower_case", False))
    for name in ("config.json", BERT_WEIGHTS, TOKENIZER):
        if not (bert_folder / name).is_file():
            hint = {
                BERT_WEIGHTS: "only safetensors weights import; save them with "
                "`model.save_pretrained(folder)` (safetensors is the default)",
                TOKENIZER: "save a fast tokenizer with "
                "`AutoTokenizer.from_pretrained(folder).save_pretrained(folder)`",
            }.get(name, "give the folder that holds the model")
            raise ModelError(f"{bert_folder}: {name} is missing; {hint}")
    bert = _read_json(bert_folder / "config.json")
    if not isinstance(bert, dict) or bert.get("model_type") != "bert":
        model_type = bert.get("model_type") if isinstance(bert, dict) else None
        raise ModelError(f"{bert_folder}: model_type {model_type!r}; only BERT models "
                         "(model_type 'bert') import into semsearch's encoder")
    for key, expected in (("hidden_act", "gelu"), ("position_embedding_type", "absolute")):
        if bert.get(key, expected) != expected:
            raise ModelError(f"{bert_folder}: {key} {bert[key]!r}; semsearch's encoder has only "
                             f"{expected!r}, so this model cannot be imported")
    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                           "intermediate_size", "max_position_embeddings") if k not in bert]
    if missing:
        raise ModelError(f"{bert_folder / 'config.json'}: no {', '.join(missing)}; not a "
                         "complete BERT config")
    positions = int(bert["max_position_embeddings"])
    window = int(max_seq_len or st_max or positions)
    if window > positions:
        raise ModelError(f"{folder}: max sequence length {window} exceeds the model's {positions} "
                         f"learned positions; pass --max-seq-len {positions} or less")
    if window < 2:
        raise ModelError(f"max sequence length {window} leaves no room for [CLS] and [SEP]")
    return Source(folder, bert_folder, kind, bert, window, lowercase, normalize)


def bert_to_encoder_state(bert: dict[str, torch.Tensor], config: EncoderConfig
                          ) -> dict[str, torch.Tensor]:
    """A BertModel state dict (with or without a `bert.` prefix) as an `Encoder` state dict.

    q, k and v are stacked in that order along the output rows: `SelfAttention` views the qkv
    output as (B, T, 3, heads, head size), so rows [0, H) are q, [H, 2H) k, [2H, 3H) v, each
    head-major as in BERT's own (B, T, heads, head size) view.
    """
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in bert else ""

    def get(name: str) -> torch.Tensor:
        key = prefix + name
        if key not in bert:
            raise ModelError(f"the weights have no {key}; not a BertModel checkpoint")
        return bert[key].float()

    extra = f"{prefix}encoder.layer.{config.layers}."
    if any(k.startswith(extra) for k in bert):
        raise ModelError(f"the weights hold more than the {config.layers} layers config.json "
                         "names; cannot import them")
    positions = get("embeddings.position_embeddings.weight")
    if len(positions) < config.max_seq_len:
        raise ModelError(f"the weights hold {len(positions)} positions, fewer than the "
                         f"{config.max_seq_len} asked for")
    state = {
        "token_embedding.weight": get("embeddings.word_embeddings.weight"),
        "position_embedding.weight": positions[: config.max_seq_len]
        + get("embeddings.token_type_embeddings.weight")[0],
        "embedding_norm.weight": get("embeddings.LayerNorm.weight"),
        "embedding_norm.bias": get("embeddings.LayerNorm.bias"),
    }
    for i in range(config.layers):
        layer, block = f"encoder.layer.{i}.", f"blocks.{i}."
        for part in ("weight", "bias"):
            state[block + f"attention.qkv.{part}"] = torch.cat(
                [get(layer + f"attention.self.{name}.{part}") for name in ("query", "key", "value")]
            )
            state[block + f"attention.out.{part}"] = get(layer + f"attention.output.dense.{part}")
            state[block + f"norm1.{part}"] = get(layer + f"attention.output.LayerNorm.{part}")
            state[block + f"mlp.0.{part}"] = get(layer + f"intermediate.dense.{part}")
            state[block + f"mlp.2.{part}"] = get(layer + f"output.dense.{part}")
            state[block + f"norm2.{part}"] = get(layer + f"output.LayerNorm.{part}")
    return {name: tensor.contiguous() for name, tensor in state.items()}


def import_tokenizer(path: Path, vocab_rows: int, lowercase_input: bool = False) -> Tokenizer:
    """The source's tokenizer.json as a semsearch Tokenizer: padding and truncation off,
    [PAD] at id 0, [CLS] .. [SEP] around each text, no id past the embedding table."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import normalizers

    try:
        inner = HFTokenizer.from_file(str(path))
    except Exception as error:  # noqa: BLE001 - tokenizers raises a bare Exception
        raise ModelError(f"{path}: not a readable tokenizer.json ({error})") from None
    inner.no_padding()  # a fixed-length padding config would pad every text to it
    inner.no_truncation()  # semsearch truncates itself, keeping [SEP] last
    if lowercase_input:  # sentence-transformers' do_lower_case lower-cases the text first
        steps = [normalizers.Lowercase()] + ([inner.normalizer] if inner.normalizer else [])
        inner.normalizer = normalizers.Sequence(steps)
    if inner.token_to_id(PAD) != 0:
        raise ModelError(f"{path}: {PAD} is not token 0 (semsearch pads with id 0); cannot "
                         "import this tokenizer")
    cls_id, sep_id = inner.token_to_id(CLS), inner.token_to_id(SEP)
    ids = inner.encode("hello world").ids
    if cls_id is None or sep_id is None or ids[0] != cls_id or ids[-1] != sep_id:
        raise ModelError(f"{path}: does not put {CLS} .. {SEP} around a text; cannot import it")
    if inner.get_vocab_size() > vocab_rows:
        raise ModelError(f"{path}: {inner.get_vocab_size()} tokens but the model embeds only "
                         f"{vocab_rows}; tokenizer and weights do not belong together")
    return Tokenizer(inner)


def _pooling_modes(config: dict[str, Any]) -> list[str]:
    """Active pooling modes of a Pooling config, old (`pooling_mode_mean_tokens: true`) or new
    (`pooling_mode: "mean"`) style."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        return [mode] if isinstance(mode, str) else list(mode)
    legacy = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
              "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens":
              "mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens": "weightedmean",
              "pooling_mode_lasttoken": "lasttoken"}
    return [mode for key, mode in legacy.items() if config.get(key)] or ["mean"]


def _check_out(out: Path, overwrite: bool) -> None:
    if (out / CONFIG).is_file():
        if not overwrite:
            raise ModelError(f"{out} already holds a model; pass --overwrite or choose --out")
        check_model_replaceable(out)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out} exists and is not a model folder; choose another --out")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"{path} is missing; not a complete sentence-transformers folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error})") from None


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]
