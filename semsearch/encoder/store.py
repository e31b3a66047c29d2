"""Model folders on disk: what `train` writes and what everything else loads.

A model folder holds `config.json` (format version, package version, run config, parameter
counts), `tokenizer.json`, `model.safetensors` (best epoch), `final.safetensors` (last epoch) and
`history.json`. It is written under `<out>.partial/` and renamed into place when complete, so a
crash never leaves a half-written model where a model is expected.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported only by the functions that need it (queries skip it)
    import torch

from semsearch.errors import ModelError
from semsearch.permissions import set_default_mode

FORMAT_VERSION = 1
MODELS_ENV = "SEMSEARCH_MODELS"
CONFIG, TOKENIZER, WEIGHTS, FINAL, HISTORY = (
    "config.json", "tokenizer.json", "model.safetensors", "final.safetensors", "history.json"
)
CARD = "README.md"  # the model card train writes (semsearch/model_card.py)
MODEL_FILES = frozenset({CONFIG, TOKENIZER, WEIGHTS, FINAL, HISTORY, CARD})


def models_dir() -> Path:
    """Where models live: $SEMSEARCH_MODELS, else ./models."""
    return Path(os.environ.get(MODELS_ENV) or "models")


def resolve_model(path: str | Path | None = None) -> Path:
    """The model folder to use: `path` (a folder, or a name under models/), else the newest
    complete model folder under models/."""
    if path not in (None, ""):
        folder = Path(path).expanduser()
        if not folder.exists() and (models_dir() / str(path)).exists():
            folder = models_dir() / str(path)
        if not (folder / CONFIG).is_file():
            raise ModelError(f"{folder} is not a model folder (no {CONFIG}); train one with "
                             "`semsearch train --preset quick` or pass --model DIR")
        return folder
    base = models_dir()
    candidates = [p for p in base.glob("*") if (p / CONFIG).is_file() and (p / WEIGHTS).is_file()
                  and not p.name.endswith(".partial")] if base.is_dir() else []
    if not candidates:
        raise ModelError(f"no trained model under {base}/; train one with "
                         "`semsearch train --preset quick` or pass --model DIR")
    return max(candidates, key=lambda p: (p / WEIGHTS).stat().st_mtime)


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's config.json, checked for a format version this package reads."""
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable ({error}); retrain the model") from None
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        raise ModelError(f"{folder}: model format {version!r}, this semsearch reads format "
                         f"{FORMAT_VERSION}; retrain it with this version (`semsearch train`)")
    if "model" in config:
        check_model_config(config["model"], path)
    return config


# sane bounds of each model config field, checked before anything is allocated: far above any
# model this package trains or imports (BERT-large: hidden 1024, 24 layers, window 512), far
# below what would exhaust a machine
_INT_BOUNDS = {
    "vocab_size": (1, 1_000_000),
    "hidden": (1, 8192),
    "layers": (1, 128),
    "heads": (1, 256),
    "ff": (1, 65_536),
    "max_seq_len": (3, 16_384),
    "experts": (0, 256),
    "expert_top_k": (1, 256),
}
_FLOAT_BOUNDS = {"dropout": (0.0, 1.0), "attention_dropout": (0.0, 1.0),
                 "layer_norm_eps": (1e-30, 1.0)}
REQUIRED_MODEL_FIELDS = ("vocab_size", "hidden", "layers", "heads", "ff", "max_seq_len")
# model kinds (config.json model.kind; absent: transformer): semsearch/encoder/static.py
MODEL_KINDS = ("transformer", "static")
STATIC_MODEL_FIELDS = ("vocab_size", "hidden", "max_seq_len")
# parameters a model may have (4 GB of float32): a config past it is a damaged file
MAX_PARAMETERS = 1_000_000_000


