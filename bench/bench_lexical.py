"""The lexical (BM25) side of an index at scale: build time, peak memory, size on disk and query
latency on the Wikipedia sentences of the data folder, through semsearch's own build_lexical and
LexicalIndex (the code `semsearch index` and `semsearch query` run).

    python bench/bench_lexical.py --limit 704910 --queries 1000 --json runs/lexical.json

The last `--queries` sentences are held out as queries (their first 8 words, a short query);
the others are indexed as chunks with row id = line number.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semsearch.data.sources import resolve_data_dir  # noqa: E402
from semsearch.index.lexical import LEXICAL_DIR, LexicalConfig, LexicalIndex  # noqa: E402
from semsearch.index.lexical_terms import build_lexical  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=704_910, help="sentences to read")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100, help="hits a query (fusion depth)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    path = resolve_data_dir(args.data_dir) / "wikipedia" / "sentences.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        sentences = [line.strip() for _, line in zip(range(args.limit), lines)]
    corpus, held_out = sentences[: -args.queries], sentences[-args.queries :]
    queries = [" ".join(s.split()[:8]) for s in held_out]
    del sentences
    before = peak_rss_mib()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        build_lexical(Path(folder), enumerate(corpus))
        build_s = time.perf_counter() - started
        build_peak = peak_rss_mib()
        size = sum(p.stat().st_size for p in (Path(folder) / LEXICAL_DIR).iterdir()) / 2**20
        started = time.perf_counter()
        index = LexicalIndex(Path(folder), LexicalConfig())
        load_ms = 1000 * (time.perf_counter() - started)
        times = []
        for query in queries:
            started = time.perf_counter()
            index.search(query, args.k)
            times.append(1000 * (time.perf_counter() - started))
    result = {
        "chunks": len(corpus),
        "build_s": round(build_s, 1),
        "peak_rss_mib_before_build": round(before),
        "peak_rss_mib_build": round(build_peak),
        "size_mib": round(size, 1),
        "load_ms": round(load_ms, 1),
        "query_p50_ms": round(float(np.percentile(times, 50)), 2),
        "query_p90_ms": round(float(np.percentile(times, 90)), 2),
        "queries": len(queries),
        "k": args.k,
    }
    print("| chunks | build s | peak RSS MiB (before build) | size MiB | load ms | query p50 / p90 ms |")
    print("|--:|--:|--:|--:|--:|--:|")
    print(f"| {result['chunks']:,} | {result['build_s']} | {result['peak_rss_mib_build']} "
          f"({result['peak_rss_mib_before_build']}) | {result['size_mib']} | {result['load_ms']} | "
          f"{result['query_p50_ms']} / {result['query_p90_ms']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
