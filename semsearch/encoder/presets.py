"""Named run configurations, and overriding any of their fields by `section.key=value`."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from semsearch.data.mixture import MIXTURES, MixtureConfig, expand_sources
from semsearch.encoder.model import EncoderConfig
from semsearch.encoder.tokenizer import TokenizerConfig
from semsearch.encoder.train_config import TrainConfig
from semsearch.errors import ConfigError

SECTIONS = ("model", "tokenizer", "train", "data")
DERIVED = {"model.vocab_size"}  # set from the trained tokenizer, not by hand


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; saved in the model folder's config.json."""

    model: EncoderConfig = field(default_factory=EncoderConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: MixtureConfig = field(default_factory=MixtureConfig)

    def to_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RunConfig:
        """Rebuild from `to_dict()` output (other top-level keys are ignored)."""
        flat = _flatten({k: v for k, v in payload.items() if k in SECTIONS})
        vocab_size = flat.pop("model.vocab_size", None)
        config = apply_overrides(cls(), flat)
        if vocab_size is not None:
            config = replace(config, model=replace(config.model, vocab_size=int(vocab_size)))
        return config


PRESETS: dict[str, RunConfig] = {
    # the reference production shape on every local pair (data `local`, 223K pairs), 2 epochs of
    # batch 2048 at lr 4e-3, chosen on STS-B dev in an H200 sweep where dev rose with the batch
    # (64: 76.34, 256: 78.13, 1024: 79.40, 2048: 80.09); then 4 epochs of the STS-B stage's cosine
    # loss at 3e-4, which beat 1e-4 on this shape on the CPU (README "Results"). Gradient caching
    # holds 512 sequences' activations at a time, so a CPU runs the same recipe
    "production": RunConfig(
        model=EncoderConfig(hidden=384, layers=6, heads=12, ff=1536, max_seq_len=128),
        tokenizer=TokenizerConfig(vocab_size=8_000),
        train=TrainConfig(batch_size=2048, epochs=2, lr=4e-3, grad_cache_chunk=512,
                          sts_epochs=4, sts_lr=3e-4),
        data=MixtureConfig(max_pairs=0, val_pairs=500),
    ),
    "fastest": RunConfig(
        model=EncoderConfig(hidden=256, layers=4, heads=4, ff=1024, max_seq_len=128),
        tokenizer=TokenizerConfig(vocab_size=30_000),
        train=TrainConfig(batch_size=128, epochs=5, lr=5e-4),
        data=MixtureConfig(max_pairs=50_000),
    ),
    "max-quality": RunConfig(
        model=EncoderConfig(hidden=768, layers=12, heads=12, ff=3072, max_seq_len=128),
        tokenizer=TokenizerConfig(vocab_size=30_000),
        train=TrainConfig(batch_size=128, epochs=20, lr=3e-4),
        data=MixtureConfig(max_pairs=500_000),
    ),
    # a model worth searching with after about a quarter of an hour on a 2-core CPU (the README
    # demo): every pair of the `search` mixture seen once (49.5K pairs, 98 steps of batch 512 at
    # lr 2e-3), then 2 epochs of the STS-B stage at 1e-4. Chosen by the preset rule (mean dense
    # nDCG@10 on MLQuestions dev and ArguAna, STS-B dev down at most 1 point): against the earlier
    # `local` mixture (30K pairs x 2 epochs) STS-B dev 80.20 vs 81.14, MLQuestions 0.278 vs
    # 0.194, ArguAna 0.184 vs 0.096 (docs/results.md, Training)
    "quick": RunConfig(
        model=EncoderConfig(hidden=256, layers=4, heads=4, ff=1024, max_seq_len=64),
        tokenizer=TokenizerConfig(vocab_size=8_000),
        train=TrainConfig(batch_size=512, epochs=1, lr=2e-3, warmup_ratio=0.1, sts_epochs=2,
                          sts_lr=1e-4),
        data=MixtureConfig(sources=MIXTURES["search"], max_pairs=0, val_pairs=500),
    ),
    # a student of a teacher model (`--teacher DIR`, e.g. all-MiniLM-L6-v2 imported): the
    # teacher's width (384) at half its depth, so it encodes about twice as fast; InfoNCE plus
    # the squared distance to the teacher's vectors on every pair text, on the quick schedule.
    # Not from scratch in spirit: config.json's train.teacher names the teacher
    "distilled": RunConfig(
        model=EncoderConfig(hidden=384, layers=3, heads=12, ff=1536, max_seq_len=128),
        tokenizer=TokenizerConfig(vocab_size=8_000),
        train=TrainConfig(batch_size=512, epochs=2, lr=2e-3, warmup_ratio=0.1, sts_epochs=3,
                          sts_lr=1e-4, distill_weight=1.0),
        data=MixtureConfig(max_pairs=0, val_pairs=500),
    ),
    # seconds; for tests and smoke runs
    "tiny": RunConfig(
        model=EncoderConfig(hidden=32, layers=2, heads=2, ff=64, max_seq_len=32, dropout=0.0),
        tokenizer=TokenizerConfig(vocab_size=400),
        train=TrainConfig(batch_size=16, epochs=2, lr=2e-3, warmup_ratio=0.1, eval_limit=200),
        data=MixtureConfig(sources=("small",), max_pairs=320, val_pairs=32),
    ),
}


def preset(name: str) -> RunConfig:
    """The named preset, or ConfigError listing the valid names."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def with_corpora(config: RunConfig, corpora: tuple[str, ...] | list[str]) -> RunConfig:
    """`config` with a `corpus:PATH` passage source added for each corpus file."""
    specs = tuple(f"corpus:{Path(path).expanduser().resolve()}" for path in corpora)
    return replace(config, data=replace(config.data, sources=config.data.sources + specs))


def settable_keys() -> list[str]:
    return [f"{s}.{f.name}" for s in SECTIONS for f in fields(getattr(RunConfig(), s))
            if f"{s}.{f.name}" not in DERIVED]


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Set fields by `section.key` (or a bare `key` when only one section has it); string values
    are coerced to the field's type. Unknown keys raise ConfigError listing the valid ones."""
    keys = settable_keys()
    changes: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in overrides.items():
        matches = [k for k in keys if k == key or k.split(".", 1)[1] == key]
        if len(matches) != 1:
            why = "is ambiguous" if matches else "is not a config key"
            raise ConfigError(f"{key!r} {why}; valid keys: {', '.join(keys)}")
        section, name = matches[0].split(".", 1)
        section_type = type(getattr(config, section))
        hint = typing.get_type_hints(section_type)[name]
        changes[section][name] = _coerce(value, hint, matches[0])
    try:
        updated = {s: replace(getattr(config, s), **changes[s]) for s in SECTIONS}
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if changes["data"].get("sources") is not None:
        updated["data"] = replace(updated["data"], sources=expand_sources(updated["data"].sources))
    return RunConfig(**updated)


def parse_set_options(items: tuple[str, ...]) -> dict[str, str]:
    """`("train.lr=5e-4", ...)` -> `{"train.lr": "5e-4"}`."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def load_config_file(path: Path) -> dict[str, Any]:
    """A JSON config file: `{"model": {...}, "train": {...}}` or flat `{"train.lr": ...}`."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not a readable JSON config ({error})") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: a config file holds one JSON object")
    return _flatten(payload)


def _flatten(payload: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for key, value in payload.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        if value in (None, "none", "None", ""):
            return None
        return _coerce(value, options[0], key)
    try:
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            number = float(value)
            if number != int(number):
                raise ValueError("expected a whole number")
            return int(number)
        if hint is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{key}={value!r}: {error}") from None
