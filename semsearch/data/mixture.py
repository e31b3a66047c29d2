"""A training mixture: which sources, which splits, how many pairs — one config value.

A source spec is `name[:split+split][@max_pairs]`, e.g. `snli:dev+test`, `flickr30k@40000`,
`file:my_pairs.tsv`. Building the mixture dedupes pairs, lets a caption set drop images that an
earlier caption set already gave (Flickr8k's images are nearly all in Flickr30k), and drops
every pair containing an STS-B dev or test sentence, so evaluation stays clean.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semsearch.data import sources
from semsearch.data.negatives import mine_negatives
from semsearch.data.records import ScoredPair, TrainingPair
from semsearch.errors import ConfigError, DataError

CAPTION_SOURCES = ("flickr30k", "flickr8k", "coco")
SELF_PAIR_SOURCES = ("wikipedia",)  # anchor == positive by design (dropout as augmentation)
FLICKR30K_SPLITS = ("train", "val", "test_2016")

MIXTURES: dict[str, tuple[str, ...]] = {
    # the reference recipe: SNLI train (entailment + contradiction negatives) and STS-B train
    "reference": ("snli:train", "stsb:train"),
    # every human-annotated positive in ../shared/data (no SNLI train there)
    # (SNLI test stays out: it is the retrieval evaluation set)
    "local": ("snli:dev", "stsb:train", "flickr30k", "flickr8k", "coco", "quora", "mrpc"),
    # for search: fewer captions, and query -> passage pairs mined from Wikipedia articles (title
    # -> lead, title -> paragraph, sentence -> rest of its paragraph, paragraph -> next); the
    # issue-14 calibration's caption caps with its title + ICT pairs and two more kinds
    "search": ("snli:dev", "stsb:train", "flickr30k@5000", "coco@3000", "quora", "mrpc",
               "wikititle", "wikisection@5000", "wikiict@12000", "wikinext@3000"),
    # fast to load; for tests and smoke runs
    "small": ("stsb:train", "snli:dev"),
}


@dataclass(frozen=True)
class MixtureConfig:
    # source specs (see module docstring) or a single named mixture from MIXTURES
    sources: tuple[str, ...] = MIXTURES["local"]
    # cap on the number of training pairs after dedup (0 = all); sampled uniformly, seeded
    max_pairs: int = 100_000
    # STS-B train pairs at or above this gold score (0..5) count as positives
    stsb_min_score: float = 4.0
    # caption pairs taken per image (5 captions give up to 10 distinct pairs)
    caption_pairs_per_image: int = 5
    # pairs held out for validation loss
    val_pairs: int = 1000
    # passage sources (wikititle, wikiict, ..., corpus:PATH) cut their document side to this
    # many characters at a word boundary (0 = whole paragraphs); ~4.5 characters a token here
    passage_chars: int = 600
    # mine a hard negative for each pair without one: "" (none) or "bm25" (see negatives.py)
    hard_negatives: str = ""
    # ... skipping candidates scoring above (1 - this) x the positive's score (false negatives)
    negative_margin: float = 0.05


@dataclass(frozen=True)
class SourceSpec:
    name: str
    splits: tuple[str, ...]
    limit: int  # 0 = no cap


def parse_source(spec: str) -> SourceSpec:
    """Parse `name[:split+split][@N]`.

    >>> parse_source("snli:dev+test@5000")
    SourceSpec(name='snli', splits=('dev', 'test'), limit=5000)
    """
    if spec.startswith(("file:", "corpus:")):
        body, _, limit = spec.rpartition("@") if re.search(r"@\d+$", spec) else (spec, "", "0")
        return SourceSpec(body, ("all",), int(limit or 0))
    match = re.fullmatch(r"([a-z0-9]+)(?::([a-z0-9_+]+))?(?:@(\d+))?", spec.strip())
    if not match or match.group(1) not in sources.LAYOUT:
        raise ConfigError(f"unknown data source {spec!r}; use name[:split+split][@N] with name in "
                          f"{', '.join(sources.LAYOUT)}, file:PATH (pairs) or corpus:PATH (documents), or a mixture name "
                          f"({', '.join(MIXTURES)})")
    name, splits, limit = match.group(1), match.group(2), match.group(3)
    split_tuple = tuple(splits.split("+")) if splits else sources.DEFAULT_SPLITS[name]
    valid = set(sources.LAYOUT[name]) | (set(FLICKR30K_SPLITS) if name == "flickr30k" else set())
    for split in split_tuple:
        if split not in valid:
            raise ConfigError(f"{name} has no split {split!r}; choose from {', '.join(sorted(valid))}")
        if name == "stsb" and split == "test":
            raise ConfigError("stsb:test is the evaluation set and is never trained on")
    return SourceSpec(name, split_tuple, int(limit or 0))


def expand_sources(specs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Replace a mixture name by its sources; validate every spec."""
    out: list[str] = []
    for spec in specs:
        out.extend(MIXTURES.get(spec, (spec,)))
    for spec in out:
        parse_source(spec)
    return tuple(out)


