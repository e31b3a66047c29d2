"""The transformer sentence encoder: embeddings, N blocks, mean pooling, L2 normalisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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
    # dropout on embeddings, attention and residual branches (also the noise SimCSE relies on)
    dropout: float = 0.1
    # LayerNorm before each sublayer (pre-LN trains stably from scratch at high learning rates)
    prenorm: bool = True
    # LayerNorm epsilon: torch's default; imported BERT checkpoints were trained with 1e-12
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")


class SelfAttention(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.hidden, 3 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # x (B, T, H); keep (B, 1, 1, T) bool, True where the key is a real token
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(  # (B, heads, T, head size)
            q, k, v, attn_mask=keep, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(B, T, H))


class Block(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.prenorm = config.prenorm
        self.norm1 = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.attention = SelfAttention(config)
        self.norm2 = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden, config.ff), nn.GELU(), nn.Linear(config.ff, config.hidden)
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.prenorm:
            x = x + self.drop(self.attention(self.norm1(x), keep))
            return x + self.drop(self.mlp(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attention(x, keep)))
        return self.norm2(x + self.drop(self.mlp(x)))


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
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
        for block in self.blocks:
            x = block(x, keep)
        return self.final_norm(x)

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
