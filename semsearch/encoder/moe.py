"""Mixture-of-experts feed-forward: a learned gate sends each real token to its top-k expert MLPs.

Each expert is the dense block's MLP (Linear-GELU-Linear). Only the chosen experts run on a
token: tokens are gathered per expert, so compute grows with top_k, not with the number of
experts. The gate is trained by the main loss (through the renormalised top-k weights) and by a
Switch/GShard load-balancing loss that keeps tokens from collapsing onto a few experts.

Routing statistics add up across forward calls (training embeds a batch in several length
chunks) until `take_routing(model)` collects and resets them: one balance loss per step over the
whole batch, and per-expert counts for utilisation. Padding is never routed or counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class MoEFeedForward(nn.Module):
    """(B, T, hidden) token vectors and a (B, T) real-token mask -> (B, T, hidden); padding rows
    come back as zeros."""

    def __init__(self, hidden: int, ff: int, experts: int, top_k: int,
                 out_std: float = 0.02) -> None:
        super().__init__()
        if experts < 2 or not 1 <= top_k <= experts:
            raise ValueError(f"need experts >= 2 and 1 <= top_k <= experts, got experts "
                             f"{experts}, top_k {top_k}")
        self.experts, self.top_k = experts, top_k
        self.gate = nn.Linear(hidden, experts)
        # the experts' Linear weights stacked, (experts, out, in) as nn.Linear stores them
        self.w_in = nn.Parameter(torch.empty(experts, ff, hidden))
        self.in_bias = nn.Parameter(torch.zeros(experts, ff))
        self.w_out = nn.Parameter(torch.empty(experts, hidden, ff))
        self.out_bias = nn.Parameter(torch.zeros(experts, hidden))
        nn.init.normal_(self.w_in, std=0.02)
        # the residual output projection, scaled by depth as the dense MLP's is (Encoder)
        nn.init.normal_(self.w_out, std=out_std)
        self._reset_routing()

    def route(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For (N, hidden) real tokens: the gate's probabilities (N, experts), the chosen
        experts (N, top_k) and their weights renormalised to sum to 1 (N, top_k)."""
        probabilities = self.gate(tokens).float().softmax(-1)
        top, chosen = probabilities.topk(self.top_k, dim=-1)
        return probabilities, chosen, top / top.sum(-1, keepdim=True)

    def forward(self, x: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, H) with `real` (B, T) marking its real tokens, or x (N, H) of real tokens
        only (packed) with `real` None."""
        if real is None:
            return self._mix(x)
        B, T, H = x.shape
        flat = x.reshape(B * T, H)
        rows = real.reshape(B * T).nonzero().squeeze(1)
        mixed = self._mix(flat.index_select(0, rows))  # (N, H), real tokens only
        return flat.new_zeros(B * T, H).index_copy(0, rows, mixed).view(B, T, H)

    def _mix(self, tokens: torch.Tensor) -> torch.Tensor:
        probabilities, chosen, weights = self.route(tokens)
        mixed = torch.zeros_like(tokens)
        for e in range(self.experts):
            picked, slot = (chosen == e).nonzero(as_tuple=True)  # a token picks an expert once
            if picked.numel() == 0:
                continue
            h = F.gelu(F.linear(tokens[picked], self.w_in[e], self.in_bias[e]))
            y = F.linear(h, self.w_out[e], self.out_bias[e]) * weights[picked, slot, None]
            mixed.index_add_(0, picked, y.to(mixed.dtype))
        self._record(chosen, probabilities)
        return mixed

    def _record(self, chosen: torch.Tensor, probabilities: torch.Tensor) -> None:
        assigned = torch.bincount(chosen.reshape(-1), minlength=self.experts)
        mass = probabilities.sum(0)
        if not (self.training and torch.is_grad_enabled()):
            mass = mass.detach()  # no graph kept alive by passes no step will backpropagate
        self._assigned = assigned if self._assigned is None else self._assigned + assigned
        self._gate_mass = mass if self._gate_mass is None else self._gate_mass + mass
        self._tokens += chosen.shape[0]

    def _reset_routing(self) -> None:
        self._assigned: torch.Tensor | None = None  # (experts,) routing assignments
        self._gate_mass: torch.Tensor | None = None  # (experts,) summed gate probabilities
        self._tokens = 0  # real tokens routed

    def take_routing(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Per-expert assignments and gate probability mass summed since the last take, and the
        token count; resets them."""
        assigned = (self._assigned if self._assigned is not None
                    else torch.zeros(self.experts, dtype=torch.long, device=self.gate.weight.device))
        mass = (self._gate_mass if self._gate_mass is not None
                else torch.zeros(self.experts, device=self.gate.weight.device))
        tokens = self._tokens
        self._reset_routing()
        return assigned, mass, tokens


def balance_loss(assigned: torch.Tensor, gate_mass: torch.Tensor, tokens: int) -> torch.Tensor:
    """The load-balancing loss N * sum_i f_i * P_i: f_i the fraction of routing assignments that
    went to expert i, P_i its mean gate probability over `tokens` tokens. 1.0 when both are
    uniform, up to N when one expert gets every token and all the probability; 0 with no tokens.

    >>> balance_loss(torch.tensor([1, 1]), torch.tensor([0.5, 0.5]), tokens=1)  # uniform
    tensor(1.)
    >>> balance_loss(torch.tensor([2, 0]), torch.tensor([2.0, 0.0]), tokens=2)  # collapsed
    tensor(2.)
    """
    if tokens == 0:
        return gate_mass.sum() * 0.0
    experts = assigned.shape[0]
    fraction = assigned.to(gate_mass.dtype) / assigned.sum()
    return experts * (fraction * (gate_mass / tokens)).sum()


@dataclass
class Routing:
    """What the MoE layers saw since the last take."""

    # sum over MoE layers of their balance loss; differentiable through the gates
    balance_loss: torch.Tensor
    # per layer, per expert: routing assignments (a token counts once for each of its top_k)
    assigned: list[list[int]]


def take_routing(model: nn.Module) -> Routing | None:
    """Collect and reset every MoE layer's routing statistics; None for a dense model."""
    layers = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
    if not layers:
        return None
    losses, assigned = [], []
    for layer in layers:
        counts, mass, tokens = layer.take_routing()
        losses.append(balance_loss(counts, mass, tokens))
        assigned.append([int(c) for c in counts.tolist()])
    return Routing(torch.stack(losses).sum(), assigned)