def check_model_config(model: Any, path: Path) -> None:
    """Raise ModelError naming the field when a config.json model section is out of bounds:
    `"layers": 1000000` or `"heads": 0` must fail here, not in the allocator or a division."""
    fix = "fix or replace the model folder (retrain, or re-import it)"
    if not isinstance(model, dict):
        raise ModelError(f"{path}: 'model' must be an object of settings; {fix}")
    kind = model.get("kind", "transformer")
    if kind not in MODEL_KINDS:
        raise ModelError(f"{path}: model kind {kind!r} is not one this semsearch reads "
                         f"({', '.join(MODEL_KINDS)}); upgrade semsearch or use another model")
    if kind == "static":
        _check_static_config(model, path, fix)
        return
    for name in REQUIRED_MODEL_FIELDS:
        if name not in model:
            raise ModelError(f"{path}: model field {name!r} is missing; {fix}")
    for name, (low, high) in _INT_BOUNDS.items():
        value = model.get(name)
        if value is None and name not in REQUIRED_MODEL_FIELDS:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ModelError(f"{path}: model field {name!r} is {value!r}; it must be a whole "
                             f"number from {low} to {high:,}; {fix}")
    for name, (low, high) in _FLOAT_BOUNDS.items():
        value = model.get(name)
        if value is None:
            continue
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or not low <= value <= high):
            raise ModelError(f"{path}: model field {name!r} is {value!r}; it must be a number "
                             f"from {low:g} to {high:g}; {fix}")
    if "prenorm" in model and not isinstance(model["prenorm"], bool):
        raise ModelError(f"{path}: model field 'prenorm' is {model['prenorm']!r}; it must be "
                         f"true or false; {fix}")
    hidden, heads, experts = model["hidden"], model["heads"], model.get("experts", 0)
    if hidden % heads:
        raise ModelError(f"{path}: model field 'heads' ({heads}) must divide 'hidden' "
                         f"({hidden}); {fix}")
    if experts == 1:
        raise ModelError(f"{path}: model field 'experts' is 1; it must be 0 (dense) or at least "
                         f"2; {fix}")
    if experts and model.get("expert_top_k", 2) > experts:
        raise ModelError(f"{path}: model field 'expert_top_k' ({model.get('expert_top_k', 2)}) "
                         f"is more than 'experts' ({experts}); {fix}")
    ff_blocks = max(1, experts)
    parameters = (model["vocab_size"] + model["max_seq_len"]) * hidden + model["layers"] * (
        4 * hidden * hidden + 2 * hidden * model["ff"] * ff_blocks)
    if parameters > MAX_PARAMETERS:
        raise ModelError(f"{path}: model fields describe {parameters:,} parameters (more than "
                         f"{MAX_PARAMETERS:,}); check 'layers', 'hidden', 'ff', 'experts' and "
                         f"'vocab_size'; {fix}")


def _check_static_config(model: dict[str, Any], path: Path, fix: str) -> None:
    """A static model's section: vocab_size, hidden, max_seq_len in bounds, no transformer
    fields (a transformer setting on a static model is a mixed-up file)."""
    for name in STATIC_MODEL_FIELDS:
        low, high = _INT_BOUNDS[name] if name != "max_seq_len" else (1, 1_000_000)
        value = model.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ModelError(f"{path}: static model field {name!r} is {value!r}; it must be a "
                             f"whole number from {low} to {high:,}; {fix}")
    extra = sorted(set(model) - {*STATIC_MODEL_FIELDS, "kind"})
    if extra:
        raise ModelError(f"{path}: a static model has no {', '.join(map(repr, extra))} (those "
                         f"are transformer settings); {fix}")
    if model["vocab_size"] * model["hidden"] > MAX_PARAMETERS:
        raise ModelError(f"{path}: a {model['vocab_size']:,} x {model['hidden']} table is more "
                         f"than {MAX_PARAMETERS:,} parameters; {fix}")


