"""Distillation from a teacher model: its vectors for every training text, cached on disk, and the
mean-squared-error loss that pulls the student's vectors onto them (Reimers & Gurevych 2020,
"Making monolingual sentence embeddings multilingual using knowledge distillation").

The teacher is any model folder `SentenceEncoder.load` reads (e.g. all-MiniLM-L6-v2 brought in
with `semsearch import-model`); its vectors must have the student's width (`model.hidden`).
They are computed once per (teacher weights, texts) and kept as a float32 `.npy` file (no
pickle) under $SEMSEARCH_CACHE/teachers (default ~/.cache/semsearch/teachers), so a resumed or
repeated run does not encode again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from semsearch.data.records import TrainingPair
from semsearch.errors import ConfigError

CACHE_ENV = "SEMSEARCH_CACHE"


def cache_dir() -> Path:
    """Where teacher vectors are kept: $SEMSEARCH_CACHE/teachers, else ~/.cache/semsearch/teachers."""
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "semsearch"
    return Path(base) / "teachers"


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the squared distance between student and teacher vectors (both
    L2-normalised, so each row's term is 2 - 2 cos, in 0..4).

    >>> round(distill_loss(torch.eye(2), torch.eye(2)).item(), 3)
    0.0
    """
    return ((student - teacher) ** 2).sum(-1).mean()


class TeacherTargets:
    """The teacher's vector for each sequence of each training pair, gathered per batch in the
    order the loop embeds them: anchors, positives, then the batch's hard negatives."""

    def __init__(self, vectors: np.ndarray, rows: list[tuple[int, int, int | None]]) -> None:
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        self.rows = rows  # per pair: row of its anchor, positive, negative (or None)

    def batch(self, batch: list[int], device: torch.device) -> torch.Tensor:
        """(sequences, dim) targets of `batch` (indices into the training pairs)."""
        rows = ([self.rows[i][0] for i in batch] + [self.rows[i][1] for i in batch]
                + [self.rows[i][2] for i in batch if self.rows[i][2] is not None])
        return self.vectors[rows].to(device)


def teacher_targets(teacher: str | Path, pairs: list[TrainingPair], width: int,
                    log: Callable[[str], None] = print) -> TeacherTargets:
    """Targets for every text of `pairs` from the teacher model folder (cached; see module)."""
    texts = list(dict.fromkeys(t for p in pairs for t in (p.anchor, p.positive, p.negative) if t))
    vectors = teacher_vectors(teacher, texts, log)
    if vectors.shape[1] != width:
        raise ConfigError(f"teacher {teacher} gives {vectors.shape[1]}-dim vectors and the student "
                          f"{width}-dim; set model.hidden={vectors.shape[1]} or pick a teacher "
                          "of the student's width")
    index = {text: i for i, text in enumerate(texts)}
    rows = [(index[p.anchor], index[p.positive], index[p.negative] if p.negative else None)
            for p in pairs]
    return TeacherTargets(vectors, rows)


def teacher_vectors(teacher: str | Path, texts: list[str], log: Callable[[str], None] = print,
                    batch_size: int = 128) -> np.ndarray:
    """The teacher's (len(texts), dim) float32 vectors of `texts`, from the cache when there."""
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    encoder = SentenceEncoder.load(teacher)
    digest = hashlib.sha256(encoder.fingerprint.encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = cache_dir() / f"{digest.hexdigest()[:32]}.npy"
    if path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape[0] == len(texts):
            log(f"teacher vectors: {len(texts):,} from the cache {path}")
            return vectors
    log(f"teacher vectors: encoding {len(texts):,} texts with {encoder.path} (cached in {path})")
    vectors = np.asarray(encoder.encode(texts, batch_size=batch_size), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npy")
    np.save(partial, vectors, allow_pickle=False)
    partial.replace(path)
    return vectors
