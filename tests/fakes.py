"""Test doubles shared by the index and CLI tests."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np


class HashEmbedder:
    """A model-free stand-in: hashed bag of lower-cased words, L2-normalised. Deterministic, no
    torch; texts sharing words score higher. For tests and for trying the index commands."""

    def __init__(self, dim: int = 64, max_seq_len: int = 32, name: str = "hash") -> None:
        self.dim = dim
        self.max_seq_len = max_seq_len
        self.name = name
        self.path = Path(name)
        self.fingerprint = hashlib.sha256(f"{name}:{dim}".encode()).hexdigest()[:16]

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(_words(text)) + 2 for text in texts]

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _words(text)[: self.max_seq_len - 2]:
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                slot = int.from_bytes(digest[:4], "little") % self.dim
                vectors[row, slot] += 1.0 if digest[4] & 1 else -1.0
            if not vectors[row].any():
                vectors[row, 0] = 1.0
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())
