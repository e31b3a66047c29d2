"""The encoder's forward pass in plain numpy, for answering a query without importing torch.

`import torch` alone takes longer than a whole query should (about 1.5-2.5 s on a small CPU);
a query is a handful of short texts, which numpy embeds in milliseconds. The arithmetic is that
of `model.Encoder` (same weights file, same tokenizer), so the vectors match the torch path to
float32 rounding (tested: cosine >= 0.9999). Batches of many texts still belong to torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.encoder.store import (
    TOKENIZER,
    WEIGHTS,
    check_tokenizer_fits,
    model_fingerprints,
    read_config,
    resolve_model,
)
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.errors import ModelError

LAYER_NORM_EPS = 1e-5  # EncoderConfig.layer_norm_eps's default, for config.json files without it


class NumpyEncoder:
    """Same interface as `SentenceEncoder` (encode, dim, name, fingerprint, max_seq_len,
    count_tokens), torch-free, CPU only."""

    def __init__(self, weights: dict[str, np.ndarray], tokenizer: Tokenizer, path: Path,
                 config: dict[str, Any], fingerprint: str) -> None:
        self.w = weights
        self.tokenizer = tokenizer
        self.path = path
        self.config = config
        self.fingerprint = fingerprint
        model = config["model"]
        self.layers, self.heads = model["layers"], model["heads"]
        self.prenorm = model.get("prenorm", True)
        self.eps = float(model.get("layer_norm_eps", LAYER_NORM_EPS))
        self.dim, self.max_seq_len = model["hidden"], model["max_seq_len"]
        # mixture-of-experts feed-forward (absent from configs older than the option: dense)
        self.experts, self.top_k = model.get("experts", 0), model.get("expert_top_k", 2)

    @classmethod
    def load(cls, path: str | Path | None = None) -> NumpyEncoder:
        from safetensors.numpy import load_file

        folder = resolve_model(path)
        config = read_config(folder)
        if config.get("model", {}).get("kind") == "static":  # no graph: its own numpy path
            from semsearch.encoder.static import StaticEncoder

            return StaticEncoder.load(folder)
        try:
            weights = {k: v.astype(np.float32) for k, v in load_file(str(folder / WEIGHTS)).items()}
        except Exception as error:  # noqa: BLE001 - safetensors raises its own error type
            raise ModelError(f"{folder / WEIGHTS}: unreadable weights ({error}); "
                             "retrain the model") from None
        tokenizer = Tokenizer.load(folder / TOKENIZER)
        check_tokenizer_fits(config["model"]["vocab_size"], tokenizer.vocab_size, folder)
        full, weights_only = model_fingerprints(folder, config)
        try:
            encoder = cls(weights, tokenizer, folder, config, full)
        except KeyError as error:
            raise ModelError(f"{folder / WEIGHTS}: tensor {error} is missing; the weights do not "
                             "match config.json: retrain or re-import the model") from None
        encoder.weights_fingerprint = weights_only  # what indexes built before recorded
        return encoder

    @property
    def name(self) -> str:
        return self.path.name

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer.encode(list(texts))]

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Embeddings of `texts`: float32, C-contiguous, (len(texts), dim), unit length."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        ids = self.tokenizer.encode(list(texts), max_length=self.max_seq_len)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        order = np.argsort([len(s) for s in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[i]) for i in rows)
            tokens = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=bool)
            for r, i in enumerate(rows):
                tokens[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = True
            out[rows] = self.forward(tokens, mask)
        return np.ascontiguousarray(out)

    def forward(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(B, T) token ids and bool mask -> (B, hidden) unit vectors, as `Encoder.forward`."""
        w = self.w
        T = tokens.shape[1]
        x = w["token_embedding.weight"][tokens] + w["position_embedding.weight"][:T]
        x = self._norm(x, "embedding_norm")
        for i in range(self.layers):
            p = f"blocks.{i}."
            if self.prenorm:
                x = x + self._attention(self._norm(x, p + "norm1"), mask, p)
                x = x + self._mlp(self._norm(x, p + "norm2"), mask, p)
            else:
                x = self._norm(x + self._attention(x, mask, p), p + "norm1")
                x = self._norm(x + self._mlp(x, mask, p), p + "norm2")
        if self.prenorm:
            x = self._norm(x, "final_norm")
        keep = mask[..., None].astype(np.float32)
        pooled = (x * keep).sum(1) / np.maximum(keep.sum(1), 1.0)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def _attention(self, x: np.ndarray, mask: np.ndarray, p: str) -> np.ndarray:
        B, T, H = x.shape
        qkv = _linear(x, self.w[p + "attention.qkv.weight"], self.w[p + "attention.qkv.bias"])
        q, k, v = qkv.reshape(B, T, 3, self.heads, H // self.heads).transpose(2, 0, 3, 1, 4)
        scores = q @ k.transpose(0, 1, 3, 2) * (1.0 / math.sqrt(H // self.heads))  # (B, heads, T, T)
        scores = np.where(mask[:, None, None, :], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        y = (scores / scores.sum(-1, keepdims=True)) @ v  # (B, heads, T, head size)
        y = y.transpose(0, 2, 1, 3).reshape(B, T, H)
        return _linear(y, self.w[p + "attention.out.weight"], self.w[p + "attention.out.bias"])

    def _mlp(self, x: np.ndarray, mask: np.ndarray, p: str) -> np.ndarray:
        if self.experts:
            return self._experts(x, mask, p)
        h = _gelu(_linear(x, self.w[p + "mlp.0.weight"], self.w[p + "mlp.0.bias"]))
        return _linear(h, self.w[p + "mlp.2.weight"], self.w[p + "mlp.2.bias"])

    def _experts(self, x: np.ndarray, mask: np.ndarray, p: str) -> np.ndarray:
        """`moe.MoEFeedForward`: each real token through its top-k experts, mixed by the gate's
        renormalised softmax weights; padding rows stay zero."""
        w = self.w
        tokens = x[mask]  # (N, H) real tokens
        logits = tokens @ w[p + "mlp.gate.weight"].T + w[p + "mlp.gate.bias"]
        probabilities = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)  # (N, experts)
        chosen = np.argsort(-probabilities, axis=-1, kind="stable")[:, : self.top_k]
        weights = np.take_along_axis(probabilities, chosen, -1)
        weights /= weights.sum(-1, keepdims=True)  # (N, top_k)
        mixed = np.zeros_like(tokens)
        for e in range(self.experts):
            picked, slot = np.nonzero(chosen == e)  # a token picks an expert at most once
            if picked.size:
                h = _gelu(tokens[picked] @ w[p + "mlp.w_in"][e].T + w[p + "mlp.in_bias"][e])
                y = h @ w[p + "mlp.w_out"][e].T + w[p + "mlp.out_bias"][e]
                mixed[picked] += y * weights[picked, slot, None]
        out = np.zeros_like(x)
        out[mask] = mixed
        return out


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight.T + bias over the last axis, as one 2-D matrix product: numpy 2 runs a 3-D
    `@` as a loop of small products off BLAS (58x slower on a 128-text batch in one test)."""
    flat = x.reshape(-1, x.shape[-1]) @ weight.T
    return (flat + bias).reshape(*x.shape[:-1], weight.shape[0])


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray,
                eps: float = LAYER_NORM_EPS) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU as torch's default, with erf from Abramowitz & Stegun 7.1.26 (error
    < 1.5e-7, below float32 resolution) — scipy.special would cost more import time than a query."""
    z = np.abs(x) * (1.0 / math.sqrt(2.0))  # a Python float keeps float32 (NEP 50)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return (0.5 * x * (1.0 + erf)).astype(np.float32)