def check_tokenizer_fits(vocab_size: int, tokenizer_size: int, folder: Path) -> None:
    """Every token id the tokenizer can produce must have a row in the embedding table."""
    if tokenizer_size > vocab_size:
        raise ModelError(f"{folder}: {TOKENIZER} has {tokenizer_size:,} tokens but the model "
                         f"field 'vocab_size' is {vocab_size:,} (token ids past the embedding "
                         "table); the tokenizer does not belong to these weights: restore it "
                         "or retrain")


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file (a format that cannot run code)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelError(f"{path}: unreadable weights ({error}); retrain the model") from None
    except Exception as error:  # noqa: BLE001 - safetensors raises its own SafetensorError
        raise ModelError(f"{path}: unreadable weights ({error}); retrain the model") from None


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Write the model's weights atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp))
    set_default_mode(tmp)  # the safetensors writer makes it 0600
    os.replace(tmp, path)


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_model_folder(folder: Path) -> bool:
    """Whether `folder` is provably a semsearch model: a config.json of this format with a model
    section, the weights, and nothing a model folder does not hold (its own files, evaluation
    reports eval*.json, the model card README.md, the calibrated fusion.json, a plots/ folder of
    images, an onnx/ folder of exported graphs)."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir() or not (folder / WEIGHTS).is_file():
        return False
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        return False
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        return False
    for entry in folder.iterdir():
        name = entry.name
        if entry.is_symlink():
            return False
        if entry.is_dir():
            allowed = {"plots": {".png", ".svg", ".pdf"}, "onnx": {".onnx", ".tmp", ".json"}}
            if name not in allowed or any(
                p.is_dir() or p.is_symlink() or p.suffix.lower() not in allowed[name]
                for p in entry.iterdir()
            ):
                return False
        elif not (
            name in MODEL_FILES
            or name in ("README.md", "fusion.json", "fusion.json.partial")
            or (name.startswith("eval") and name.endswith(".json"))
            or name.endswith((".onnx", ".json.tmp", ".safetensors.tmp"))
        ):
            return False
    return True


def check_model_replaceable(out: Path) -> None:
    """Refuse to replace anything but an empty folder or a semsearch model folder (--overwrite
    replaces models, never someone's other files)."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    if not is_model_folder(out):
        raise ModelError(
            f"{out} exists and is not a semsearch model folder (only a folder holding nothing "
            "but a semsearch model is replaced, even with --overwrite); choose another --out"
        )


def publish(partial: Path, out: Path, overwrite: bool) -> None:
    """Move a finished `partial` folder to `out`, replacing an old model only when asked and
    only when `out` is provably a model folder."""
    if out.exists():
        if not overwrite:
            raise ModelError(f"{out} already holds a model; pass --overwrite or choose --out")
        check_model_replaceable(out)
    swap_in(partial, out)


def swap_in(partial: Path, out: Path) -> None:
    """Rename the finished folder `partial` to `out`. An existing `out` is moved aside first and
    deleted after, or put back at once when the rename fails (a full disk can fail a rename),
    so `out` always holds one whole version."""
    if not out.exists():
        os.replace(partial, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    try:
        os.rmdir(old)  # a fresh name no one else uses, never a user's `<out>.old`
    except BaseException:
        shutil.rmtree(old, ignore_errors=True)
        raise
    os.replace(out, old)
    try:
        os.replace(partial, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def fingerprint(path: Path) -> str:
    """16 hex digits of the SHA-256 of a weights file: what indexes built before the model
    fingerprint covered the tokenizer and config recorded (see `model_fingerprint`)."""
    return sha256_file(path)[:16]


def model_fingerprints(folder: Path, config: dict[str, Any] | None = None) -> tuple[str, str]:
    """(model fingerprint, weights-only fingerprint) of a model folder.

    The model fingerprint, 16 hex digits, covers everything that determines a vector: the
    weights, the tokenizer.json bytes and the model section of config.json (layers, pre-norm,
    window, ...); an index records it and queries with any other model are refused. The
    weights-only one is what indexes built before recorded; they stay usable with it."""
    folder = Path(folder)
    model = (config if config is not None else read_config(folder)).get("model", {})
    weights = sha256_file(folder / WEIGHTS)
    digest = hashlib.sha256(b"semsearch-model-fingerprint-2\0")
    digest.update(bytes.fromhex(weights))
    digest.update(bytes.fromhex(sha256_file(folder / TOKENIZER)))
    digest.update(json.dumps(model, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return digest.hexdigest()[:16], weights[:16]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (weights and corpora can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
