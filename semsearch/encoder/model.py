"""The transformer sentence encoder: embeddings, N blocks, mean pooling, L2 normalisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from semsearch.encoder.moe import MoEFeedForward


@dataclass(frozen=True)
class EncoderConfig:
    # tokenizer vocabulary; the embedding table has one row per token
    vocab_size: int = 30_000
    # width of every token vector (the sentence embedding has this size)
    hidden: int = 384
    # transformer blocks
    layers: int = 6
    # attention heads; hidden must divide by it (head size 32 at the reference shape)
    heads: int = 12
    # inner width of each feed-forward block
    ff: int = 1536
    # longest input in tokens, [CLS] and [SEP] included; learned positions up to it
    max_seq_len: int = 128
    # dropout on embeddings and residual branches (also the noise SimCSE relies on)
    dropout: float = 0.1
    # dropout on attention weights; any value above 0 forces torch's slow "math" attention on
    # CPU (5x the time of the fused kernel in bench), so the presets leave it off
    attention_dropout: float = 0.0
    # LayerNorm before each sublayer (pre-LN trains stably from scratch at high learning rates)
    prenorm: bool = True
    # expert MLPs per feed-forward block, mixture-of-experts style (0 = one dense MLP)
    experts: int = 0
    # experts each token is routed to (compute per token grows with this, not with experts)
    expert_top_k: int = 2
    # LayerNorm epsilon: torch's default; imported BERT checkpoints were trained with 1e-12
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.experts and self.experts < 2:
            raise ValueError(f"experts ({self.experts}) must be 0 (dense feed-forward) or at "
                             "least 2")
        if self.experts and not 1 <= self.expert_top_k <= self.experts:
            raise ValueError(f"expert_top_k ({self.expert_top_k}) must be between 1 and experts "
                             f"({self.experts})")


def _key_bias(real: torch.Tensor) -> torch.Tensor:
    """(B, T) real-token mask -> (B, 1, 1, T) additive attention mask, 0 or -inf per key. A float
    mask takes the fused CPU attention kernel; a bool mask costs 1.5x."""
    return torch.zeros(real.shape, device=real.device).masked_fill(
        ~real, float("-inf"))[:, None, None, :]


class Padded:
    """Layout of a padded batch: states are (B, T, H); attention masks the padding keys."""

    def __init__(self, attention_mask: torch.Tensor) -> None:
        self.real = attention_mask.bool()  # (B, T)
        self.bias = _key_bias(self.real)

    def attend(self, qkv: torch.Tensor, heads: int, dropout: float) -> torch.Tensor:
        B, T, three_h = qkv.shape
        q, k, v = qkv.view(B, T, 3, heads, three_h // (3 * heads)).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias.to(q.dtype),
                                           dropout_p=dropout)  # (B, heads, T, head size)
        return y.transpose(1, 2).reshape(B, T, three_h // 3)


class Packed:
    """Layout of a packed batch: states are (N, H), the real tokens of every sequence one after
    another (sequences sorted by length); no padding row enters a linear layer.

    Only attention needs a (sequences, length) shape: the sequences are cut into `chunks` groups
    of similar length, each gathered into a padded block of its own longest length just for
    attention and read back into the packed rows. Padding rows there point at row 0 (masked as
    keys, dropped as queries), so they cost no copy of a zero row and get no gradient.
    """

    def __init__(self, lengths: list[int], chunks: int, device: torch.device) -> None:
        if any(b < a for a, b in zip(lengths, lengths[1:])):
            raise ValueError("Packed wants sequences sorted by length")
        self.lengths = torch.tensor(lengths, device=device)
        self.tokens = int(sum(lengths))
        self.sequence = torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                                self.lengths)  # (N,) sequence of each token
        starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.positions = torch.arange(self.tokens, device=device) - starts[self.sequence]
        self.blocks = []
        size = -(-len(lengths) // max(1, chunks))
        for first in range(0, len(lengths), size):
            rows = slice(first, min(first + size, len(lengths)))
            width = max(lengths[rows])
            offset = torch.arange(width, device=device)
            real = offset[None, :] < self.lengths[rows, None]  # (n, width)
            gather = torch.where(real, starts[rows, None] + offset[None, :], 0).reshape(-1)
            self.blocks.append((gather, real.reshape(-1).nonzero().squeeze(1), _key_bias(real),
                                real.shape[0], width))

    def attend(self, qkv: torch.Tensor, heads: int, dropout: float) -> torch.Tensor:
        outputs = []
        for gather, keep, bias, n, width in self.blocks:
            block = qkv.index_select(0, gather).view(n, width, 3, heads, -1).permute(2, 0, 3, 1, 4)
            q, k, v = block
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                               dropout_p=dropout)  # (n, heads, width, hd)
            outputs.append(y.transpose(1, 2).reshape(n * width, -1).index_select(0, keep))
        return torch.cat(outputs)


class SelfAttention(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)
        self.dropout = config.attention_dropout

    def forward(self, x: torch.Tensor, layout: Padded | Packed) -> torch.Tensor:
        dropout = self.dropout if self.training else 0.0
        return self.out(layout.attend(self.qkv(x), self.heads, dropout))


class Block(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.prenorm = config.prenorm
        self.norm1 = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.attention = SelfAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        if config.experts:
            self.mlp = MoEFeedForward(config.hidden, config.ff, config.experts,
                                      config.expert_top_k,
                                      out_std=0.02 / math.sqrt(2 * config.layers))
        else:
            self.mlp = nn.Sequential(
                nn.Linear(config.hidden, config.ff), nn.GELU(), nn.Linear(config.ff, config.hidden)
            )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, layout: Padded | Packed) -> torch.Tensor:
        if self.prenorm:
            x = x + self.drop(self.attention(self.norm1(x), layout))
            return x + self.drop(self._feed_forward(self.norm2(x), layout))
        x = self.norm1(x + self.drop(self.attention(x, layout)))
        return self.norm2(x + self.drop(self._feed_forward(x, layout)))

    def _feed_forward(self, x: torch.Tensor, layout: Padded | Packed) -> torch.Tensor:
        if isinstance(self.mlp, MoEFeedForward):
            # padded states route their real tokens only; packed states are all real
            return self.mlp(x, layout.real if isinstance(layout, Padded) else None)
        return self.mlp(x)


class Encoder(nn.Module):
    """Token ids (B, T) and a padding mask -> L2-normalised sentence vectors (B, hidden)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_seq_len, config.hidden)
        self.embedding_norm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.final_norm = (nn.LayerNorm(config.hidden, eps=config.layer_norm_eps) if config.prenorm
                           else nn.Identity())
        self.apply(self._init_weights)
        # scale the residual output projections by depth (GPT-2) so the stream stays O(1)
        for name, parameter in self.named_parameters():
            if name.endswith(("attention.out.weight", "mlp.2.weight")):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * config.layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def token_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Contextual token vectors (B, T, hidden); rows at padding positions are meaningless."""
        T = input_ids.shape[1]
        positions = torch.arange(T, device=input_ids.device)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)
        x = self.drop(self.embedding_norm(x))
        layout = Padded(attention_mask)
        for block in self.blocks:
            x = block(x, layout)
        return self.final_norm(x)

    def encode_packed(self, sequences: list[list[int]], chunks: int = 4) -> torch.Tensor:
        """Sentence vectors (len(sequences), hidden), L2-normalised, row i for sequences[i], the
        same as `forward` on the padded batch (to float rounding) at the FLOPs of real tokens.

        Every linear layer, norm and activation runs on the packed real tokens only; attention
        runs per chunk of similar-length sequences (see `Packed`).
        """
        device = self.token_embedding.weight.device
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        layout = Packed([len(sequences[i]) for i in order], chunks, device)
        ids = torch.tensor([t for i in order for t in sequences[i]], device=device)
        x = self.token_embedding(ids) + self.position_embedding(layout.positions)
        x = self.drop(self.embedding_norm(x))
        for block in self.blocks:
            x = block(x, layout)
        x = self.final_norm(x)
        sums = x.new_zeros(len(order), x.shape[1]).index_add(0, layout.sequence, x)
        pooled = F.normalize(sums / layout.lengths[:, None].to(x.dtype), dim=-1)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return pooled[inverse.to(device)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.token_states(input_ids, attention_mask)
        return F.normalize(mean_pool(states, attention_mask), dim=-1)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters in the embedding tables and in everything else."""
        embedding = sum(p.numel() for p in (self.token_embedding.weight,
                                            self.position_embedding.weight))
        total = sum(p.numel() for p in self.parameters())
        return {"embedding": embedding, "other": total - embedding, "total": total}


def mean_pool(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors over real tokens: (B, T, H), (B, T) -> (B, H)."""
    mask = attention_mask.to(states.dtype).unsqueeze(-1)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
