"""The second phase of a search: a strong model re-scores the first stage's top N documents.

A cheap first stage (BM25, or the hybrid search of a fast model's index) finds candidates; a
stronger encoder (the *rescoring model*) encodes the query and the candidates' chunk texts, and
its cosine is fused with the candidates' BM25 scores. This is Elasticsearch's `rescore` with
its `window_size` (here `depth`), Vespa's second-phase ranking, and the retrieve-then-re-rank
pipeline of sentence-transformers and txtai, with a bi-encoder as the re-scorer so each chunk's
vector can be cached (`Rescorer` keeps a bounded cache keyed by chunk row).

    rescorer = load_rescorer("models/minilm")
    hits = search(index, embedder, ["ocean tides"], k=10, rescorer=rescorer)

How the two sides meet (`second_phase`, a pure function): the candidates' rescoring cosines
and their BM25 scores (every candidate's own, from the index's lexical part) are each
normalised over the candidates and mixed as `weight * cosine + (1 - weight) * bm25`, the
weighted fusion `semsearch.index.fusion.fuse` gives hybrid search. The depth and the weight are
calibrated for each (first stage, rescoring model) pair on the dev collections
(`semsearch evaluate --rescore MODEL`) and saved beside the rescoring model (rescore.json).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.errors import ConfigError, IndexError_
from semsearch.limits import MAX_RESCORE_DEPTH as MAX_DEPTH  # candidates re-scored, at most

# used where the pair has no calibration: the probe's best depths and weights were 50 and
# 0.6-0.9 over MLQuestions, ArguAna and a held-out collection (docs/results.md, Search)
DEFAULT_DEPTH = 50
DEFAULT_WEIGHT = 0.8
# chunk vectors a rescorer keeps (384 floats each: 50,000 x 1.5 KiB = 73 MiB)
CACHE_SIZE = 50_000
# how the second phase puts each side's scores on one scale over the candidates
NORMALISATIONS = ("minmax", "zscore")
RESCORE_FILE = "rescore.json"  # in the rescoring model's folder: calibrations per first stage


@dataclass(frozen=True)
class RescoreSettings:
    """How deep the second phase looks and how it fuses; kept per pair in rescore.json."""

    depth: int = DEFAULT_DEPTH  # first-stage documents re-scored
    weight: float = DEFAULT_WEIGHT  # the rescoring cosine's share; the rest is BM25's
    # tokens of a candidate's chunk the rescoring model reads (0: the model's whole window)
    window: int = 0
    # how each side's scores are put on one scale over the candidates: minmax or zscore
    normalise: str = "minmax"
    calibrated: bool = False

    def __post_init__(self) -> None:
        check_depth(self.depth)
        if (isinstance(self.weight, bool) or not isinstance(self.weight, (int, float))
                or not 0.0 <= self.weight <= 1.0):
            raise ConfigError(f"rescore weight must be between 0 and 1, not {self.weight}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 0:
            raise ConfigError(f"rescore window must be a token count >= 0, not {self.window}")
        if self.normalise not in NORMALISATIONS:
            raise ConfigError(f"rescore normalisation {self.normalise!r} is unknown; use one "
                              f"of {', '.join(NORMALISATIONS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RescoreSettings:
        if not isinstance(data, dict):
            return cls()
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ConfigError, TypeError):
            return cls()


def check_depth(depth: Any) -> int:
    """A rescoring depth, checked: a whole number from 1 to MAX_DEPTH.

    >>> check_depth(50)
    50
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise ConfigError(f"rescore depth must be a whole number from 1 to {MAX_DEPTH}, not "
                          f"{depth!r}: the first stage's top N documents are re-scored")
    return depth


def pair_key(first_stage: str | None, mode: str) -> str:
    """The key of a (first stage, mode) pair in rescore.json: BM25 alone is the same first
    stage whatever the index's model, so every lexical first stage shares one key.

    >>> pair_key("0123abcd", "hybrid"), pair_key("0123abcd", "lexical"), pair_key(None, "lexical")
    ('0123abcd:hybrid', 'lexical', 'lexical')
    """
    return "lexical" if mode == "lexical" else f"{first_stage}:{mode}"


