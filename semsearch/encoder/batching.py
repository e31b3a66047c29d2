"""Batches for contrastive training: no two examples in a batch share a key, and each batch is
padded only to its own longest sequence."""

from __future__ import annotations

from collections import deque

import numpy as np
import torch


def plan_batches(
    keys: list[tuple[int, ...]], batch_size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffle example indices into batches in which no key occurs twice.

    Keys are an example's sentences and group (image, premise): if two examples shared one,
    each would be the other's in-batch negative while actually a positive. An example that
    clashes waits for the next batch. Batches of one are dropped (nothing to contrast with).

    >>> plan_batches([(1,), (1,), (2,), (3,)], 2, np.random.default_rng(0))  # doctest: +SKIP
    [[2, 0], [1, 3]]
    """
    pending = deque(int(i) for i in rng.permutation(len(keys)))
    batches = []
    while pending:
        batch, used, waiting = [], set(), []
        while pending and len(batch) < batch_size and len(waiting) < 8 * batch_size:
            i = pending.popleft()
            if used.isdisjoint(keys[i]):
                batch.append(i)
                used.update(keys[i])
            else:
                waiting.append(i)
        pending.extendleft(reversed(waiting))
        if len(batch) > 1:
            batches.append(batch)
    return batches


def pad(sequences: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists to the longest: returns input_ids and attention_mask, (B, T)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask
