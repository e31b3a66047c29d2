"""Embedding many texts: sorted by length so each batch pads little, results in input order."""

from __future__ import annotations

import numpy as np
import torch

from semsearch.encoder.batching import pad
from semsearch.encoder.model import Encoder
from semsearch.encoder.tokenizer import Tokenizer


@torch.inference_mode()
def embed(
    model: Encoder,
    tokenizer: Tokenizer,
    texts: list[str],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised float32 embeddings, C-contiguous (len(texts), hidden), row i for texts[i]."""
    out = np.zeros((len(texts), model.config.hidden), dtype=np.float32)
    if not texts:
        return out
    was_training = model.training
    model.eval()
    ids = tokenizer.encode(texts, max_length=model.config.max_seq_len)
    order = np.argsort([len(s) for s in ids], kind="stable")[::-1]
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="encoding", unit="batch", leave=False)
    for start in starts:
        rows = order[start : start + batch_size]
        input_ids, mask = pad([ids[i] for i in rows])
        vectors = model(input_ids.to(device), mask.to(device))
        out[rows] = vectors.float().cpu().numpy()
    model.train(was_training)
    return out
