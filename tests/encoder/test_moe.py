import pytest
import torch
import torch.nn.functional as F

from semsearch.encoder.batching import pad
from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.moe import MoEFeedForward, balance_loss, take_routing
from semsearch.encoder.presets import RunConfig, apply_overrides, preset
from semsearch.errors import ConfigError

CONFIG = EncoderConfig(vocab_size=50, hidden=32, layers=2, heads=4, ff=64, max_seq_len=16,
                       experts=4, expert_top_k=2)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Encoder(CONFIG).eval()


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return MoEFeedForward(hidden=8, ff=16, experts=4, top_k=2)


def dense_reference(layer: MoEFeedForward, tokens: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, mixed by the renormalised top-k weights."""
    _, chosen, weights = layer.route(tokens)
    every = torch.stack([F.linear(F.gelu(F.linear(tokens, layer.w_in[e], layer.in_bias[e])),
                                  layer.w_out[e], layer.out_bias[e])
                         for e in range(layer.experts)], 1)  # (N, experts, hidden)
    mix = torch.zeros(tokens.shape[0], layer.experts).scatter(1, chosen, weights)
    return (mix[..., None] * every).sum(1)


def test_encoder_output_shape_and_unit_norm(model):
    out = model(*pad([[2, 5, 6, 3], [2, 7, 3]]))
    assert out.shape == (2, 32)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))


def test_layer_matches_running_every_expert_on_every_token(layer):
    x = torch.randn(3, 5, 8)
    real = torch.ones(3, 5, dtype=torch.bool)
    out = layer(x, real)
    assert out.shape == (3, 5, 8)
    torch.testing.assert_close(out.reshape(15, 8), dense_reference(layer, x.reshape(15, 8)))


def test_each_real_token_goes_to_top_k_experts_and_padding_nowhere(layer):
    x = torch.randn(2, 6, 8)
    real = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    out = layer(x, real)
    assert (out[~real] == 0).all()
    assigned, _, tokens = layer.take_routing()
    assert tokens == 6 and assigned.sum() == 6 * 2
    probabilities, chosen, weights = layer.route(x[real])
    assert chosen.shape == (6, 2)
    assert all(len(set(row.tolist())) == 2 for row in chosen)
    torch.testing.assert_close(weights.sum(-1), torch.ones(6))
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(6))
    assert (weights > 0).all()


def test_padding_does_not_change_the_embedding(model):
    sentence = [2, 9, 10, 11, 3]
    alone = model(*pad([sentence]))
    beside_long = model(*pad([sentence, [2] + [12] * 14 + [3]]))[:1]
    torch.testing.assert_close(alone, beside_long, atol=1e-6, rtol=1e-5)


def test_balance_loss_is_one_when_uniform_and_larger_when_collapsed():
    experts, hidden = 4, 4
    layer = MoEFeedForward(hidden, 8, experts, top_k=1)
    tokens = torch.eye(hidden).repeat(2, 1)[None]  # 8 tokens, two per basis direction
    real = torch.ones(1, 8, dtype=torch.bool)
    with torch.no_grad():
        layer.gate.weight.copy_(50 * torch.eye(experts))  # token along e_i -> expert i
        layer.gate.bias.zero_()
    layer(tokens, real)
    assigned, mass, n = layer.take_routing()
    assert assigned.tolist() == [2, 2, 2, 2]
    assert balance_loss(assigned, mass, n).item() == pytest.approx(1.0)
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.bias.copy_(torch.tensor([50.0, 0, 0, 0]))  # every token -> expert 0
    layer(tokens, real)
    assigned, mass, n = layer.take_routing()
    assert assigned.tolist() == [8, 0, 0, 0]
    assert balance_loss(assigned, mass, n).item() == pytest.approx(4.0)  # N * 1 * 1


def test_balance_loss_counts_real_tokens_only(layer):
    x = torch.randn(1, 4, 8)
    layer(x, torch.ones(1, 4, dtype=torch.bool))
    alone = balance_loss(*layer.take_routing())
    padded = torch.cat([x, 100 * torch.randn(1, 3, 8)], 1)
    layer(padded, torch.tensor([[1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool))
    torch.testing.assert_close(balance_loss(*layer.take_routing()), alone)


def test_routing_adds_up_across_chunks_until_taken(layer):
    x = torch.randn(4, 3, 8)
    real = torch.ones(4, 3, dtype=torch.bool)
    layer(x, real)
    whole = layer.take_routing()
    layer(x[:1], real[:1])
    layer(x[1:], real[1:])
    chunked = layer.take_routing()
    assert chunked[0].tolist() == whole[0].tolist() and chunked[2] == whole[2] == 12
    torch.testing.assert_close(balance_loss(*chunked), balance_loss(*whole))
    assert layer.take_routing()[2] == 0  # taking resets


def test_gradients_reach_the_gate_through_both_losses(model):
    model.train()
    out = model(*pad([[2, 5, 6, 7, 3], [2, 8, 3]]))
    routing = take_routing(model)
    assert len(routing.assigned) == 2 and all(len(a) == 4 for a in routing.assigned)
    assert sum(routing.assigned[0]) == 8 * 2
    (out[0] @ out[1] + routing.balance_loss).backward()
    for block in model.blocks:
        assert block.mlp.gate.weight.grad.abs().sum() > 0
        assert block.mlp.w_in.grad.abs().sum() > 0
    model.zero_grad()
    take_routing(model)
    model(*pad([[2, 5, 3]]))
    take_routing(model).balance_loss.backward()  # the balance loss alone trains the gate
    assert model.blocks[0].mlp.gate.weight.grad.abs().sum() > 0


def test_dense_model_has_no_routing():
    dense = Encoder(EncoderConfig(vocab_size=50, hidden=32, layers=1, heads=2, ff=64,
                                  max_seq_len=16))
    dense(*pad([[2, 4, 3]]))
    assert take_routing(dense) is None


def test_routing_seen_without_gradients_keeps_no_graph(model):
    with torch.no_grad():
        model(*pad([[2, 4, 3]]))
    assert not take_routing(model).balance_loss.requires_grad


@pytest.mark.parametrize("prenorm", [True, False])
def test_both_norm_placements_run(prenorm):
    config = EncoderConfig(vocab_size=50, hidden=32, layers=1, heads=2, ff=64, max_seq_len=16,
                           prenorm=prenorm, experts=3, expert_top_k=1)
    assert torch.isfinite(Encoder(config)(*pad([[2, 4, 3]]))).all()


@pytest.mark.parametrize("experts, top_k, message", [
    (1, 1, "experts \\(1\\) must be 0"),
    (-2, 1, "experts \\(-2\\) must be 0"),
    (4, 0, "expert_top_k \\(0\\) must be between 1 and experts \\(4\\)"),
    (4, 5, "expert_top_k \\(5\\) must be between 1 and experts \\(4\\)"),
])
def test_invalid_expert_configs_are_rejected(experts, top_k, message):
    with pytest.raises(ValueError, match=message):
        EncoderConfig(hidden=32, heads=2, experts=experts, expert_top_k=top_k)
    with pytest.raises(ConfigError, match=message):
        apply_overrides(preset("tiny"), {"model.experts": str(experts),
                                         "model.expert_top_k": str(top_k)})


def test_negative_balance_weight_is_rejected():
    with pytest.raises(ConfigError, match="balance_loss_weight"):
        apply_overrides(preset("tiny"), {"train.balance_loss_weight": "-1"})


def test_configs_saved_before_experts_existed_load_dense():
    saved = preset("tiny").to_dict()
    del saved["model"]["experts"], saved["model"]["expert_top_k"]
    del saved["train"]["balance_loss_weight"]
    config = RunConfig.from_dict(saved)
    assert config.model.experts == 0 and config.train.balance_loss_weight == 0.01
    assert EncoderConfig(**saved["model"]).experts == 0
    overridden = apply_overrides(preset("tiny"), {"experts": "4", "expert_top_k": "1"})
    assert (overridden.model.experts, overridden.model.expert_top_k) == (4, 1)


def test_expert_biases_are_not_weight_decayed(model):
    from semsearch.encoder.train_steps import make_optimizer

    decay, rest = (group["params"] for group in make_optimizer(model, 1e-3, 0.01).param_groups)
    mlp = model.blocks[0].mlp
    assert any(p is mlp.w_in for p in decay) and any(p is mlp.gate.weight for p in decay)
    assert any(p is mlp.in_bias for p in rest) and any(p is mlp.out_bias for p in rest)
