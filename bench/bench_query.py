"""Query latency: `semsearch query` wall time from the shell, and in-process p50/p90 for the
numpy forward pass (what `query` uses on the CPU) beside the torch one.

    semsearch index corpora/docs.txt --model models/quick
    python bench/bench_query.py --runs 5 --repeats 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=None, help="index folder (default: the latest)")
    parser.add_argument("--query", default="Machine learning and AI")
    parser.add_argument("-k", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="shell runs of semsearch query")
    parser.add_argument("--repeats", type=int, default=50, help="in-process queries per path")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    command = [sys.executable, "-m", "semsearch.cli", "query", args.query, "-k", str(args.k)]
    if args.index:
        command += ["--index", args.index]
    walls = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)

    from semsearch.index import SearchIndex, resolve_index_dir
    from semsearch.search import load_embedder, model_for_index, search

    index = SearchIndex.open(resolve_index_dir(args.index))
    model = model_for_index(index.manifest, None)
    rows = {"shell_wall_s_median": statistics.median(walls), "shell_wall_s": walls}
    for label, embedder in (("numpy", load_embedder(model, None, texts=1)),
                            ("torch", load_embedder(model, None))):
        latencies = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            search(index, embedder, [args.query], args.k)
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        rows[f"{label}_p50_ms"] = 1000 * statistics.median(latencies)
        rows[f"{label}_p90_ms"] = 1000 * latencies[int(0.9 * (len(latencies) - 1))]
    index.close()
    if args.json:
        print(json.dumps(rows))
        return
    print(f"| shell wall s (median of {args.runs}) | numpy p50 ms | numpy p90 ms | torch p50 ms "
          "| torch p90 ms |")
    print("|---|---|---|---|---|")
    print(f"| {rows['shell_wall_s_median']:.2f} | {rows['numpy_p50_ms']:.1f} | "
          f"{rows['numpy_p90_ms']:.1f} | {rows['torch_p50_ms']:.1f} | {rows['torch_p90_ms']:.1f} |")


if __name__ == "__main__":
    main()
