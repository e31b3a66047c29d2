"""Gradient caching gives the gradient of the whole batch while embedding it in chunks."""

import dataclasses

import pytest
import torch

from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.train_config import TrainConfig
from semsearch.encoder.train_data import batch_sequences
from semsearch.encoder.train_steps import info_nce_loss, train_step


def _examples(count=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 11, (3 * count,), generator=g).tolist()
    seqs = [[2] + torch.randint(5, 50, (n - 2,), generator=g).tolist() + [3] for n in lengths]
    negatives = [seqs[2 * count + i] if i % 3 == 0 else None for i in range(count)]
    return seqs[:count], seqs[count: 2 * count], negatives


def _grads(dropout, chunk, attention_dropout=0.0, experts=0):
    config = EncoderConfig(vocab_size=50, hidden=32, layers=2, heads=2, ff=64, max_seq_len=16,
                           dropout=dropout, attention_dropout=attention_dropout, experts=experts,
                           expert_top_k=1 if experts else 2)
    torch.manual_seed(0)
    model = Encoder(config)
    cfg = TrainConfig(batch_size=12, lr=0.0, grad_cache_chunk=chunk, length_chunks=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    torch.manual_seed(1)
    loss = train_step(model, optimizer, scheduler, _examples(), list(range(12)), cfg,
                      torch.device("cpu"))
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk", [5, 8, 13])
def test_without_dropout_the_chunked_gradient_is_the_whole_batch_gradient(chunk):
    full_loss, full = _grads(dropout=0.0, chunk=0)
    loss, cached = _grads(dropout=0.0, chunk=chunk)
    assert loss == pytest.approx(full_loss, rel=1e-5)
    assert full.keys() == cached.keys()
    for name in full:
        torch.testing.assert_close(cached[name], full[name], rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


def test_with_dropout_each_chunk_replays_its_masks():
    """The reference embeds the same chunks with a graph in one pass, drawing the masks in the
    same order; without the replay the second pass would draw new masks and differ."""
    loss, cached = _grads(dropout=0.3, chunk=8, attention_dropout=0.2)
    config = EncoderConfig(vocab_size=50, hidden=32, layers=2, heads=2, ff=64, max_seq_len=16,
                           dropout=0.3, attention_dropout=0.2)
    torch.manual_seed(0)
    model = Encoder(config)
    torch.manual_seed(1)
    sequences = batch_sequences(_examples(), list(range(12)))
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    vectors = torch.empty(len(sequences), 32)
    for start in range(0, len(order), 8):
        chunk = order[start: start + 8]
        vectors = vectors.index_put((torch.tensor(chunk),),
                                    model.encode_packed([sequences[i] for i in chunk], 2))
    reference = info_nce_loss(vectors, 12, TrainConfig())
    reference.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), TrainConfig().grad_clip)  # as train_step
    assert loss == pytest.approx(reference.item(), rel=1e-5)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(cached[name], parameter.grad, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
    _, fresh_masks = _grads(dropout=0.3, chunk=0, attention_dropout=0.2)
    assert not torch.allclose(fresh_masks["blocks.0.mlp.0.weight"], cached["blocks.0.mlp.0.weight"])


def test_mixture_of_experts_model_trains_with_gradient_caching():
    loss, grads = _grads(dropout=0.0, chunk=8, experts=4)
    assert loss == loss and abs(loss) < 1e3  # finite
    gate = [g for n, g in grads.items() if "gate" in n]
    assert gate and all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in gate)


def test_negative_chunk_is_refused():
    with pytest.raises(ValueError, match="grad_cache_chunk"):
        dataclasses.replace(TrainConfig(), grad_cache_chunk=-1)
