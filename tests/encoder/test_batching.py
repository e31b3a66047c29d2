import numpy as np
import torch

from semsearch.encoder.batching import pad, plan_batches


def test_no_key_meets_twice_in_a_batch_and_everything_is_used():
    rng = np.random.default_rng(0)
    # 300 examples in 60 groups of 5 (an image's captions), plus a shared sentence id
    keys = [(i // 5, 1000 + i) for i in range(300)]
    batches = plan_batches(keys, 16, rng)
    for batch in batches:
        seen = [k for i in batch for k in keys[i]]
        assert len(seen) == len(set(seen))
    used = sorted(i for b in batches for i in b)
    assert used == list(range(300))


def test_batches_are_seeded():
    keys = [(i,) for i in range(50)]
    first = plan_batches(keys, 8, np.random.default_rng(3))
    again = plan_batches(keys, 8, np.random.default_rng(3))
    assert first == again
    assert first != plan_batches(keys, 8, np.random.default_rng(4))


def test_all_conflicting_examples_do_not_loop_forever():
    batches = plan_batches([(1,)] * 5, 4, np.random.default_rng(0))
    assert batches == []  # each alone: nothing to contrast with


def test_pad_to_longest():
    ids, mask = pad([[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == torch.long
