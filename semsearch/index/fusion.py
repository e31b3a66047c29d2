"""Fusing a dense and a lexical ranking of documents into one: pure functions over lists.

Two methods, as the hybrid search of Elasticsearch, Vespa, LanceDB and txtai offer them:
- `rrf`: reciprocal-rank fusion, sum of 1 / (RRF_K + rank) over the lists a document is in.
  Needs no calibration, but weighs both sides equally, so a weak side drags a strong one down.
- `weighted`: each list's scores min-max normalised to [0, 1] over its own candidates, then
  dense_weight * dense + (1 - dense_weight) * lexical; a document missing from a list gets 0
  there. The weight is calibrated per model on the dev collections (`semsearch evaluate`).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from semsearch.errors import ConfigError

RRF_K = 60  # the constant of Cormack et al. (2009), which Elasticsearch and LanceDB also use
METHODS = ("weighted", "rrf")
# fusion of the two top-100 lists, as the reference figures were measured
DEFAULT_DEPTH = 100


@dataclass(frozen=True)
class FusionConfig:
    """How hybrid search fuses: kept with the model (fusion.json) and the index (manifest)."""

    method: str = "weighted"
    # used when no calibration exists for the model: the grid setting whose worst shortfall
    # against each model's own calibrated best is smallest over quick, a distilled static
    # model and all-MiniLM-L6-v2 on MLQuestions dev and ArguAna (0.4: at most 0.066 below;
    # 0.5: 0.100; bench/fusion_default.py, docs/results.md, Search)
    dense_weight: float = 0.4
    depth: int = DEFAULT_DEPTH  # documents each side contributes before fusing
    calibrated: bool = False  # chosen by measurement on the dev collections

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ConfigError(f"fusion method {self.method!r} is unknown; use one of {METHODS}")
        # types too: a manifest's JSON true is no weight, depth or calibration
        if (not isinstance(self.dense_weight, numbers.Real) or isinstance(self.dense_weight, bool)
                or not 0.0 <= self.dense_weight <= 1.0):  # also refuses nan
            raise ConfigError(f"dense weight must be between 0 and 1, not {self.dense_weight}")
        if (not isinstance(self.depth, numbers.Integral) or isinstance(self.depth, bool)
                or not 1 <= self.depth <= 10_000):
            raise ConfigError(f"fusion depth must be between 1 and 10000, not {self.depth}")
        if not isinstance(self.calibrated, bool):
            raise ConfigError(f"fusion 'calibrated' must be true or false, not {self.calibrated}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> FusionConfig:
        if not isinstance(data, dict):
            return cls()
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        try:
            return cls(**known)
        except (ConfigError, TypeError):
            return cls()


@dataclass(frozen=True)
class Fused:
    """One document of the fused ranking, with where it stood on each side (None: absent)."""

    doc_id: str
    score: float
    dense_score: float | None
    dense_rank: int | None
    lexical_score: float | None
    lexical_rank: int | None


def fuse(
    dense: Sequence[tuple[str, float]],
    lexical: Sequence[tuple[str, float]],
    method: str = "weighted",
    dense_weight: float = 0.5,
) -> list[Fused]:
    """Fuse two rankings of (doc id, score), each best first, into one, best first.

    >>> [f.doc_id for f in fuse([("a", .9), ("b", .5)], [("b", 7.0), ("c", 3.0)], "rrf")]
    ['b', 'a', 'c']
    >>> [(f.doc_id, round(f.score, 2)) for f in fuse([("a", .9), ("b", .5)], [("b", 7.0), ("c", 3.0)], "weighted", 0.5)]
    [('a', 0.5), ('b', 0.5), ('c', 0.0)]
    """
    dense_at = {doc: (rank, score) for rank, (doc, score) in enumerate(dense, start=1)}
    lexical_at = {doc: (rank, score) for rank, (doc, score) in enumerate(lexical, start=1)}
    if method == "rrf":
        def combined(doc: str) -> float:
            return sum(
                1.0 / (RRF_K + side[doc][0]) for side in (dense_at, lexical_at) if doc in side
            )
    elif method == "weighted":
        dense_norm = _min_max([score for _, score in dense])
        lexical_norm = _min_max([score for _, score in lexical])

        def combined(doc: str) -> float:
            value = 0.0
            if doc in dense_at:
                value += dense_weight * dense_norm[dense_at[doc][0] - 1]
            if doc in lexical_at:
                value += (1.0 - dense_weight) * lexical_norm[lexical_at[doc][0] - 1]
            return value
    else:
        raise ConfigError(f"fusion method {method!r} is unknown; use one of {METHODS}")
    # first-seen order: dense first, then lexical, each best first
    documents = list(dict.fromkeys([doc for doc, _ in dense] + [doc for doc, _ in lexical]))
    fused = [
        Fused(
            doc,
            combined(doc),
            dense_at[doc][1] if doc in dense_at else None,
            dense_at[doc][0] if doc in dense_at else None,
            lexical_at[doc][1] if doc in lexical_at else None,
            lexical_at[doc][0] if doc in lexical_at else None,
        )
        for doc in documents
    ]
    # ties: in weighted fusion by the rank on the side that weighs more (dense at 0.5), so a
    # weight of 1 or 0 gives exactly that side's order, equal scores included; then (and in
    # rrf) first-seen order, the sort being stable
    if method == "weighted":
        first, second = ("dense_rank", "lexical_rank") if dense_weight >= 0.5 else (
            "lexical_rank", "dense_rank")
        absent = len(documents) + 1
        fused.sort(key=lambda f: (-f.score, getattr(f, first) or absent,
                                  getattr(f, second) or absent))
    else:
        fused.sort(key=lambda f: -f.score)
    return fused


def _min_max(scores: Sequence[float]) -> list[float]:
    """Scores scaled to [0, 1] over the list; a list of equal scores becomes all 1.

    >>> _min_max([3.0, 2.0, 1.0])
    [1.0, 0.5, 0.0]
    """
    if not scores:
        return []
    high, low = max(scores), min(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


FUSION_FILE = "fusion.json"  # in a model folder: the calibrated fusion and what it measured


def read_model_fusion(model_dir: str | Path, fingerprint: str) -> FusionConfig:
    """The fusion calibrated for the model in `model_dir` when its file is there and was made
    for these weights; else the uncalibrated default."""
    path = Path(model_dir) / FUSION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return FusionConfig()
    if not isinstance(data, dict) or data.get("model_fingerprint") != fingerprint:
        return FusionConfig()
    return FusionConfig.from_dict(data.get("fusion"))


def write_model_fusion(model_dir: str | Path, fingerprint: str, fusion: FusionConfig,
                       measured: dict) -> Path:
    """Save a calibration beside the model's weights (written whole, then renamed)."""
    path = Path(model_dir) / FUSION_FILE
    data = {"model_fingerprint": fingerprint, "fusion": fusion.to_dict(), "measured": measured}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def index_fusion(manifest) -> tuple[FusionConfig, str]:
    """(fusion, where it came from) of an index: its own calibrated fusion ("index"); else the
    calibration its model got after the build ("model": fusion.json in the manifest's model
    folder, made for the same fingerprint); else its uncalibrated setting ("default")."""
    own = FusionConfig.from_dict(manifest.fusion)
    if own.calibrated:
        return own, "index"
    if manifest.model_path:
        later = read_model_fusion(manifest.model_path, manifest.model_fingerprint)
        if later.calibrated:
            return later, "model"
    return own, "default"


def describe_fusion(fusion: FusionConfig, source: str) -> dict:
    """What `query --json`, `/health` and `check` say of an index's fusion."""
    setting = "rrf" if fusion.method == "rrf" else f"weighted {fusion.dense_weight:.2f}"
    note = {"index": "calibrated for the model when the index was built",
            "model": "the model's calibration, made after the index was built",
            "default": "uncalibrated default: run `semsearch evaluate --model MODEL` (or "
                       "retrain) to calibrate it"}[source]
    return {"setting": setting, "calibrated": fusion.calibrated, "source": source, "note": note}
