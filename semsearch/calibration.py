"""Calibrating a model's hybrid fusion as the last step of every function that writes one
(`train`, `distill`, `adapt`, `import_model`): the data folder's shared retrieval collections
searched through the real index and query path, the fusion chosen as `evaluate` chooses it,
saved as the model's fusion.json, and the choice scored out of fold.

Made fast where it can be without changing the choice (docs/results.md, Search): each
collection's corpus is encoded once, by the fastest path whose vectors agree with the model's
fp32 ones (ONNX Runtime int8 where it does, as for a teacher's vectors), a seeded sample of
QUERIES judged queries of each collection is searched (enough to choose the weight the full sets
choose, measured on quick, a static model and all-MiniLM-L6-v2), and the sweep over the fusion
settings runs on the cached scores of each side (eval/search_eval.py, `SweepScores`).
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
# judged queries of each collection the calibration searches (None: all of them)
QUERIES: int | None = None
# the share of each corpus it indexes, beside every document judged for those queries (None:
# all of it)
CORPUS: float | None = None
SEED = 0  # the sample's seed: the same queries for every model
# how the corpora are encoded: "fastest" (the model's fastest path that agrees with fp32) or
# "fp32" (as `load_embedder` loads the model)
ENCODER = "fp32"


@dataclass
class CalibrationReport:
    """The fusion chosen, what each collection measured with it (BM25, dense and hybrid
    nDCG@10, hybrid out of fold, queries searched), the encoding path and the seconds taken."""

    fusion: dict[str, Any]
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"fusion": self.fusion, "seconds": round(self.seconds, 1), "encoder": self.encoder,
                "collections": self.collections}


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
    report, fusion, held_out, embedder, path = measure(model, sets, QUERIES, CORPUS, ENCODER,
                                                        log=log, progress=progress)
    # the fingerprint of weights, tokenizer and config: the same on every path of the model
    write_model_fusion(embedder.path, embedder.fingerprint, fusion, report["collections"])
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
                "queries": c["queries"]}
         for name, c in report["collections"].items()},
        path, seconds)


def measure(model: str | Path, sets, queries: int | None = QUERIES,
            corpus: float | None = None, encoder: str = "fastest", log: Log | None = None,
            progress: bool = False):
    """Calibration's measurement, without writing anything: the (folder, split) collections
    `sets` read, `queries` judged queries of each drawn and `corpus` of each corpus kept, searched
    with the model's fastest agreeing path (`encoder="fp32"`: as `load_embedder` gives it), the
    fusion chosen and scored out of fold. Returns (report section, fusion, out-of-fold figures,
    the encoder, its path's description)."""
    log = resolve_log(log)
    from semsearch.eval.beir import read_beir
    from semsearch.eval.search_eval import (
        evaluate_search,
        out_of_fold,
        sample_corpus,
        sample_queries,
    )

    collections = [sample_corpus(sample_queries(read_beir(folder, split), queries, SEED),
                                 corpus, SEED) for folder, split in sets]
    log("calibrating the hybrid fusion on " + ", ".join(
        f"{c.name} ({len(c.corpus):,} documents, {len(c.qrels):,} queries)" for c in collections))
    if encoder == "fastest":
        embedder, path = calibration_encoder(model, collections, log)
    else:
        from semsearch.embedder import load_embedder

        embedder = load_embedder(model)
        path = getattr(embedder, "backend", "torch")
    runs: list = []
    sweeps: list = []
    report, fusion = evaluate_search(collections, embedder, runs=runs, sweeps=sweeps, log=log,
                                     progress=progress)
    held_out = out_of_fold(runs, sweeps)
    for name, figures in held_out.items():
        report["collections"][name]["hybrid_out_of_fold"] = figures
    return report, fusion, held_out, embedder, path


def calibration_encoder(model: str | Path, collections, log: Log):
    """(encoder, description) that calibration encodes with: the model's fastest path whose
    vectors agree with fp32's (`fastest_agreeing`), judged on texts of every collection's
    corpus; the index it builds is temporary, so only the choice of fusion has to be faithful."""
    from semsearch.encoder.onnx_encoder import fastest_agreeing

    sample = [text for c in collections for text in _spread(list(c.corpus.values()),
                                                            256 // len(collections))]
    return fastest_agreeing(model, sample, log, "calibration encodes on")


def _spread(items: list, count: int) -> list:
    """`count` items spread evenly over the list (its first ones are not typical)."""
    step = max(1, len(items) // max(1, count))
    return items[::step][:count]
