"""Static embeddings: a table of token vectors, pooled over a text's tokens, no transformer.

A text's vector is the weighted sum of its tokens' rows, L2-normalised:

    v(text) = normalise( sum_t  w[t] * E[t] )      E: (vocab, hidden), w: (vocab,)

The per-token weight `w` starts at the SIF weight of the token's estimated frequency (Arora et
al. 2017, with Zipf's law standing in for counts: frequent tokens count less, as Model2Vec
does) and is learned with the table. There is no attention, so cost grows linearly with the
text and nothing bounds the window but `max_seq_len` (512 tokens by default): `index` chunks a
long document into windows of that many tokens, as it does for a transformer, and `encode`
keeps a text's first `max_seq_len` tokens. No [CLS]/[SEP]: only the text's own tokens count.

The model folder is the transformer's format (config.json with `"kind": "static"`,
tokenizer.json, model.safetensors holding `embedding` and `weight`), so every command that takes
a model takes this one. Inference is numpy (a sparse (texts, vocab) count matrix times the
weighted table), whatever backend is asked for: there is no graph for ONNX Runtime or int8 to
speed up. Training (`static_train.py`) uses the torch module `StaticModule` below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import chain
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
from semsearch.encoder.word_cache import WordCache
from semsearch.errors import ModelError

KIND = "static"
TRANSFORMER = "transformer"
KINDS = (TRANSFORMER, KIND)
# texts tokenised and pooled at once: bounds the sparse matrix and the (batch, hidden) output
ENCODE_BATCH = 4096
# texts tokenised at once from which the word cache is used (a query's few go straight to the
# tokenizer: its settings are read only when a batch is worth it)
CACHED_BATCH = 64
# texts whose ids count_tokens keeps for the encode that follows it (a window of documents and
# the chunks of its long ones)
COUNTED_TEXTS = 262_144


@dataclass(frozen=True)
class StaticConfig:
    vocab_size: int = 30_522
    hidden: int = 256  # width of each token vector (and of the text vector)
    max_seq_len: int = 512  # tokens of a text that count; index windows are this long
    kind: str = KIND

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_kind(config: dict[str, Any]) -> str:
    """'static' or 'transformer' from a config.json (a folder without the field is a
    transformer: every folder written before static models existed)."""
    model = config.get("model") if isinstance(config, dict) else None
    kind = model.get("kind", TRANSFORMER) if isinstance(model, dict) else TRANSFORMER
    return kind


def is_static(folder: str | Path | None) -> bool:
    """Whether the model folder (resolved as every command resolves it) holds a static model."""
    return model_kind(read_config(resolve_model(folder))) == KIND


def sif_weights(vocab_size: int, a: float = 1e-3) -> np.ndarray:
    """SIF weight a / (a + p) of each token id, p its Zipf-estimated frequency (rank = id order,
    which for WordPiece vocabularies learned by frequency is close to frequency order; Model2Vec
    uses the same estimate). Normalised to mean 1.

    >>> w = sif_weights(5); bool(w[0] < w[-1])
    True
    """
    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    p = 1.0 / (ranks * math.log(vocab_size + 1.0))  # Zipf: p(rank) ~ 1 / (rank H_n)
    w = a / (a + p)
    return (w / w.mean()).astype(np.float32)


def sif_from_counts(ids: Sequence[Sequence[int]], vocab_size: int, a: float = 1e-3) -> np.ndarray:
    """SIF weight a / (a + p) of each token id, p its frequency among `ids` (add-one smoothed),
    normalised to mean 1.

    >>> w = sif_from_counts([[0, 0, 0, 1]], 3); bool(w[0] < w[1] < w[2])
    True
    """
    counts = np.bincount(np.fromiter((t for s in ids for t in s), dtype=np.int64),
                         minlength=vocab_size)[:vocab_size].astype(np.float64) + 1.0
    w = a / (a + counts / counts.sum())
    return (w / w.mean()).astype(np.float32)


class StaticEncoder:
    """Same interface as `SentenceEncoder` (encode, dim, name, fingerprint, max_seq_len,
    count_tokens, similarity), numpy only."""

    kind = KIND
    backend = "numpy"
    # encode runs on one core (a sparse product in numpy): `semsearch index` runs it in a worker
    # process a core, where a transformer backend spreads one call over the cores itself
    single_threaded = True

    def __init__(self, table: np.ndarray, tokenizer: Tokenizer, path: Path,
                 config: dict[str, Any], fingerprint: str) -> None:
        self.table = np.ascontiguousarray(table, dtype=np.float32)  # (vocab, hidden), weights in
        self.tokenizer = tokenizer
        self.path = path
        self.config = config
        self.fingerprint = fingerprint
        self.dim = int(self.table.shape[1])
        self.max_seq_len = int(config["model"]["max_seq_len"])
        self.precision = "fp32"
        self.device = "cpu"
        # a text with no token at all (empty, or only characters the tokenizer drops) gets the
        # [UNK] row's direction: a unit vector like any other, never a zero or NaN row
        unk = tokenizer.inner.token_to_id("[UNK]")
        fallback = self.table[unk] if unk is not None and unk < len(self.table) else None
        if fallback is None or not np.isfinite(fallback).all() or not np.linalg.norm(fallback):
            fallback = np.zeros(self.dim, dtype=np.float32)
            fallback[0] = 1.0
        self._empty = (fallback / np.linalg.norm(fallback)).astype(np.float32)
        # the word cache (None: not looked at yet; False: the tokenizer is not one it applies to)
        self._words: WordCache | bool | None = None
        self._counted: dict[str, np.ndarray] = {}  # count_tokens' last texts' ids, by text

    @classmethod
    def load(cls, path: str | Path | None = None) -> StaticEncoder:
        from safetensors.numpy import load_file

        folder = resolve_model(path)
        config = read_config(folder)
        if model_kind(config) != KIND:
            raise ModelError(f"{folder} holds a {model_kind(config)} model, not a static one")
        for name in (TOKENIZER, WEIGHTS):
            if not (folder / name).is_file():
                raise ModelError(f"{folder}: {name} is missing; retrain the model")
        try:
            tensors = load_file(str(folder / WEIGHTS))
        except Exception as error:  # noqa: BLE001 - safetensors raises its own error type
            raise ModelError(f"{folder / WEIGHTS}: unreadable weights ({error}); "
                             "retrain the model") from None
        model = config["model"]
        table, weight = tensors.get("embedding"), tensors.get("weight")
        if (table is None or weight is None or table.shape != (model["vocab_size"], model["hidden"])
                or weight.shape != (model["vocab_size"],)):
            raise ModelError(f"{folder / WEIGHTS}: the static model's tensors do not match "
                             f"config.json (vocab {model['vocab_size']}, hidden {model['hidden']}); "
                             "retrain or re-distill the model")
        tokenizer = Tokenizer.load(folder / TOKENIZER)
        check_tokenizer_fits(model["vocab_size"], tokenizer.vocab_size, folder)
        full, weights_only = model_fingerprints(folder, config)
        encoder = cls(table.astype(np.float32) * weight.astype(np.float32)[:, None], tokenizer,
                      folder, config, full)
        encoder.weights_fingerprint = weights_only
        return encoder

    @property
    def name(self) -> str:
        return self.path.name

    def _flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, counts): every text's token ids one after the other (no special tokens,
        untruncated) and each text's count; through the word cache where it applies
        (semsearch.encoder.word_cache: the same ids, several times faster)."""
        if len(texts) >= CACHED_BATCH:
            if self._words is None:  # looked at once, on the first large batch
                self._words = WordCache(self.tokenizer.inner) if WordCache.applies(
                    self.tokenizer.inner) else False
            if self._words:
                return self._words.flat(list(texts))
        encodings = self.tokenizer.inner.encode_batch_fast(list(texts), add_special_tokens=False)
        counts = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int32,
                          count=int(counts.sum()))
        return ids, counts

    def _tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """`_flat` of the texts, cut to max_seq_len ids a text; the texts count_tokens saw last
        are taken from what it kept."""
        counted = self._counted
        found = [counted.get(text) for text in texts] if counted else []
        if found and all(part is not None for part in found):
            ids = np.concatenate(found) if found else np.zeros(0, np.int32)
            counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
        else:
            ids, counts = self._flat(texts)
        limit = self.max_seq_len
        if len(counts) and counts.max() > limit:
            starts = np.cumsum(counts) - counts
            place = np.arange(len(ids)) - np.repeat(starts, counts)
            ids = ids[place < limit]
            counts = np.minimum(counts, limit)
        return ids, counts

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's token ids, no special tokens, at most max_seq_len of them."""
        ids, counts = self._tokens(list(texts))
        return [part.tolist() for part in np.split(ids, np.cumsum(counts)[:-1])]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Untruncated token counts (what `index` chunks by). The ids of the texts counted
        last are kept (up to COUNTED_TEXTS): `index` counts a window's texts, then encodes them
        (mostly the same texts, a document that fits the window being its own chunk), and so
        tokenises them once."""
        texts = list(texts)
        ids, counts = self._flat(texts)
        if len(self._counted) + len(texts) > COUNTED_TEXTS:
            self._counted = {}
        self._counted.update(zip(texts, np.split(ids, np.cumsum(counts)[:-1]), strict=True))
        return counts.tolist()

    def encode(self, texts: Sequence[str], batch_size: int = ENCODE_BATCH,
               progress: bool = False) -> np.ndarray:
        """Embeddings of `texts`: float32, C-contiguous, (len(texts), dim), unit length."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        step = max(batch_size, ENCODE_BATCH)
        bar = _bar(len(texts), progress)
        for start in range(0, len(texts), step):
            chunk = texts[start:start + step]
            out[start:start + len(chunk)] = self._pool(*self._tokens(chunk))
            bar.update(len(chunk))
        bar.close()
        return out

    def _pool(self, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Unit vectors of texts given as their token ids one after the other and counts."""
        from scipy.sparse import csr_matrix

        indptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        matrix = csr_matrix((np.ones(len(ids), dtype=np.float32), ids, indptr),
                            shape=(len(counts), len(self.table)))
        vectors = np.asarray(matrix @ self.table, dtype=np.float32)  # (texts, hidden)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        empty = (norms[:, 0] == 0) | ~np.isfinite(norms[:, 0])
        vectors /= np.where(empty[:, None], 1.0, norms)
        vectors[empty] = self._empty
        return np.ascontiguousarray(vectors)

    def similarity(self, text_a: str, text_b: str) -> float:
        a, b = self.encode([text_a, text_b])
        return float(a @ b)


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="encoding", unit="text", leave=False, disable=not enabled)


def save_static(folder: Path, table: np.ndarray, weight: np.ndarray) -> None:
    """Write the tensors of a static model into `folder` (atomically, user's umask)."""
    import os

    from safetensors.numpy import save_file

    path = folder / WEIGHTS
    tmp = path.with_name(path.name + ".tmp")
    save_file({"embedding": np.ascontiguousarray(table, dtype=np.float32),
               "weight": np.ascontiguousarray(weight, dtype=np.float32)}, str(tmp))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def static_module(table: np.ndarray, weight: np.ndarray):
    """The torch module that trains a static model (imported here so inference never loads
    torch)."""
    import torch

    class StaticModule(torch.nn.Module):
        """forward(flat ids, offsets) -> (texts, hidden) unit rows: torch's EmbeddingBag sum with
        each token's learned weight as its per-sample weight."""

        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Parameter(torch.from_numpy(np.array(table, np.float32)))
            self.weight = torch.nn.Parameter(torch.from_numpy(np.array(weight, np.float32)))

        def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
            pooled = torch.nn.functional.embedding_bag(
                ids, self.embedding, offsets, mode="sum", per_sample_weights=self.weight[ids])
            return torch.nn.functional.normalize(pooled, dim=-1, eps=1e-8)

    return StaticModule()
