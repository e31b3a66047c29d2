"""What a training run measures and says at the end of each epoch: the validation loss and
STS-B dev Spearman (computed on rank 0 and shared), the epoch's line, the MoE routing summary,
the overfitting warning, and the step meter within an epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from semsearch.encoder import distributed
from semsearch.encoder.distributed import Ranks
from semsearch.encoder.inference import embed
from semsearch.encoder.model import Encoder
from semsearch.encoder.train_steps import batch_loss

Log = Callable[[str], None]


def validate(model: Encoder, tokenizer, val_examples, stsb_dev, cfg, device,
              ranks: Ranks) -> dict[str, float | None]:
    """The epoch's validation loss and STS-B dev Spearman, computed on rank 0 and shared, so
    that every rank makes the same model-selection and early-stopping decisions."""
    values: list[float | None] = [None, None]
    if ranks.main:
        values = [validation_loss(model, val_examples, cfg, device),
                  stsb_spearman(model, tokenizer, stsb_dev, device)]
    val_loss, spearman = distributed.from_main(values, ranks)
    return {"val_loss": val_loss, "stsb_dev_spearman": spearman}


@torch.no_grad()
def validation_loss(model, examples, cfg, device) -> float | None:
    anchors = examples[0]
    if len(anchors) < 2:
        return None
    model.eval()
    losses = []
    for start in range(0, len(anchors), cfg.batch_size):
        batch = list(range(start, min(start + cfg.batch_size, len(anchors))))
        if len(batch) > 1:
            losses.append(batch_loss(model, examples, batch, device, cfg).item())
    model.train()
    return float(np.mean(losses))


def stsb_spearman(model, tokenizer, rows, device) -> float | None:
    """STS-B dev Spearman x100 of cosine similarity against the gold scores."""
    if not rows:
        return None
    a = embed(model, tokenizer, [r.sentence1 for r in rows], 256, device)
    b = embed(model, tokenizer, [r.sentence2 for r in rows], 256, device)
    return float(100 * spearmanr((a * b).sum(1), [r.score for r in rows]).statistic)


def step_meter(total: int, done: int, description: str, progress: bool, log: Log):
    """The steps of an epoch: a bar on a terminal (`progress`), else a line every EVERY seconds
    through `log`, with the running loss and learning rate."""
    from semsearch.progress import Meter

    return Meter(total, description, log, bar=progress, unit="step", done=done)


def human(count: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return str(count)


def routing_summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """An epoch's MoE routing: mean balance loss (summed over layers) and, per layer, the share
    of routing assignments each expert got. Empty for a dense model.

    >>> routing_summary([{"balance_loss": 2.0, "assigned": [[3, 1]]},
    ...                   {"balance_loss": 1.0, "assigned": [[1, 3]]}])
    {'balance_loss': 1.5, 'expert_utilisation': [[0.5, 0.5]]}
    """
    if not steps:
        return {}
    assigned = np.sum([s["assigned"] for s in steps], axis=0)  # (layers, experts)
    shares = assigned / np.maximum(assigned.sum(1, keepdims=True), 1)
    return {"balance_loss": float(np.mean([s["balance_loss"] for s in steps])),
            "expert_utilisation": [[round(float(x), 4) for x in layer] for layer in shares]}


def describe(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}"]
    for key, fmt in (("train_loss", ".4f"), ("sts_loss", ".3f"), ("val_loss", ".4f"),
                     ("stsb_dev_spearman", ".2f"),
                     ("lr", ".2e"), ("steps_per_s", ".2f"), ("elapsed_s", ".0f"),
                     ("balance_loss", ".3f")):
        if record.get(key) is not None:
            parts.append(f"{key} {record[key]:{fmt}}")
    if record.get("expert_utilisation"):
        # percent of routing per expert, layer by layer: "experts % 27/24/25/24 31/19/26/24"
        parts.append("experts % " + " ".join("/".join(f"{100 * x:.0f}" for x in layer)
                                             for layer in record["expert_utilisation"]))
    return "  ".join(parts)


def warn_if_overfitting(history: list[dict[str, Any]], log: Log) -> None:
    if len(history) < 2:
        return
    previous, last = history[-2], history[-1]
    if None in (previous["val_loss"], last["val_loss"], previous["train_loss"], last["train_loss"]):
        return
    if last["val_loss"] > previous["val_loss"] and last["train_loss"] < previous["train_loss"]:
        message = (f"validation loss rose ({previous['val_loss']:.4f} -> {last['val_loss']:.4f}) "
                   "while training loss fell: the model may be overfitting")
        log("warning: " + message)
