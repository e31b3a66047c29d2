"""Query latency: `semsearch query` wall time from the shell, and in-process p50/p90 of each
search mode (dense, lexical, hybrid) with the encoder `query` uses, over real query texts.

    semsearch index corpora/docs.txt --model models/quick
    python bench/bench_query.py --runs 5 --repeats 50
    python bench/bench_query.py --index runs/wiki704k --queries beir/mlquestions --json

The in-process figures time `semsearch.querying.search` for one query at a time (the query's
encoding, the FAISS search and, in hybrid mode, BM25 and the fusion), cycling through the query
texts so that no cache sees the same text twice in a row; hybrid/dense is the ratio of their
p50s in the same run. The shell figure is the whole `semsearch query` process (start, imports,
model and index load, one query), the median of `--runs`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=None, help="index folder (default: the latest)")
    parser.add_argument("--query", default="Machine learning and AI",
                        help="the shell runs' query (and the only in-process one without --queries)")
    parser.add_argument("--queries", default=None,
                        help="in-process query texts: a BEIR folder (its queries.jsonl), relative "
                        "to the data folder or absolute, or a text file of one query a line")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5, help="shell runs of semsearch query, per mode")
    parser.add_argument("--repeats", type=int, default=50, help="in-process queries per mode")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rescore", metavar="MODEL", default=None,
                        help="also time each mode with this second phase (rescore+MODE rows; "
                        "the in-process rows warm the rescorer's cache as a server would)")
    parser.add_argument("--rescore-depth", type=int, default=None)
    args = parser.parse_args()

    from semsearch.embedder import load_embedder, model_for_index
    from semsearch.index import SearchIndex, resolve_index_dir
    from semsearch.querying import SearchOptions, search

    folder = resolve_index_dir(args.index)
    index = SearchIndex.open(folder)
    modes = ["dense", "lexical", "hybrid"] if index.lexical is not None else ["dense"]
    texts = read_queries(args.queries, args.repeats) if args.queries else [args.query]
    rows: dict = {"index": str(folder), "vectors": index.index.ntotal, "k": args.k,
                  "query_texts": len(texts), "modes": {}}

    arms = [(mode, None) for mode in modes]
    if args.rescore:
        arms += [(mode, args.rescore) for mode in modes if mode != "dense"]
    for mode, second in arms:
        name = mode if second is None else f"rescore+{mode}"
        command = [sys.executable, "-m", "semsearch.cli", "query", args.query, "-k", str(args.k),
                   "--index", str(folder), "--mode", mode]
        command += (["--rescore", second] if second else ["--no-rescore"])
        if second and args.rescore_depth:
            command += ["--rescore-depth", str(args.rescore_depth)]
        walls = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            walls.append(time.perf_counter() - started)
        rows["modes"][name] = {"shell_wall_s_median": statistics.median(walls),
                               "shell_wall_s": walls}

    model = model_for_index(index.manifest, None)
    embedder = load_embedder(model, None, texts=1)
    rows["embedder"] = type(embedder).__name__
    search(index, embedder, texts[:1], args.k, mode=modes[0])  # warm: first-call set-up
    rescorer = None
    if args.rescore:
        from semsearch.rescoring import load_rescorer

        rescorer = load_rescorer(args.rescore)
    for mode, second in arms:
        name = mode if second is None else f"rescore+{mode}"
        latencies = []
        for i in range(args.repeats):
            started = time.perf_counter()
            search(index, embedder, [texts[i % len(texts)]], args.k, mode=mode,
                   rescorer=rescorer if second else None,
                   options=SearchOptions(rescore=bool(second),
                                         rescore_depth=args.rescore_depth if second else None))
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        rows["modes"][name]["p50_ms"] = 1000 * statistics.median(latencies)
        rows["modes"][name]["p90_ms"] = 1000 * latencies[int(0.9 * (len(latencies) - 1))]
    if rescorer is not None:
        rows["rescore_cache"] = rescorer.stats()
    index.close()
    if "hybrid" in rows["modes"]:
        rows["hybrid_over_dense_p50"] = (rows["modes"]["hybrid"]["p50_ms"]
                                         / rows["modes"]["dense"]["p50_ms"])
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{rows['vectors']:,} vectors in {folder}, k {args.k}, {rows['embedder']}, "
          f"{len(texts)} query texts, {args.repeats} in-process queries and {args.runs} shell "
          "runs per mode")
    print("| mode | shell wall s (median) | in-process p50 ms | p90 ms |")
    print("|---|---|---|---|")
    for mode, row in rows["modes"].items():
        print(f"| {mode} | {row['shell_wall_s_median']:.2f} | {row['p50_ms']:.1f} | "
              f"{row['p90_ms']:.1f} |")
    if "hybrid_over_dense_p50" in rows:
        print(f"hybrid / dense p50: {rows['hybrid_over_dense_p50']:.2f}x")


def read_queries(spec: str, limit: int) -> list[str]:
    """Up to `limit` query texts from a BEIR folder's queries.jsonl or a one-per-line file."""
    from semsearch.data.sources import resolve_data_dir

    path = Path(spec)
    if not path.exists():
        path = resolve_data_dir(None) / spec
    if path.is_dir():
        texts = [json.loads(line)["text"] for line in
                 (path / "queries.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    if not texts:
        sys.exit(f"no query texts in {spec}")
    return texts[:limit]


if __name__ == "__main__":
    main()
