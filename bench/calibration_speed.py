"""Calibration: what it takes, and how far it can be cut without changing its choice.

For each model: every judged query of the shared collections (MLQuestions dev, ArguAna test)
searched through the real index and query path with fp32 vectors, as `semsearch evaluate`
runs them, and the fusion calibrated on all of them (the reference); then

1. calibrations on seeded samples of N queries a collection (`sample_queries`, as
   `calibrate_after` draws them), from the same searched lists: for each N the setting seed 0
   chooses (the one `calibrate_after` uses), how many of the seeds choose the reference
   setting, and the most hybrid nDCG@10 any seed's choice loses on a full collection;
2. with `--arm QUERIES:CORPUS:ENCODER` (repeatable; e.g. all:all:fastest, 500:0.3:fastest,
   budget:budget:fastest, what `calibrate_after` runs), the calibration measured that way end to
   end (`calibration.measure`: the sampled sets indexed and searched, ENCODER fastest = int8
   where it agrees, or fp32), timed, and its choice against the reference.

    python bench/calibration_speed.py models/quick models/static models/minilm \
        --sizes 100,200,300,500 --seeds 20 --arm 300:all:fastest --json runs/calibration.json

The reference's searched lists are cached under runs/bench/calibration/ (a file a model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semsearch.data.sources import resolve_data_dir
from semsearch.eval.beir import read_beir
from semsearch.eval.search_eval import (
    FUSION_GRID,
    CollectionRun,
    SweepScores,
    calibrate,
    describe,
    evaluate_search,
    sample_queries,
    shared_collections,
)
from semsearch.index.search_index import Hit

CACHE = Path("runs/bench/calibration")


def searched_runs(model: str) -> tuple[list[CollectionRun], float]:
    """Every judged query of each shared collection searched both ways (cached), and the
    seconds the search took when it was not cached."""
    from semsearch.embedder import load_embedder

    embedder = load_embedder(model)  # as `semsearch evaluate` loads it
    path = CACHE / f"{Path(model).name}-{embedder.fingerprint}.json"
    if path.is_file():
        return [_run_from(name, data) for name, data in json.loads(path.read_text()).items()], 0.0
    sets = [read_beir(folder, split) for folder, split in shared_collections(resolve_data_dir(None))]
    runs: list[CollectionRun] = []
    started = time.perf_counter()
    evaluate_search(sets, embedder, runs=runs, log=print)
    seconds = time.perf_counter() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({run.name: {
        "qrels": run.qrels, "corpus": run.corpus,
        "dense": {q: [[h.id, h.score] for h in hits] for q, hits in run.dense.items()},
        "lexical": {q: [[h.id, h.score] for h in hits] for q, hits in run.lexical.items()},
    } for run in runs}))
    return runs, seconds


def _run_from(name: str, data: dict) -> CollectionRun:
    def hits(rows):
        return [Hit(rank=i + 1, score=score, id=doc, chunk=0, chunks=1, text="", metadata={})
                for i, (doc, score) in enumerate(rows)]

    return CollectionRun(name, data["qrels"], {q: hits(r) for q, r in data["dense"].items()},
                         {q: hits(r) for q, r in data["lexical"].items()}, data["corpus"], {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--sizes", default="100,200,300,400,500")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--arm", action="append", default=[], metavar="QUERIES:CORPUS:ENCODER")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = []
    for model in args.models:
        runs, seconds = searched_runs(model)
        sweeps = [SweepScores(run) for run in runs]
        full, sweep = calibrate(sweeps)
        best = describe(full)
        row = {"model": model, "full": best,
               "search_seconds": round(seconds, 1),
               "full_ndcg": {name: round(values, 4) for name, values in sweep[best].items()},
               "sizes": {}}
        for size in sizes:
            chosen = []
            for seed in range(args.seeds):
                queries = [list(sample_queries(_as_set(run), size, seed).qrels) for run in runs]
                chosen.append(describe(calibrate(sweeps, queries)[0]))
            loss = max(sweep[best][name] - sweep[setting][name]
                       for setting in chosen for name in sweep[best])
            row["sizes"][size] = {"seed0": chosen[0], "same": sum(c == best for c in chosen),
                                  "worst_loss": round(loss, 4), "chosen": chosen}
        row["arms"] = {arm: run_arm(model, arm, sweep, best) for arm in args.arm}
        results.append(row)
    print(f"{'model':22} {'full sets':13} " + " ".join(
        f"{'N=' + str(size):>20}" for size in sizes))
    for row in results:
        cells = [f"{c['seed0']:>12} {c['same']:>2}/{args.seeds} {c['worst_loss']:.3f}"
                 for c in row["sizes"].values()]
        print(f"{Path(row['model']).name:22} {row['full']:13} "
              + " ".join(f"{cell:>20}" for cell in cells))
    print("\neach cell: the setting seed 0 chooses, seeds choosing the full sets' setting, the "
          "worst hybrid nDCG@10 lost on a full collection by any seed's choice")
    if args.arm:
        print(f"\n{'model':22} {'arm':22} {'seconds':>8} {'chose':>13} {'reference':>13} "
              f"{'loss':>6}  path")
        for row in results:
            for arm, found in row["arms"].items():
                print(f"{Path(row['model']).name:22} {arm:22} {found['seconds']:8.1f} "
                      f"{found['setting']:>13} {row['full']:>13} {found['loss']:6.3f}  "
                      f"{found['encoder']}")
    print(f"grid: {', '.join(describe(f) for f in FUSION_GRID)}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"sizes": sizes, "seeds": args.seeds,
                                                    "results": results}, indent=2) + "\n")
    return 0


def run_arm(model: str, arm: str, sweep: dict, best: str) -> dict:
    """Calibration measured as `arm` says (QUERIES:CORPUS:ENCODER), timed, and the hybrid
    nDCG@10 its choice loses on a full collection against the reference's choice."""
    from semsearch.calibration import measure

    queries, corpus, encoder = arm.split(":")
    started = time.perf_counter()
    report, fusion, _, _, path = measure(
        model, shared_collections(resolve_data_dir(None)),
        _arm_value(queries, int), _arm_value(corpus, float), encoder, log=print)
    seconds = time.perf_counter() - started
    setting = describe(fusion)
    loss = max(sweep[best][name] - sweep[setting][name] for name in sweep[best])
    return {"seconds": round(seconds, 1), "setting": setting, "encoder": path,
            "loss": round(loss, 4), "sample": report["sample"],
            "collections": {name: {"bm25": c["bm25"]["ndcg@10"], "dense": c["dense"]["ndcg@10"],
                                   "hybrid": c["hybrid"]["ndcg@10"]}
                            for name, c in report["collections"].items()}}


def _arm_value(text: str, kind):
    """all -> None, budget -> "budget", else the number."""
    return None if text == "all" else text if text == "budget" else kind(text)


def _as_set(run: CollectionRun):
    from semsearch.eval.retrieval import RetrievalSet

    return RetrievalSet(run.name, {q: q for q in run.qrels}, {}, run.qrels)


if __name__ == "__main__":
    raise SystemExit(main())
