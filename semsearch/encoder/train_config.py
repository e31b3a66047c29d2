"""The training loop's settings (kept apart from train.py so presets load without the loop)."""

from __future__ import annotations

from dataclasses import dataclass

STS_LOSSES = ("cosine", "cosent")


@dataclass(frozen=True)
class TrainConfig:
    # pairs per step; every other pair's positive is an in-batch negative, so bigger is harder
    batch_size: int = 64
    # passes over the training pairs
    epochs: int = 10
    # peak AdamW learning rate; from scratch wants ~10-50x a fine-tuning rate (2e-5)
    lr: float = 5e-4
    # decoupled weight decay on matrices (not on biases, norms or embeddings)
    weight_decay: float = 0.01
    # fraction of all steps spent warming up linearly from ~0 to lr
    warmup_ratio: float = 0.1
    # the cosine decays to this fraction of lr
    min_lr_ratio: float = 0.0
    # clip the global gradient norm (keeps early from-scratch steps from blowing up)
    grad_clip: float = 1.0
    # 1/temperature of InfoNCE: cosine logits times 20
    scale: float = 20.0
    # also score each positive against all anchors (CLIP-style); cheap and usually helps
    symmetric: bool = True
    # weight of the mixture-of-experts load-balancing loss (summed over layers; 1.0 per layer
    # when balanced) added to InfoNCE; Switch Transformer's 0.01. Unused by dense models
    balance_loss_weight: float = 0.01
    # stop after this many epochs without a better STS-B dev Spearman (0 = never)
    patience: int = 3
    # cap on optimiser steps (0 = none); for smoke runs
    max_steps: int = 0
    # STS-B dev pairs scored after each epoch (0 = all)
    eval_limit: int = 0
    # attention runs on this many length-sorted chunks of each batch, each padded to its own
    # longest (linear layers see no padding at all); 8 measured best of 2/4/8/16
    length_chunks: int = 8
    # a second stage after the InfoNCE epochs: this many epochs of a graded loss (sts_loss) over
    # STS-B train's scored pairs, every score and not only the >= 4 positives InfoNCE sees;
    # SBERT's NLI-then-STS-B recipe (0 = no second stage)
    sts_epochs: int = 0
    # peak learning rate of that stage, which has its own warmup (warmup_ratio) and cosine decay
    sts_lr: float = 1e-4
    # graded pairs per step of that stage
    sts_batch: int = 32
    # that stage's loss: "cosine" pulls each pair's cosine to its gold score / 5 (squared
    # error; keeps unrelated pairs near 0); "cosent" only ranks the cosines like the gold scores
    # (scored as well on STS-B but let unrelated pairs drift to cosine 0.74 in the quick model)
    sts_loss: str = "cosine"
    # gradient caching: embed a batch this many sequences at a time, so a batch of thousands of
    # pairs (more in-batch negatives) fits in memory for ~4/3 of the compute (0 = all at once)
    grad_cache_chunk: int = 0
    # also save a resumable checkpoint mid-epoch this often (0 = only at epoch ends)
    checkpoint_minutes: float = 10.0
    # distillation: a teacher model folder whose vectors the student also learns (mean squared
    # error, beside InfoNCE); "" = none, a from-scratch model (`semsearch train --teacher`)
    teacher: str = ""
    # weight of that loss (per row it is 2 - 2cos to the teacher's vector, 0..4)
    distill_weight: float = 1.0
    # seed for data order, initialisation and dropout
    seed: int = 0
    # cuda, mps, cpu or auto (cuda, then mps, then cpu)
    device: str = "auto"
    # mixed precision: auto (bf16 on CUDA that has it, else fp32), bf16, fp16 or off
    amp: str = "auto"

    def __post_init__(self) -> None:
        if self.balance_loss_weight < 0:
            raise ValueError(f"balance_loss_weight ({self.balance_loss_weight}) must be >= 0; "
                             "a negative weight would reward unbalanced experts")
        if self.sts_epochs < 0 or self.sts_lr <= 0 or self.sts_batch < 2:
            raise ValueError(f"sts_epochs ({self.sts_epochs}) must be >= 0, sts_lr ({self.sts_lr}) "
                             f"> 0 and sts_batch ({self.sts_batch}) >= 2")
        if self.sts_loss not in STS_LOSSES:
            raise ValueError(f"sts_loss {self.sts_loss!r} is not one of {', '.join(STS_LOSSES)}")
        if self.grad_cache_chunk < 0:
            raise ValueError(f"grad_cache_chunk ({self.grad_cache_chunk}) must be >= 0 "
                             "(0 embeds the whole batch at once)")
