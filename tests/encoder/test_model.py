import pytest
import torch

from semsearch.encoder.batching import pad
from semsearch.encoder.model import Encoder, EncoderConfig, mean_pool

CONFIG = EncoderConfig(vocab_size=50, hidden=32, layers=2, heads=4, ff=64, max_seq_len=16)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Encoder(CONFIG).eval()


def test_output_shape_and_unit_norm(model):
    ids, mask = pad([[2, 5, 6, 3], [2, 7, 3]])
    out = model(ids, mask)
    assert out.shape == (2, 32)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))


def test_padding_does_not_change_the_embedding(model):
    sentence = [2, 9, 10, 11, 3]
    alone = model(*pad([sentence]))
    beside_long = model(*pad([sentence, [2] + [12] * 14 + [3]]))[:1]
    torch.testing.assert_close(alone, beside_long, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("prenorm", [True, False])
def test_both_norm_placements_run(prenorm):
    config = EncoderConfig(vocab_size=50, hidden=32, layers=1, heads=2, ff=64, max_seq_len=16,
                           prenorm=prenorm)
    out = Encoder(config)(*pad([[2, 4, 3]]))
    assert torch.isfinite(out).all()


def test_parameter_counts(model):
    counts = model.parameter_counts()
    assert counts["embedding"] == 50 * 32 + 16 * 32
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["other"] == counts["total"] - counts["embedding"]


def test_mean_pool_ignores_padding():
    states = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(mean_pool(states, mask), torch.tensor([[2.0, 2.0]]))


def test_heads_must_divide_hidden():
    with pytest.raises(ValueError):
        EncoderConfig(hidden=30, heads=4)


@pytest.mark.parametrize("chunks", [1, 3, 7])
def test_packed_encoding_matches_one_padded_batch(model, chunks):
    sequences = [[2] + list(range(5, 5 + n)) + [3] for n in (9, 1, 4, 12, 2, 7, 3)]
    whole = model(*pad(sequences))
    packed = model.encode_packed(sequences, chunks=chunks)
    torch.testing.assert_close(packed, whole, atol=1e-6, rtol=1e-5)


def test_packed_encoding_gives_the_padded_gradients(model):
    sequences = [[2] + list(range(5, 5 + n)) + [3] for n in (9, 1, 4, 12)]
    target = torch.randn(len(sequences), model.config.hidden, generator=torch.Generator().manual_seed(0))
    grads = []
    for run in (lambda: model(*pad(sequences)), lambda: model.encode_packed(sequences, chunks=2)):
        model.zero_grad()
        (run() * target).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4)


def test_packed_layout_wants_sorted_lengths():
    from semsearch.encoder.model import Packed

    with pytest.raises(ValueError, match="sorted"):
        Packed([3, 2], chunks=1, device=torch.device("cpu"))


def test_layer_norm_eps_reaches_every_norm():
    config = EncoderConfig(vocab_size=50, hidden=32, layers=2, heads=4, ff=64, max_seq_len=16,
                           layer_norm_eps=1e-12)
    norms = [m for m in Encoder(config).modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 1 + 2 * 2 + 1 and all(n.eps == 1e-12 for n in norms)
    assert EncoderConfig().layer_norm_eps == 1e-5  # torch's default, as before the field existed
