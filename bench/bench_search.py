"""BM25, dense and hybrid retrieval of one or more models on the shared BEIR collections, through
the real index and search path (semsearch.eval.search_eval), with the fusion sweep.

    python bench/bench_search.py --model models/quick --model models/minilm --json runs/search.json

Prints, per model and collection, nDCG@10 (recall@100) of BM25, dense, RRF and every weighted
fusion setting, marks the calibrated one, and the search path's timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semsearch.data.sources import resolve_data_dir  # noqa: E402
from semsearch.eval.beir import read_beir  # noqa: E402
from semsearch.eval.runner import limit_retrieval_set  # noqa: E402
from semsearch.eval.search_eval import evaluate_search, shared_collections  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model folder (repeat)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N queries of each set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--collections", default=None,
                        help="comma-separated names to run (default: every shared one)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--approximate", default=None, metavar="TYPE",
                        help="also index each collection with this --type (e.g. ivfpq) and report "
                        "how much of the exact fused top 10 its fused top 10 keeps")
    parser.add_argument("--backend", default=None, choices=["torch", "onnx"],
                        help="encode with this backend (default: semsearch's, onnx on a CPU)")
    args = parser.parse_args()

    from semsearch.embedder import load_embedder

    collections = []
    for folder, split in shared_collections(resolve_data_dir(args.data_dir)):
        if args.collections and folder.name not in args.collections.split(","):
            continue
        collection = read_beir(folder, split)
        if args.limit:
            collection = limit_retrieval_set(collection, args.limit)
        collections.append(collection)
    if not collections:
        sys.exit("no shared collections under the data folder (beir/mlquestions, beir/arguana)")
    results = {}
    for model in args.model:
        encoder = load_embedder(model, backend=args.backend)
        started = time.perf_counter()
        runs = []
        report, fusion = evaluate_search(collections, encoder, args.batch_size,
                                         log=lambda m: print(m, file=sys.stderr), runs=runs)
        report["seconds"] = round(time.perf_counter() - started, 1)
        if args.approximate:
            report["approximate"] = approximate_overlap(collections, runs, encoder, args, fusion)
            for name, row in report["approximate"].items():
                print(f"{name}: {args.approximate} ({row['factory']}) fused top-10 recall vs "
                      f"exact fused top 10: {row['fused_recall@10']:.3f}; dense top-10 recall "
                      f"{row['dense_recall@10']:.3f}; hybrid nDCG@10 {row['ndcg@10']:.3f}")
        results[model] = report
        print(f"\n{model}: calibrated fusion {report['fusion']['setting']} "
              f"({report['seconds']} s)")
        names = list(report["collections"])
        print(f"{'nDCG@10 (recall@100)':<22}" + "".join(f"{n:>22}" for n in names))
        for side in ("bm25", "dense", "hybrid"):
            print(f"{side:<22}" + "".join(
                f"{report['collections'][n][side]['ndcg@10']:>13.3f} ({report['collections'][n][side]['recall@100']:.3f})"
                for n in names))
        for setting in report["collections"][names[0]]["sweep_ndcg@10"]:
            mark = " *" if setting == report["fusion"]["setting"] else ""
            print(f"{'  ' + setting + mark:<22}" + "".join(
                f"{report['collections'][n]['sweep_ndcg@10'][setting]:>22.3f}" for n in names))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def approximate_overlap(collections, exact_runs, encoder, args, fusion) -> dict:
    """Recall of the approximate index's fused (and dense) top 10 against the exact index's."""
    from semsearch.eval.search_eval import hybrid_rankings, run_collection, score_rankings

    rows = {}
    for collection, exact in zip(collections, exact_runs, strict=True):
        approximate = run_collection(collection, encoder, args.batch_size,
                                     index_type=args.approximate)
        fused = [hybrid_rankings(run, fusion, 10) for run in (exact, approximate)]

        def overlap(a, b):
            return sum(len(set(a[q]) & set(b[q])) / max(1, len(a[q])) for q in a) / len(a)

        rows[collection.name] = {
            "factory": approximate.index["factory"],
            "fused_recall@10": overlap(*fused),
            "dense_recall@10": overlap(
                *[{q: [h.id for h in run.dense[q][:10]] for q in run.dense}
                  for run in (exact, approximate)]),
            "ndcg@10": score_rankings(fused[1], approximate.qrels)["ndcg@10"],
        }
    return rows


if __name__ == "__main__":
    main()