def read_pair_settings(model_dir: str | Path, fingerprint: str, key: str
                       ) -> tuple[RescoreSettings, dict]:
    """(settings, what the calibration recorded) for the pair `key` from the rescoring model's
    rescore.json when it was made for these weights; else the uncalibrated defaults and {}."""
    try:
        data = json.loads((Path(model_dir) / RESCORE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return RescoreSettings(), {}
    if not isinstance(data, dict) or data.get("model_fingerprint") != fingerprint:
        return RescoreSettings(), {}
    entry = (data.get("pairs") or {}).get(key)
    if not isinstance(entry, dict):
        return RescoreSettings(), {}
    return RescoreSettings.from_dict(entry.get("settings")), entry


def write_pair_settings(model_dir: str | Path, fingerprint: str, key: str,
                        settings: RescoreSettings, measured: dict) -> Path:
    """Save a pair's calibration into the rescoring model's rescore.json (other pairs kept)."""
    def change(data: dict) -> None:
        data.setdefault("pairs", {})[key] = {"settings": settings.to_dict(), **measured}

    return _update_rescore_file(model_dir, fingerprint, change)


def _update_rescore_file(model_dir: str | Path, fingerprint: str, change) -> Path:
    """Read the model's rescore.json (started afresh when missing, corrupt or made for other
    weights), apply `change` to it, and write it whole, then rename it into place."""
    path = Path(model_dir) / RESCORE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or data.get("model_fingerprint") != fingerprint:
        data = {"model_fingerprint": fingerprint, "pairs": {}}
    change(data)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


class Rescorer:
    """A rescoring model loaded once, with a bounded cache of its chunk vectors.

    The cache is keyed by (index identity, chunk row, window): a row's text never changes in
    one index version (rows are never reused), and `forget` drops everything when an index is
    swapped for a new version, as the server does. Thread-safe."""

    def __init__(self, encoder, cache_size: int = CACHE_SIZE, precision: str = "fp32") -> None:
        self.encoder = encoder
        self.precision = precision
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.full_window = int(encoder.max_seq_len)

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def path(self) -> Path:
        return Path(getattr(self.encoder, "path", self.encoder.name))

    def settings_for(self, first_stage: str | None, mode: str) -> tuple[RescoreSettings, str]:
        """(settings, "calibrated" or "default") for this model behind that first stage."""
        settings, entry = read_pair_settings(self.path, self.fingerprint,
                                             pair_key(first_stage, mode))
        return settings, ("calibrated" if entry and settings.calibrated else "default")

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """(n, dim) vectors of the queries (the model's whole window: a query is short)."""
        with self._lock:
            return self._encode(list(queries), self.full_window)

    def chunk_vectors(self, index_key: Any, rows: Sequence[int], texts: Sequence[str],
                      window: int = 0) -> np.ndarray:
        """(len(rows), dim) vectors of the chunks at `rows` (texts given), from the cache where
        they are, the rest encoded in one call (length-sorted batches) and cached."""
        window = min(window or self.full_window, self.full_window)
        out = np.empty((len(rows), self.encoder.dim), dtype=np.float32)
        with self._lock:
            missing: dict[int, list[int]] = {}
            for position, row in enumerate(rows):
                found = self._cache.get((index_key, int(row), window))
                if found is None:
                    missing.setdefault(int(row), []).append(position)
                else:
                    self._cache.move_to_end((index_key, int(row), window))
                    out[position] = found
            self.hits += len(rows) - sum(len(p) for p in missing.values())
            self.misses += sum(len(p) for p in missing.values())
            if missing:
                order = list(missing)
                vectors = self._encode([texts[missing[row][0]] for row in order], window)
                for row, vector in zip(order, vectors, strict=True):
                    out[missing[row]] = vector
                    if self.cache_size:
                        self._cache[(index_key, row, window)] = vector
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _encode(self, texts: list[str], window: int) -> np.ndarray:
        # the window a text is read to is the encoder's max_seq_len, which its tokenizer
        # truncates at: set it for this call (under the lock)
        encoder, before = self.encoder, self.encoder.max_seq_len
        try:
            encoder.max_seq_len = window
        except AttributeError:  # torch's SentenceEncoder: its window is its model's
            return np.asarray(encoder.encode(texts), dtype=np.float32)
        try:
            return np.asarray(encoder.encode(texts), dtype=np.float32)
        finally:
            encoder.max_seq_len = before

    def forget(self) -> None:
        """Drop every cached vector (the index was swapped for a new version)."""
        with self._lock:
            self._cache.clear()

    def stats(self) -> dict[str, Any]:
        """What /health says of the cache: size, lookups and the hit rate."""
        with self._lock:
            looked = self.hits + self.misses
            return {"entries": len(self._cache), "capacity": self.cache_size,
                    "hits": self.hits, "misses": self.misses,
                    "hit_rate": round(self.hits / looked, 4) if looked else None}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "fingerprint": self.fingerprint,
                "precision": self.precision, "window": self.full_window}


def load_rescorer(model: str | Path, cache_size: int = CACHE_SIZE,
                  precision: str | None = None, threads: int | None = None) -> Rescorer:
    """The rescoring model in folder `model` on its fastest faithful CPU path: a static model's
    numpy product; else ONNX Runtime int8 where its calibration found int8 to agree with fp32
    (rescore.json's `precision`), else ONNX Runtime fp32 (torch where ONNX Runtime is missing).
    `precision` forces fp32 or int8. Raises ModelError for a folder that is not a model."""
    from semsearch.embedder import load_embedder
    from semsearch.encoder import resolve_model
    from semsearch.encoder.onnx_encoder import available
    from semsearch.encoder.store import read_config

    folder = resolve_model(model)
    config = read_config(folder)
    if config.get("model", {}).get("kind") == "static":
        return Rescorer(load_embedder(folder, backend="onnx" if available() else "torch"),
                        cache_size, "fp32")
    if precision is None:
        precision = recorded_precision(folder)
    backend = "onnx" if available() else "torch"
    if backend == "torch":
        precision = "fp32"
    return Rescorer(load_embedder(folder, backend=backend, precision=precision, threads=threads),
                    cache_size, precision)


# mean cosine to fp32 an int8 rescoring path must reach on the calibration's chunk texts
INT8_AGREEMENT = 0.99


def recorded_precision(folder: Path) -> str:
    """int8 where the model's rescore.json records that int8 agrees with fp32, else fp32."""
    try:
        data = json.loads((Path(folder) / RESCORE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "fp32"
    agreement = data.get("int8_agreement") if isinstance(data, dict) else None
    if isinstance(agreement, dict) and isinstance(agreement.get("mean_cosine"), (int, float)):
        return "int8" if agreement["mean_cosine"] >= INT8_AGREEMENT else "fp32"
    return "fp32"


def record_int8_agreement(folder: Path, fingerprint: str, mean: float, low: float,
                          texts: int) -> None:
    """Keep in rescore.json how closely int8 vectors agreed with fp32 on `texts` chunks."""
    def change(data: dict) -> None:
        data["int8_agreement"] = {"mean_cosine": round(mean, 5), "min_cosine": round(low, 5),
                                  "texts": texts}

    _update_rescore_file(folder, fingerprint, change)


def second_phase(cosines: np.ndarray, bm25: np.ndarray, weight: float,
                 normalise: str = "minmax") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The second phase's ranking of n candidates, as numpy: (order, fused scores, cosine
    ranks). `cosines`: the rescoring model's, one a candidate; `bm25`: their BM25 scores (0
    for a candidate that shares no word with the query). Each side is normalised over the
    candidates (`minmax` to [0, 1], or `zscore`) and mixed as weight x cosine + (1 - weight) x
    BM25; ties go by the rank on the side that weighs more, then the other, then the cosine
    order. With min-max this is exactly `semsearch.index.fusion.fuse(cosine ranking, BM25
    ranking, "weighted", weight)`, hybrid search's fusion, at numpy speed.

    >>> order, scores, ranks = second_phase(np.array([.2, .9, .5]), np.array([7., 0., 3.]), 0.5)
    >>> order.tolist(), scores.round(3).tolist(), ranks.tolist()
    ([1, 0, 2], [0.5, 0.5, 0.429], [3, 1, 2])
    """
    if normalise not in NORMALISATIONS:
        raise ConfigError(f"rescore normalisation {normalise!r} is unknown; use one of "
                          f"{', '.join(NORMALISATIONS)}")
    cosines = np.asarray(cosines, dtype=np.float64)
    bm25 = np.asarray(bm25, dtype=np.float64)
    n = len(cosines)
    cosine_rank, bm25_rank = _ranks(cosines), _ranks(bm25)
    scale = _min_max if normalise == "minmax" else _z_score
    scores = weight * scale(cosines) + (1.0 - weight) * scale(bm25)
    first, second = (cosine_rank, bm25_rank) if weight >= 0.5 else (bm25_rank, cosine_rank)
    order = np.lexsort((cosine_rank, second, first, -scores)) if n else np.empty(0, np.int64)
    return order, scores, cosine_rank


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank of each value, highest first, ties in the given order."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranks


def _min_max(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1]; all equal: all 1 (as semsearch.index.fusion's)."""
    if not len(values):
        return values
    high, low = values.max(), values.min()
    if high == low:
        return np.ones(len(values))
    return (values - low) / (high - low)


def _z_score(values: np.ndarray) -> np.ndarray:
    """Centred and scaled to unit spread; all equal: all 0."""
    if not len(values):
        return values
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros(len(values))


def rescore_hits(candidates: Sequence, cosines: np.ndarray, bm25: np.ndarray | None,
                 weight: float, k: int, normalise: str = "minmax") -> list:
    """One query's second phase: the candidates (first-stage hits, best first) re-ranked by
    `second_phase` on their rescoring cosines and BM25 scores (None: no BM25, the cosine
    alone). Returns the top k, each hit with its fused score, its rescoring cosine and rank
    among the candidates, and its first-stage rank.

    >>> from semsearch.index import Hit
    >>> first = [Hit(1, .9, "a", 0, 1, ""), Hit(2, .8, "b", 0, 1, ""), Hit(3, .7, "c", 0, 1, "")]
    >>> [h.id for h in rescore_hits(first, np.array([.2, .9, .5]), np.array([7., 0, 3]), 1, 2)]
    ['b', 'c']
    >>> [h.id for h in rescore_hits(first, np.array([.2, .9, .5]), np.array([7., 0, 3]), 0, 3)]
    ['a', 'c', 'b']
    """
    if not len(candidates):
        return []
    cosines = np.asarray(cosines, dtype=np.float64)
    if bm25 is None:
        bm25, weight = np.zeros(len(candidates)), 1.0
    order, scores, cosine_rank = second_phase(cosines, bm25, weight, normalise)
    return [replace(candidates[i], rank=rank, score=float(scores[i]),
                    rescore_score=float(cosines[i]), rescore_rank=int(cosine_rank[i]),
                    first_rank=int(i) + 1)
            for rank, i in enumerate(order[:k].tolist(), start=1)]


def recorded_model(manifest) -> dict | None:
    """The second phase an index records as its default ({model_name, model_path,
    model_fingerprint}), or None."""
    recorded = getattr(manifest, "rescore", None)
    return recorded if isinstance(recorded, dict) and recorded.get("model_path") else None


def rescore_model_for_index(manifest, folder: Path, model: str | Path | None
                            ) -> str | Path | None:
    """The rescoring model to load: the one asked for, else the one the index records (its
    folder must still be there), else None (no second phase)."""
    if model is not None:
        return model
    recorded = recorded_model(manifest)
    if recorded is None:
        return None
    path = Path(recorded["model_path"])
    if not (path / "config.json").is_file():
        raise IndexError_(
            f"index {folder} re-scores with model {recorded.get('model_name')} at {path}, which "
            f"is gone; pass --rescore MODEL or --no-rescore, or record another with `semsearch "
            f"index --rescore MODEL --out {folder}`")
    return path


def check_recorded(manifest, rescorer: Rescorer, folder: Path) -> None:
    """Refuse the index's recorded rescoring model when its weights changed since it was
    recorded (its calibration and the index's behaviour would silently change)."""
    recorded = recorded_model(manifest)
    if recorded is None or Path(recorded["model_path"]).resolve() != rescorer.path.resolve():
        return
    if recorded.get("model_fingerprint") != rescorer.fingerprint:
        raise IndexError_(
            f"index {folder} recorded rescoring model {rescorer.path} with fingerprint "
            f"{recorded.get('model_fingerprint')}, but that folder now holds fingerprint "
            f"{rescorer.fingerprint}; record it again with `semsearch index --rescore "
            f"{rescorer.path} --out {folder}`, or pass --no-rescore")


def same_model_note(manifest, rescorer: Rescorer) -> str | None:
    """A note when the rescoring model is the index's own first-stage model."""
    if rescorer.fingerprint in (manifest.model_fingerprint,
                                getattr(rescorer.encoder, "weights_fingerprint", None)):
        return ("the rescoring model is the index's own model: its cosine is the first stage's "
                "dense score again, so the second phase adds nothing new")
    return None


_loaded: dict[Path, tuple[list, Rescorer]] = {}
_loaded_lock = threading.Lock()


def shared_rescorer(model: str | Path) -> Rescorer:
    """One Rescorer per model folder for the process (its cache shared by every call), loaded
    again when the folder's weights or config change (their stat: no hashing per call)."""
    from semsearch.encoder import resolve_model

    folder = resolve_model(model).resolve()
    stamp = []
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        try:
            info = (folder / name).stat()
            stamp.append((info.st_ino, info.st_mtime_ns, info.st_size))
        except OSError:
            stamp.append(None)
    with _loaded_lock:
        found = _loaded.get(folder)
        if found is None or found[0] != stamp:
            found = _loaded[folder] = (stamp, load_rescorer(folder))
        return found[1]


def describe_model(model: str | Path) -> dict:
    """What an index records of its default rescoring model: {model_name, model_path,
    model_fingerprint}; a folder that is not a model raises ModelError (one line)."""
    from semsearch.encoder import resolve_model
    from semsearch.encoder.store import model_fingerprints, read_config

    folder = resolve_model(model).resolve()
    fingerprint = model_fingerprints(folder, read_config(folder))[0]
    return {"model_name": folder.name, "model_path": str(folder),
            "model_fingerprint": fingerprint}
