"""One optimiser step of training, and the pieces it is made of: the InfoNCE step on a batch of
pairs (`train_step`, with gradient caching for batches larger than memory allows) and the
STS-B stage's graded step (`sts_step`), the model as the steps call it (wrapped in
DistributedDataParallel under torchrun), the optimiser and the learning-rate schedule.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F

from semsearch.encoder import distributed
from semsearch.encoder.device import autocast
from semsearch.encoder.distill import TeacherTargets, distill_loss
from semsearch.encoder.distributed import SINGLE, Ranks
from semsearch.encoder.loss import cosent, cosine_regression, info_nce
from semsearch.encoder.model import Encoder
from semsearch.encoder.moe import take_routing
from semsearch.encoder.schedule import warmup_cosine
from semsearch.encoder.train_data import batch_sequences


def train_step(model, optimizer, scheduler, examples, batch: list[int], cfg, device,
               routing_log: list[dict[str, Any]] | None = None,
               targets: TeacherTargets | None = None, ranks: Ranks = SINGLE) -> float:
    """One optimiser step on one (global) batch; returns its InfoNCE loss (plus
    cfg.distill_weight x the distillation loss when `targets` holds a teacher's vectors).

    Under torchrun each rank embeds its slice of the batch (`Ranks.local`) and scores its anchors
    against the positives and hard negatives of every rank; `model` is then the DDP-wrapped
    model (`distributed_model`) and the returned loss is the mean over ranks, which is the
    loss of the whole batch. A mixture-of-experts model also minimises its balance loss (summed
    over layers, times cfg.balance_loss_weight); that loss and the per-layer expert counts go to
    `routing_log`.
    """
    take_routing(inner_encoder(model))  # drop what validation and STS-B scoring routed since the last step
    optimizer.zero_grad(set_to_none=True)
    local = ranks.local(batch)
    sequences = batch_sequences(examples, local)
    counts = count_negatives(examples, batch, ranks)
    target = targets.batch(local, device) if targets is not None else None  # this rank's rows
    # the same choice on every rank (their collectives must match): by the largest slice
    if cfg.grad_cache_chunk and 2 * len(local) + max(counts) > cfg.grad_cache_chunk:
        loss = grad_cache_backward(model, sequences, len(local), device, cfg, routing_log,
                                    target, ranks, counts)
    else:
        with autocast(device, cfg.amp):
            loss = sequences_loss(model, sequences, len(local), cfg, target, ranks, counts)
        backward(model, loss, cfg, routing_log)
    optimise(model, optimizer, scheduler, cfg)
    return distributed.mean_over_ranks(loss.item(), ranks)


def sts_step(model, optimizer, scheduler, graded, batch: list[int], cfg, device,
             ranks: Ranks = SINGLE) -> float:
    """One optimiser step of the STS-B stage's loss (cfg.sts_loss) on a batch of graded pairs
    (`tokenize_graded` rows); returns the loss. CoSENT's scale is InfoNCE's `cfg.scale`.

    Under torchrun each rank embeds its slice and the cosines are gathered, so every rank
    computes the loss of the whole batch (CoSENT compares every two pairs of it)."""
    take_routing(inner_encoder(model))
    optimizer.zero_grad(set_to_none=True)
    first, second, scores = graded
    local = ranks.local(batch)
    with autocast(device, cfg.amp):
        vectors = encode_batch(model, [first[i] for i in local] + [second[i] for i in local],
                          cfg.length_chunks).float()
    gold = torch.tensor([scores[i] for i in batch], device=device)
    cosines = distributed.gather((vectors[: len(local)] * vectors[len(local):]).sum(-1), ranks)
    loss = (cosent(cosines, gold, cfg.scale) if cfg.sts_loss == "cosent"
            else cosine_regression(cosines, gold))
    backward(model, loss, cfg)
    optimise(model, optimizer, scheduler, cfg)
    return loss.item()


def backward(model, loss: torch.Tensor, cfg,
              routing_log: list[dict[str, Any]] | None = None) -> None:
    """Backpropagate `loss`, plus cfg.balance_loss_weight x the balance loss of a
    mixture-of-experts model's routing since the last `take_routing` (logged to `routing_log`)."""
    objective = loss
    routing = take_routing(inner_encoder(model))
    if routing is not None:
        objective = loss + cfg.balance_loss_weight * routing.balance_loss
        log_routing(routing_log, routing.balance_loss.item(), routing.assigned)
    objective.backward()


def optimise(model, optimizer, scheduler, cfg) -> None:
    """Clip the gradient norm, then step the optimiser and the schedule."""
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()


def lr_factor(step: int, stage_one: int, total: int, cfg) -> float:
    """The multiplier of cfg.lr at `step`: warmup and cosine over the InfoNCE steps, then warmup
    and cosine again over the STS-B steps, peaking at cfg.sts_lr."""
    if step < stage_one:
        warmup = max(1, round(cfg.warmup_ratio * stage_one))
        return warmup_cosine(step, stage_one, warmup, cfg.min_lr_ratio)
    stage_two = total - stage_one
    warmup = max(1, round(cfg.warmup_ratio * stage_two))
    return cfg.sts_lr / cfg.lr * warmup_cosine(step - stage_one, stage_two, warmup)


def info_nce_loss(vectors: torch.Tensor, pairs: int, cfg, target: torch.Tensor | None = None,
              ranks: Ranks = SINGLE, negative_counts: list[int] | None = None) -> torch.Tensor:
    """InfoNCE over a batch's (anchors, positives, hard negatives) rows — under torchrun, of
    this rank's anchors against the whole global batch's candidates
    (distributed.contrastive_logits) — plus cfg.distill_weight x the distance to the teacher's
    vectors `target` (same rows) when given."""
    B = pairs
    anchors, positives, negatives = vectors[:B], vectors[B: 2 * B], vectors[2 * B:]
    if not ranks.distributed:
        loss = info_nce(anchors, positives, negatives, cfg.scale, cfg.symmetric)
    else:
        logits, labels = distributed.contrastive_logits(anchors, positives, negatives,
                                                        negative_counts, cfg.scale, ranks)
        loss = F.cross_entropy(logits, labels)
        if cfg.symmetric:  # each positive picks its anchor among every rank's anchors
            back = cfg.scale * positives @ distributed.gather(anchors, ranks).T
            loss = (loss + F.cross_entropy(back, labels)) / 2
    if target is not None:
        loss = loss + cfg.distill_weight * distill_loss(vectors, target)
    return loss


def count_negatives(examples, batch: list[int], ranks: Ranks) -> list[int]:
    """Hard negatives in each rank's slice of the batch (every rank knows the whole batch)."""
    negatives = examples[2]
    return [sum(negatives[i] is not None for i in Ranks(r, ranks.world).local(batch))
            for r in range(ranks.world)]


def sequences_loss(model, sequences: list[list[int]], pairs: int, cfg,
                    target: torch.Tensor | None = None, ranks: Ranks = SINGLE,
                    negative_counts: list[int] | None = None) -> torch.Tensor:
    """One forward pass over a batch's sequences (`batch_sequences` order) and its loss."""
    # packed: no linear layer sees a padding row (see Encoder.encode_packed)
    vectors = encode_batch(model, sequences, cfg.length_chunks).float()
    return info_nce_loss(vectors, pairs, cfg, target, ranks, negative_counts)


class Packed(torch.nn.Module):
    """The encoder's packed forward pass as a module's `forward`, which is what DDP wraps."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, sequences: list[list[int]], chunks: int) -> torch.Tensor:
        return self.encoder.encode_packed(sequences, chunks)


def distributed_model(model: Encoder, ranks: Ranks, device: torch.device):
    """The model as the training steps call it: itself, or under torchrun wrapped in
    DistributedDataParallel, which averages the gradients over the ranks during backward (and
    starts every rank from rank 0's weights)."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        Packed(model), device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=bool(model.config.experts),  # unrouted experts get no gradient
    )  # the encoder has no buffers, so the forward pass syncs nothing but the gradients


def encode_batch(model, sequences: list[list[int]], chunks: int) -> torch.Tensor:
    """Sentence vectors through the DDP wrapper when there is one (its hooks sync gradients)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model(sequences, chunks)
    return model.encode_packed(sequences, chunks)


def inner_encoder(model) -> Encoder:
    """The Encoder inside a DDP wrapper, or the model itself."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module.encoder
    return model


def no_sync(model, last: bool):
    """DDP's no_sync for all but the last of several backward passes in one step: the
    gradients add up locally and are averaged over the ranks once."""
    if last or not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def batch_loss(model, examples, batch, device, cfg) -> torch.Tensor:
    """One forward pass over anchors, positives and the batch's hard negatives."""
    return sequences_loss(model, batch_sequences(examples, batch), len(batch), cfg)


def grad_cache_backward(model, sequences, pairs: int, device, cfg,
                         routing_log: list[dict[str, Any]] | None,
                         target: torch.Tensor | None = None, ranks: Ranks = SINGLE,
                         negative_counts: list[int] | None = None) -> torch.Tensor:
    """Accumulate the gradient of InfoNCE over the whole batch while holding the activations of
    only `cfg.grad_cache_chunk` sequences at a time (gradient caching, Gao et al. 2021).

    1. embed every chunk without a graph; 2. the loss and its gradient with respect to those
    vectors, over the whole batch (every in-batch negative counts); 3. embed each chunk again
    with a graph and backpropagate its slice of that gradient. Each chunk replays the random
    state of its first pass, so dropout draws the same masks and the result is the gradient of
    one big batch (to float rounding) at about 4/3 of its compute and a fraction of its memory.
    Under torchrun step 2 gathers across ranks, and step 3's backward passes add up locally
    (DDP no_sync) until the last, which averages the gradients over the ranks.
    """
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths
    chunks = [order[s: s + cfg.grad_cache_chunk]
              for s in range(0, len(order), cfg.grad_cache_chunk)]
    rows = [torch.tensor(chunk, device=device) for chunk in chunks]  # each chunk's batch rows
    states, parts = [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(rng_state(device))
            with autocast(device, cfg.amp):
                parts.append(encode_batch(model, [sequences[i] for i in chunk],
                                     cfg.length_chunks).float())
    take_routing(inner_encoder(model))  # the graph-free pass routes again below
    vectors = torch.empty(len(sequences), parts[0].shape[1], device=device)
    vectors[torch.cat(rows)] = torch.cat(parts)
    vectors.requires_grad_(True)
    loss = info_nce_loss(vectors, pairs, cfg, target, ranks, negative_counts)
    loss.backward()
    balance, assigned = 0.0, None
    for number, (chunk, chunk_rows, state) in enumerate(zip(chunks, rows, states, strict=True)):
        set_rng_state(device, state)
        last = number == len(chunks) - 1
        with no_sync(model, last), autocast(device, cfg.amp):
            part = encode_batch(model, [sequences[i] for i in chunk], cfg.length_chunks).float()
        surrogate = (part * vectors.grad[chunk_rows]).sum()
        routing = take_routing(inner_encoder(model))
        if routing is not None:  # the balance loss is a mean: weight each chunk by its share
            surrogate = surrogate + (cfg.balance_loss_weight * len(chunk) / len(sequences)
                                     * routing.balance_loss)
            balance += routing.balance_loss.item() * len(chunk) / len(sequences)
            assigned = routing.assigned if assigned is None else [
                [a + b for a, b in zip(x, y, strict=True)]
                for x, y in zip(assigned, routing.assigned, strict=True)]
        with no_sync(model, last):
            surrogate.backward()
    if assigned is not None:
        log_routing(routing_log, balance, assigned)
    return loss.detach()


def rng_state(device: torch.device) -> tuple:
    if device.type == "cuda":
        return torch.get_rng_state(), torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.get_rng_state(), torch.mps.get_rng_state()
    return (torch.get_rng_state(),)


def set_rng_state(device: torch.device, state: tuple) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state[1])


def log_routing(routing_log, balance_loss: float, assigned) -> None:
    if routing_log is not None:
        routing_log.append({"balance_loss": balance_loss, "assigned": assigned})


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    def decays(name: str, p: torch.nn.Parameter) -> bool:
        # matrices only; MoE expert biases are (experts, width) but still biases
        return p.dim() >= 2 and "embedding" not in name and not name.endswith("bias")

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    rest = [p for n, p in model.named_parameters() if not decays(n, p)]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
