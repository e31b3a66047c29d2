"""The small record types that loaders return."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoredPair:
    """A sentence pair with a graded similarity (STS-B: 0 = unrelated .. 5 = equivalent)."""

    sentence1: str
    sentence2: str
    score: float


@dataclass(frozen=True)
class NliPair:
    """An SNLI premise/hypothesis pair with its gold label."""

    premise: str
    hypothesis: str
    label: str  # entailment | neutral | contradiction


@dataclass(frozen=True)
class Caption:
    """One caption of one image; captions sharing `image` are positives of each other."""

    image: str
    text: str


@dataclass(frozen=True)
class TrainingPair:
    """One training example: anchor and positive, an optional hard negative, and the keys that
    must not meet another example's keys in one batch (image ids, premises), which would turn a
    positive into an in-batch negative."""

    anchor: str
    positive: str
    negative: str | None = None
    source: str = ""
    group: str = ""
