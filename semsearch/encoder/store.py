"""Model folders on disk: what `train` writes and what everything else loads.

A model folder holds `config.json` (format version, package version, run config, parameter
counts), `tokenizer.json`, `model.safetensors` (best epoch), `final.safetensors` (last epoch) and
`history.json`. It is written under `<out>.partial/` and renamed into place when complete, so a
crash never leaves a half-written model where a model is expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported only by the functions that need it (queries skip it)
    import torch

from semsearch.errors import ModelError

FORMAT_VERSION = 1
MODELS_ENV = "SEMSEARCH_MODELS"
CONFIG, TOKENIZER, WEIGHTS, FINAL, HISTORY = (
    "config.json", "tokenizer.json", "model.safetensors", "final.safetensors", "history.json"
)


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
    return config


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
    os.replace(tmp, path)


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def publish(partial: Path, out: Path, overwrite: bool) -> None:
    """Move a finished `partial` folder to `out`, replacing an old model only when asked."""
    if out.exists():
        if not overwrite:
            raise ModelError(f"{out} already holds a model; pass --overwrite or choose --out")
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out)


def fingerprint(path: Path) -> str:
    """16 hex digits of the SHA-256 of a weights file: what an index records of its model."""
    return sha256_file(path)[:16]


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (weights and corpora can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
