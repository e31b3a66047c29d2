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
    fingerprint,
    load_weights,
    read_config,
    resolve_model,
)
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.errors import ModelError


class SentenceEncoder:
    """Load with `SentenceEncoder.load(folder)`; `encode` gives L2-normalised float32 rows."""

    def __init__(self, model: Encoder, tokenizer: Tokenizer, path: Path, config: dict[str, Any],
                 fingerprint: str, device: torch.device) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.path = path
        self.config = config
        self.fingerprint = fingerprint
        self.device = device

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None) -> SentenceEncoder:
        """Load a model folder (default: the newest under models/) onto `device` (default auto)."""
        folder = resolve_model(path)
        config = read_config(folder)
        for name in (TOKENIZER, WEIGHTS):
            if not (folder / name).is_file():
                raise ModelError(f"{folder}: {name} is missing; retrain the model")
        tokenizer = Tokenizer.load(folder / TOKENIZER)
        try:
            model = Encoder(EncoderConfig(**config["model"]))
            model.load_state_dict(load_weights(folder / WEIGHTS))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ModelError(f"{folder}: weights do not match {CONFIG} ({error}); "
                             "retrain the model") from None
        target = pick_device(device or "auto")
        return cls(model.to(target), tokenizer, folder, config, fingerprint(folder / WEIGHTS),
                   target)

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