def normalise(text: str) -> str:
    """Case, spacing and punctuation folded away, for dedup and the contamination check.

    >>> normalise("A man,  playing  a Flute.")
    'a man playing a flute'
    """
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def build_mixture(
    config: MixtureConfig, data_dir: str | Path | None, seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[list[TrainingPair], dict]:
    """Load, filter and sample the training pairs; returns them and a per-source report (and
    says each source's pairs and seconds through `log`: mining Wikipedia takes a while)."""
    import time

    folder = sources.resolve_data_dir(data_dir)
    rng = np.random.default_rng(seed)
    blocked = _evaluation_sentences(folder)
    seen_pairs: set[tuple[str, str]] = set()
    seen_captions: set[str] = set()
    pairs: list[TrainingPair] = []
    report: dict[str, dict] = {}
    for spec in map(parse_source, expand_sources(config.sources)):
        started = time.perf_counter()
        raw = sources.load_training_pairs(spec.name, spec.splits, folder, config.stsb_min_score,
                                          config.caption_pairs_per_image, config.passage_chars)
        kept, dropped_eval, dropped_dup = _filter(raw, spec.name, blocked, seen_pairs, seen_captions)
        if spec.limit and len(kept) > spec.limit:
            kept = _sample(kept, spec.limit, rng)
        label = spec.name if spec.name.startswith(("file:", "corpus:")) else f"{spec.name}:{'+'.join(spec.splits)}"
        report[label] = {"loaded": len(raw), "kept": len(kept), "dropped_eval_overlap": dropped_eval,
                         "dropped_duplicates": dropped_dup}
        pairs.extend(kept)
        log(f"training data: {label} {len(kept):,} pairs ({time.perf_counter() - started:.0f}s)")
    if not pairs:
        raise DataError("the training mixture is empty; check --data-dir and the data sources")
    if config.max_pairs and len(pairs) > config.max_pairs:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), config.max_pairs, replace=False))]
    if config.hard_negatives:
        without = sum(pair.negative is None for pair in pairs)
        pairs, mined = mine_negatives(pairs, config.hard_negatives, config.negative_margin)
        report[f"negatives:{config.hard_negatives}"] = {"pairs_without": without, "mined": mined,
                                                        "margin": config.negative_margin}
    return pairs, report


def scored_training_pairs(data_dir: str | Path | None,
                          exclude: set[str] = frozenset()) -> list[ScoredPair]:
    """STS-B train with its graded scores (for the STS-B training stage), without any pair
    holding an STS-B dev/test sentence or a normalised sentence in `exclude` (validation)."""
    folder = sources.resolve_data_dir(data_dir)
    blocked = _evaluation_sentences(folder) | set(exclude)
    return [row for row in sources.load_stsb("train", folder)
            if normalise(row.sentence1) not in blocked and normalise(row.sentence2) not in blocked]


def _filter(raw, name, blocked, seen_pairs, seen_captions):
    """Drop pairs with an STS-B dev/test sentence, duplicates, and caption images seen before."""
    kept, dropped_eval, dropped_dup = [], 0, 0
    skip_groups: set[str] = set()
    if name in CAPTION_SOURCES:
        by_group: dict[str, list[str]] = {}
        for pair in raw:
            by_group.setdefault(pair.group, []).extend((normalise(pair.anchor), normalise(pair.positive)))
        skip_groups = {g for g, texts in by_group.items() if any(t in seen_captions for t in texts)}
        for g, texts in by_group.items():
            if g not in skip_groups:
                seen_captions.update(texts)
    for pair in raw:
        texts = [normalise(t) for t in (pair.anchor, pair.positive, pair.negative) if t]
        if any(t in blocked for t in texts):
            dropped_eval += 1
            continue
        key = tuple(sorted(texts[:2]))
        self_pair = name in SELF_PAIR_SOURCES
        if pair.group in skip_groups or key in seen_pairs or (texts[0] == texts[1] and not self_pair):
            dropped_dup += 1
            continue
        seen_pairs.add(key)
        kept.append(pair)
    return kept, dropped_eval, dropped_dup


def _sample(pairs: list[TrainingPair], limit: int, rng: np.random.Generator):
    """`limit` pairs drawn uniformly without replacement, kept in their original order."""
    order = rng.permutation(len(pairs))[:limit]
    return [pairs[i] for i in sorted(order)]


def _evaluation_sentences(folder: Path | None) -> set[str]:
    """Normalised STS-B dev and test sentences: never to be trained on."""
    blocked: set[str] = set()
    for split in ("dev", "test"):
        try:
            rows = sources.load_stsb(split, folder)
        except DataError as error:
            if folder is None and not sources.hub_reachable():
                raise  # no data at all: say so once, now
            warnings.warn(f"cannot check the mixture against STS-B {split} ({error})", stacklevel=3)
            continue
        for row in rows:
            blocked.update((normalise(row.sentence1), normalise(row.sentence2)))
    return blocked
