"""Calibrating a model's hybrid fusion as the last step of every command that writes one
(`train`, `distill`, `adapt`, `import-model`): the data folder's shared retrieval collections
searched through the real index and query path, the fusion chosen as `evaluate` chooses it,
saved as the model's fusion.json, and the choice scored out of fold."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from semsearch.progress import Log, resolve_log

# SEMSEARCH_CALIBRATE=0 is --no-calibrate for every command at once (scripts, test suites)
CALIBRATE_ENV = "SEMSEARCH_CALIBRATE"


def calibrate_after(model: str | Path, data_dir: str | Path | None, skip: bool = False,
                    log: Log | None = None) -> dict[str, Any] | None:
    """Calibrate the model folder `model`; None when skipped or no collection is at hand (both
    said in one line)."""
    log = resolve_log(log)
    if skip or os.environ.get(CALIBRATE_ENV, "1").strip() == "0":
        why = "--no-calibrate" if skip else f"{CALIBRATE_ENV}=0"
        log(f"hybrid fusion not calibrated ({why}); `semsearch evaluate` calibrates it")
        return None
    from semsearch.data.sources import resolve_data_dir
    from semsearch.embedder import load_embedder
    from semsearch.eval.beir import read_beir
    from semsearch.eval.search_eval import evaluate_search, out_of_fold, shared_collections
    from semsearch.index.fusion import write_model_fusion

    sets = shared_collections(resolve_data_dir(data_dir))
    if not sets:
        log("hybrid fusion not calibrated: no retrieval collection in the data folder "
            "(SEMSEARCH_DATA); indexes use the uncalibrated default until `semsearch evaluate`")
        return None
    started = time.perf_counter()
    embedder = load_embedder(model)
    runs: list = []
    report, fusion = evaluate_search([read_beir(folder, split) for folder, split in sets],
                                     embedder, runs=runs)
    held_out = out_of_fold(runs)
    for name, figures in held_out.items():
        report["collections"][name]["hybrid_out_of_fold"] = figures
    write_model_fusion(embedder.path, embedder.fingerprint, fusion, report["collections"])
    seconds = time.perf_counter() - started
    figures = "; ".join(
        f"{name} hybrid {c['hybrid']['ndcg@10']:.3f} ({held_out[name]['hybrid_ndcg@10']:.3f} "
        f"out of fold), BM25 {c['bm25']['ndcg@10']:.3f}, dense {c['dense']['ndcg@10']:.3f}"
        for name, c in report["collections"].items())
    log(f"hybrid fusion calibrated in {seconds:.0f}s: {report['fusion']['setting']} ({figures})")
    return {"fusion": report["fusion"], "seconds": round(seconds, 1),
            "collections": {name: {"bm25": c["bm25"]["ndcg@10"], "dense": c["dense"]["ndcg@10"],
                                   "hybrid": c["hybrid"]["ndcg@10"],
                                   "hybrid_out_of_fold": held_out[name]["hybrid_ndcg@10"]}
                            for name, c in report["collections"].items()}}
