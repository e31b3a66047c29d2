"""Sweep FAISS factory strings, nprobe and re-rank depth on vectors cached by bench_index.py:
queries/s against exact search in the same run, and recall@10 of the held-out queries.

    python bench/probes/index_sweep.py --cache runs/wiki-vectors --factory IVF512,PQ128x4fs \
        --nprobe 64,85,128 --rerank 10,20
    python bench/probes/index_sweep.py --index runs/wiki704k/index-local-onnx \
        --factory IVF1024,PQ128x4fs --factory OPQ64,IVF1024,PQ64x4fs --nprobe 64,128

Faster to explore with than bench_index.py (one process, no tuning, no peak-memory
measurement); the re-rank and recall are semsearch's own (`rerank_exact` over the cached
vector file, `recall_at_k`). Several passes per setting, median reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import faiss
import numpy as np

from semsearch.index import VectorFile, recall_at_k, rerank_exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cache", type=Path,
                        help="a bench_index.py --cache folder (base.f32, queries.f32, meta.json)")
    source.add_argument("--index", type=Path,
                        help="an index folder: its re-rank vectors (vectors.f32) are the base, "
                        "and --query-texts, encoded with its model, the queries")
    parser.add_argument("--query-texts", default="beir/mlquestions",
                        help="with --index: a BEIR folder (under the data folder) or a text file "
                        "of queries (default: beir/mlquestions, real questions)")
    parser.add_argument("--queries", type=int, default=1000, help="with --index: how many")
    parser.add_argument("--factory", action="append", required=True,
                        help="a FAISS factory string (repeatable), built with inner product")
    parser.add_argument("--nprobe", default="", help="comma-separated, for IVF factories")
    parser.add_argument("--rerank", default="10,20", help="candidates re-ranked, as multiples of k")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--train", type=int, default=100_000, help="vectors to train on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)

    if args.index:
        stored, queries = index_vectors(args)
        dim = stored.dim
    else:
        dim = json.loads((args.cache / "meta.json").read_text())["dim"]
        stored = VectorFile(args.cache / "base.f32", dim)
        queries = np.fromfile(args.cache / "queries.f32", dtype=np.float32).reshape(-1, dim)
    base = stored.read(0, len(stored))
    k = args.k
    exact = faiss.IndexFlatIP(dim)
    exact.add(base)
    exact_s, (_, truth) = timed(lambda: exact.search(queries, k), args.repeats)
    rows = [{"factory": "Flat", "nprobe": None, "rerank": None, "queries_per_s":
             len(queries) / exact_s, "vs_exact": 1.0, f"recall@{k}": 1.0}]
    sample = base[np.random.default_rng(0).choice(len(base), min(args.train, len(base)),
                                                  replace=False)]
    for factory in args.factory:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        index.train(sample)
        index.add(base)
        ivf = faiss.try_extract_index_ivf(index)
        probes = [int(p) for p in args.nprobe.split(",") if p] if ivf is not None else [None]
        for nprobe in probes or [None]:
            if nprobe is not None:
                ivf.nprobe = nprobe
            for rerank in (int(r) for r in args.rerank.split(",")):
                def run(index=index, rerank=rerank):
                    _, candidates = index.search(queries, k * rerank)
                    return rerank_exact(queries, candidates, stored, k)[1]
                seconds, found = timed(run, args.repeats)
                rows.append({"factory": factory, "nprobe": nprobe, "rerank": rerank,
                             "queries_per_s": len(queries) / seconds,
                             "vs_exact": exact_s / seconds,
                             f"recall@{k}": recall_at_k(found, truth, k)})
                print(format_row(rows[-1], k), flush=True)
    if args.json:
        print(json.dumps({"vectors": len(base), "queries": len(queries), "dim": dim,
                          "threads": args.threads, "repeats": args.repeats, "rows": rows}))


def index_vectors(args) -> tuple[VectorFile, np.ndarray]:
    """An index folder's re-rank vectors and the query texts encoded with the folder's model."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for bench_query
    from bench_query import read_queries

    from semsearch.embedder import load_embedder, model_for_index
    from semsearch.index.folder import MANIFEST, VECTORS_FILE
    from semsearch.index.manifest import Manifest

    manifest = Manifest.read(args.index / MANIFEST)
    if not (args.index / VECTORS_FILE).is_file():
        sys.exit(f"{args.index} keeps no {VECTORS_FILE} (exact indexes keep none); use an IVF-PQ "
                 "index folder, or --cache")
    stored = VectorFile(args.index / VECTORS_FILE, manifest.dim)
    embedder = load_embedder(model_for_index(manifest, None))
    texts = read_queries(args.query_texts, args.queries)
    return stored, np.asarray(embedder.encode(texts, batch_size=64), dtype=np.float32)


def timed(work, repeats: int):
    """(median seconds of `repeats` runs after one warm-up, the last result)."""
    result = work()
    passes = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = work()
        passes.append(time.perf_counter() - started)
    return statistics.median(passes), result


def format_row(row: dict, k: int) -> str:
    return (f"| {row['factory']} | {row['nprobe'] or ''} | {row['rerank']} x k | "
            f"{row['queries_per_s']:.0f} | {row['vs_exact']:.1f}x | {row[f'recall@{k}']:.3f} |")


if __name__ == "__main__":
    main()
