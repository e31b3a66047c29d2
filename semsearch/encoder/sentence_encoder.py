"""A trained model, loaded from its folder, that turns texts into vectors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semsearch.encoder.device import pick_device
from semsearch.encoder.inference import embed
from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.store import (
    CONFIG,
    TOKENIZER,
    WEIGHTS,
    check_tokenizer_fits,
    load_weights,
    model_fingerprints,
    read_config,
    resolve_model,
)
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.errors import ConfigError, ModelError

# fp32: the weights as trained. int8: the Linear layers' weights quantized to int8 (one scale per
# matrix) and their inputs per batch, CPU only, except each block's feed-forward output layer:
# its input is the GELU output, whose outliers per-batch activation scales crush. On 800 STS-B
# test sentences with all-MiniLM-L6-v2, cosine to fp32 is mean 0.987 / min 0.948 this way and
# 0.949 / 0.854 quantizing every Linear, for 1.8x vs 2.1x fp32 speed (/tmp A/B, one run);
# `evaluate --precision int8` shows what it costs a given model
PRECISIONS = ("fp32", "int8")


class SentenceEncoder:
    """Load with `SentenceEncoder.load(folder)`; `encode` gives L2-normalised float32 rows."""

    def __init__(self, model: Encoder, tokenizer: Tokenizer, path: Path, config: dict[str, Any],
                 fingerprint: str, device: torch.device, precision: str = "fp32") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.path = path
        self.config = config
        self.fingerprint = fingerprint  # weights, tokenizer and model config: same for fp32, int8
        self.device = device
        self.precision = precision

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None,
             precision: str = "fp32") -> SentenceEncoder:
        """Load a model folder (default: the newest under models/) onto `device` (default auto)
        in `precision` (fp32, or int8: dynamic int8 quantization of every Linear, CPU only; with
        the device left to auto, int8 runs on the CPU)."""
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; use {' or '.join(PRECISIONS)}")
        if precision == "int8" and device not in (None, "auto", "cpu"):
            raise ConfigError(f"--precision int8 runs on the CPU only (PyTorch's dynamic "
                              f"quantization), not on {device}; pass --device cpu or "
                              "--precision fp32")
        folder = resolve_model(path)
        config = read_config(folder)
        if config.get("model", {}).get("kind") == "static":  # no graph: its own numpy path
            from semsearch.encoder.static import StaticEncoder

            return StaticEncoder.load(folder)
        for name in (TOKENIZER, WEIGHTS):
            if not (folder / name).is_file():
                raise ModelError(f"{folder}: {name} is missing; retrain the model")
        tokenizer = Tokenizer.load(folder / TOKENIZER)
        check_tokenizer_fits(config["model"]["vocab_size"], tokenizer.vocab_size, folder)
        try:
            model = Encoder(EncoderConfig(**config["model"]))
            model.load_state_dict(load_weights(folder / WEIGHTS))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ModelError(f"{folder}: weights do not match {CONFIG} ({error}); "
                             "retrain the model") from None
        if precision == "int8":
            model, target = quantize_int8(model.eval()), torch.device("cpu")
        else:
            target = pick_device(device or "auto")
            model = model.to(target)
        full, weights_only = model_fingerprints(folder, config)
        encoder = cls(model, tokenizer, folder, config, full, target, precision)
        encoder.weights_fingerprint = weights_only  # what indexes built before recorded
        return encoder

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def dim(self) -> int:
        return self.model.config.hidden

    @property
    def max_seq_len(self) -> int:
        return self.model.config.max_seq_len

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Embeddings of `texts`: float32, C-contiguous, (len(texts), dim), unit length."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        return embed(self.model, self.tokenizer, list(texts), batch_size, self.device, progress)

    def similarity(self, text_a: str, text_b: str) -> float:
        """Cosine similarity of two texts."""
        a, b = self.encode([text_a, text_b])
        return float(a @ b)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Untruncated token counts, [CLS] and [SEP] included."""
        return [len(ids) for ids in self.tokenizer.encode(list(texts))]



def quantize_int8(model: Encoder) -> Encoder:
    """A copy of `model` (on the CPU) whose Linear layers, but the feed-forward outputs, compute
    in int8: weights quantized per tensor once, activations per batch (PyTorch's dynamic
    quantization)."""
    import warnings

    with warnings.catch_warnings():
        # torch.ao.quantization warns that it moves to torchao; it still works in torch 2.13
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        spec = {name: default_dynamic_qconfig for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear) and not name.endswith("mlp.2")}
        return quantize_dynamic(model.to("cpu"), spec, dtype=torch.qint8)
