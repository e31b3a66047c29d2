"""Calibrating a model's hybrid fusion as the last step of every function that writes one
(`train`, `distill`, `adapt`, `import_model`): the data folder's shared retrieval collections
searched through the real index and query path, the fusion chosen as `evaluate` chooses it,
saved as the model's fusion.json, and the choice scored out of fold.

Made fast where it can be without changing the choice (docs/results.md, Search): each
collection's corpus is encoded once, by the fastest path whose vectors agree with the model's
fp32 ones (ONNX Runtime int8 where it does, as for a teacher's vectors); the sweep over the
fusion settings runs on the cached scores of each side (eval/search_eval.py, `SweepScores`);
and a model too slow to encode both collections within BUDGET seconds is calibrated on a
seeded sample of them (`plan`), which was measured to choose the setting the whole collections
choose.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semsearch.progress import Log, resolve_log

# SEMSEARCH_CALIBRATE=0 is --no-calibrate for every command at once (scripts, test suites)
CALIBRATE_ENV = "SEMSEARCH_CALIBRATE"
# seconds of encoding calibration spends at most, as estimated from a timed sample: within it
# both collections are searched whole (every judged query, the whole corpus), so its figures are
# `evaluate`'s; above it (all-MiniLM-L6-v2 on 2 CPU cores: about 4.5 minutes whole) it searches
# SAMPLE_QUERIES judged queries of each over a seeded share of each corpus that fits, every
# document judged for them kept. A smaller corpus is an easier one, so those figures read higher
# than `evaluate`'s; the setting chosen was measured to be the whole collections' (docs/results.md,
# Search)
BUDGET = 60.0
# SEMSEARCH_CALIBRATION_BUDGET=SECONDS sets it for every command at once (a slower machine, or
# a model that must be calibrated on the whole collections: a large number)
BUDGET_ENV = "SEMSEARCH_CALIBRATION_BUDGET"
SAMPLE_QUERIES = 500
SEED = 0  # the samples' seed: the same queries and documents for every model
# how the corpora are encoded: "fastest" (the model's fastest path that agrees with fp32) or
# "fp32" (as `load_embedder` loads the model)
ENCODER = "fastest"


@dataclass
class CalibrationReport:
    """The fusion chosen, what each collection measured with it (BM25, dense and hybrid
    nDCG@10, hybrid out of fold, queries and documents searched), the encoding path, the sample
    and the seconds taken."""

    fusion: dict[str, Any]
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: str = ""
    seconds: float = 0.0
    # the sample searched: {"queries": per collection or None (all), "corpus": share or None}
    sample: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"fusion": self.fusion, "seconds": round(self.seconds, 1), "encoder": self.encoder,
                "sample": self.sample, "collections": self.collections}


def calibrate_after(model: str | Path, data_dir: str | Path | None, skip: bool = False,
                    log: Log | None = None, progress: bool = False) -> CalibrationReport | None:
    """Calibrate the model folder `model`; None when skipped or no collection is at hand (both
    said in one line)."""
    log = resolve_log(log)
    if skip or os.environ.get(CALIBRATE_ENV, "1").strip() == "0":
        why = "--no-calibrate" if skip else f"{CALIBRATE_ENV}=0"
        log(f"hybrid fusion not calibrated ({why}); `semsearch evaluate` calibrates it")
        return None
    from semsearch.data.sources import resolve_data_dir
    from semsearch.eval.search_eval import shared_collections
    from semsearch.index.fusion import write_model_fusion

    sets = shared_collections(resolve_data_dir(data_dir))
    if not sets:
        log("hybrid fusion not calibrated: no retrieval collection in the data folder "
            "(SEMSEARCH_DATA); indexes use the uncalibrated default until `semsearch evaluate`")
        return None
    started = time.perf_counter()
    report, fusion, held_out, embedder, path = measure(model, sets, "budget", "budget",
                                                        ENCODER, log=log, progress=progress)
    # the fingerprint of weights, tokenizer and config: the same on every path of the model
    write_model_fusion(embedder.path, embedder.fingerprint, fusion,
                       {name: c | {"sample": report["sample"]}
                        for name, c in report["collections"].items()})
    seconds = time.perf_counter() - started
    figures = "; ".join(
        f"{name} hybrid {c['hybrid']['ndcg@10']:.3f} ({held_out[name]['hybrid_ndcg@10']:.3f} "
        f"out of fold), BM25 {c['bm25']['ndcg@10']:.3f}, dense {c['dense']['ndcg@10']:.3f}"
        for name, c in report["collections"].items())
    log(f"hybrid fusion calibrated in {seconds:.0f}s: {report['fusion']['setting']} ({figures})")
    return CalibrationReport(
        report["fusion"],
        {name: {"bm25": c["bm25"]["ndcg@10"], "dense": c["dense"]["ndcg@10"],
                "hybrid": c["hybrid"]["ndcg@10"],
                "hybrid_out_of_fold": held_out[name]["hybrid_ndcg@10"],
                "queries": c["queries"], "corpus": c["corpus"]}
         for name, c in report["collections"].items()},
        path, seconds, report["sample"])


def measure(model: str | Path, sets, queries: int | str | None = "budget",
            corpus: float | str | None = "budget", encoder: str = "fastest",
            log: Log | None = None, progress: bool = False):
    """Calibration's measurement, without writing anything: the (folder, split) collections
    `sets` read, `queries` judged queries of each drawn (None: all) and a share `corpus` of each
    corpus kept (None: all; "budget" for both: as BUDGET allows), searched with the model's
    fastest agreeing path (`encoder="fp32"`: as `load_embedder` gives it), the fusion chosen and
    scored out of fold. Returns (report section, fusion, out-of-fold figures, the encoder, its
    path's description); the report section says the sample under "sample"."""
    log = resolve_log(log)
    from semsearch.eval.beir import read_beir
    from semsearch.eval.search_eval import (
        evaluate_search,
        out_of_fold,
        sample_corpus,
        sample_queries,
    )

    whole = [read_beir(folder, split) for folder, split in sets]
    if encoder == "fastest":
        embedder, path = calibration_encoder(model, whole, log)
    else:
        from semsearch.embedder import load_embedder

        embedder = load_embedder(model)
        path = getattr(embedder, "backend", "torch")
    if "budget" in (queries, corpus):
        planned_queries, planned_corpus = plan(embedder, whole, log)
        queries = planned_queries if queries == "budget" else queries
        corpus = planned_corpus if corpus == "budget" else corpus
    collections = [sample_corpus(sample_queries(c, queries, SEED), corpus, SEED) for c in whole]
    log("calibrating the hybrid fusion on " + ", ".join(
        f"{c.name} ({len(c.corpus):,} documents, {len(c.qrels):,} queries)" for c in collections))
    runs: list = []
    sweeps: list = []
    report, fusion = evaluate_search(collections, embedder, runs=runs, sweeps=sweeps, log=log,
                                     progress=progress)
    held_out = out_of_fold(runs, sweeps)
    for name, figures in held_out.items():
        report["collections"][name]["hybrid_out_of_fold"] = figures
    report["sample"] = {"queries": queries, "corpus": corpus, "seed": SEED}
    return report, fusion, held_out, embedder, path


def plan(embedder, collections, log: Log) -> tuple[int | None, float | None]:
    """(queries, corpus share) that keep calibration's encoding within BUDGET seconds: (None,
    None), the whole collections, when a timed sample says they fit; else SAMPLE_QUERIES and the
    tenths of each corpus that fit (at least a tenth). The sample: 64 documents spread over each
    corpus, cut into the chunks `index` cuts, encoded once."""
    import math

    from semsearch.corpora import ChunkConfig, chunk_documents

    started = time.perf_counter()
    texts = 0
    for collection in collections:
        documents = _spread(list(collection.corpus.values()), 64)
        chunks = chunk_documents(documents, embedder.count_tokens,
                                 ChunkConfig(max_tokens=embedder.max_seq_len))
        embedder.encode([chunk for found in chunks for chunk in found])
        texts += len(documents)
    per_document = (time.perf_counter() - started) / max(1, texts)
    documents = sum(len(c.corpus) for c in collections)
    queries = sum(len(c.qrels) for c in collections)
    whole = per_document * (documents + queries)  # a query costs at most what a document does
    budget = budget_seconds(log)
    if whole <= budget:
        return None, None
    share = max(0.1, math.floor(10 * (budget - per_document * SAMPLE_QUERIES * len(collections))
                                / (per_document * documents)) / 10)
    log(f"calibration: the whole collections would take about {whole:.0f}s to encode here; it "
        f"searches {SAMPLE_QUERIES} queries of each over {share:.0%} of each corpus (every "
        "document judged for them kept), so its figures read higher than `semsearch "
        "evaluate`'s (a smaller corpus is easier); the setting it chooses is the whole "
        "collections' (measured: docs/results.md, Search)")
    return SAMPLE_QUERIES, share


def budget_seconds(log: Log | None = None) -> float:
    """BUDGET, or $SEMSEARCH_CALIBRATION_BUDGET where it is set to a number of seconds >= 0 (any
    other value is said in a line and BUDGET used: it is read only after a model is written,
    too late to refuse the command)."""
    value = os.environ.get(BUDGET_ENV, "").strip()
    if not value:
        return BUDGET
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if seconds >= 0 and seconds != float("inf"):
        return seconds
    resolve_log(log)(f"{BUDGET_ENV}={value!r} is not a number of seconds >= 0; calibration uses "
                     f"its default budget, {BUDGET:.0f}s")
    return BUDGET


def calibration_encoder(model: str | Path, collections, log: Log):
    """(encoder, description) that calibration encodes with: the model's fastest path whose
    vectors agree with fp32's (`fastest_agreeing`), judged on texts of every collection's
    corpus; the index it builds is temporary, so only the choice of fusion has to be faithful."""
    from semsearch.encoder.onnx_encoder import fastest_agreeing

    sample = [text for c in collections
              for text in _spread(list(c.corpus.values()), 256 // len(collections))]
    return fastest_agreeing(model, sample, log, "calibration encodes on")


def _spread(items: list, count: int) -> list:
    """`count` items spread evenly over the list (its first ones are not typical)."""
    step = max(1, len(items) // max(1, count))
    return items[::step][:count]
