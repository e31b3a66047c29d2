"""The examples a training run learns and selects on: the mixture's pairs split into training
and a group-disjoint validation set, tokenised, keyed for batching (no two captions of one image
in a batch), and STS-B's graded pairs for the STS-B stage and model selection.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from semsearch.data import load_stsb, normalise, scored_training_pairs
from semsearch.data.records import ScoredPair, TrainingPair
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.errors import DataError

Log = Callable[[str], None]


def read_graded_rows(data_dir, val_pairs: list[TrainingPair], batch: int, log: Log) -> list[ScoredPair]:
    """STS-B train's graded pairs for the STS-B stage; none shares a sentence with STS-B
    dev/test or with a validation pair."""
    rows = scored_training_pairs(data_dir, {k for pair in val_pairs for k in keys_of(pair)})
    if len(rows) < batch:
        raise DataError(f"train.sts_epochs needs STS-B train's graded pairs and found {len(rows)}, "
                        f"fewer than train.sts_batch ({batch}); set train.sts_epochs=0 or point "
                        "--data-dir at a folder with STS-B")
    log(f"STS-B stage: {len(rows):,} graded STS-B train pairs")
    return rows


def tokenize_graded(rows: list[ScoredPair], tokenizer: Tokenizer, max_len: int):
    return (tokenizer.encode([r.sentence1 for r in rows], max_len),
            tokenizer.encode([r.sentence2 for r in rows], max_len), [r.score for r in rows])


def graded_batches(count: int, batch_size: int, seed: int) -> list[list[int]]:
    """A seeded shuffle of `count` graded pairs cut into full batches (the rest waits for the
    next epoch's shuffle)."""
    order = np.random.default_rng(seed).permutation(count).tolist()
    return [order[s: s + batch_size] for s in range(0, count - batch_size + 1, batch_size)]


def split_validation(pairs: list[TrainingPair], count: int, seed: int):
    """Hold out about `count` pairs whose groups and sentences never occur in training."""
    if count <= 0 or len(pairs) < 4 * count:
        return pairs, []
    rng = np.random.default_rng(seed + 10_007)
    order = rng.permutation(len(pairs))
    val_index = set(int(i) for i in order[:count])
    held = {k for i in val_index for k in keys_of(pairs[i])}
    train = [p for i, p in enumerate(pairs) if i not in val_index and held.isdisjoint(keys_of(p))]
    return train, [pairs[i] for i in sorted(val_index)]


def keys_of(pair: TrainingPair) -> set[str]:
    keys = {normalise(t) for t in (pair.anchor, pair.positive, pair.negative) if t}
    if pair.group:
        keys.add("group:" + pair.group)
    return keys


def batch_keys(pairs: list[TrainingPair]) -> list[tuple[int, ...]]:
    ids: dict[str, int] = {}
    return [tuple(ids.setdefault(k, len(ids)) for k in keys_of(p)) for p in pairs]


def tokenize(pairs: list[TrainingPair], tokenizer: Tokenizer, max_len: int):
    anchors = tokenizer.encode([p.anchor for p in pairs], max_len)
    positives = tokenizer.encode([p.positive for p in pairs], max_len)
    with_negative = [i for i, p in enumerate(pairs) if p.negative]
    negative_ids = tokenizer.encode([pairs[i].negative for i in with_negative], max_len)
    negatives: list[list[int] | None] = [None] * len(pairs)
    for i, ids in zip(with_negative, negative_ids, strict=True):
        negatives[i] = ids
    return anchors, positives, negatives


def batch_sequences(examples, batch: list[int]) -> list[list[int]]:
    """Token ids of the batch's anchors, then its positives, then its hard negatives."""
    anchors, positives, negatives = examples
    hard = [negatives[i] for i in batch if negatives[i] is not None]
    return [anchors[i] for i in batch] + [positives[i] for i in batch] + hard


def load_stsb_dev(data_dir, limit: int, log: Log) -> list[ScoredPair] | None:
    try:
        rows = load_stsb("dev", data_dir)
    except DataError as error:
        log(f"no STS-B dev ({error}); selecting the best epoch by validation loss")
        return None
    return rows[:limit] if limit else rows
