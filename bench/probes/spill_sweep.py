"""Spilled IVF lists (SOAR) against one list a vector, timed against exact search in one run.

Each vector is stored in its nearest IVF list and, with `--assign soar`, in a second list too:
the one SOAR picks (Sun et al. 2023, "SOAR: improved indexing for approximate nearest neighbor
search", ScaNN's spilled assignment), minimising ||r'||^2 + lambda * <r_hat, r'>^2 over the next
nearest centroids, where r is the residual to the first list and r' the one to the candidate. A
query that misses a neighbour's first list often probes its second. Both variants are the auto
recipe's 4-bit fast-scan PQ codes with the same exact re-rank semsearch does; a spilled index
returns some candidates twice, so duplicates are dropped before the re-rank.

    python bench/probes/spill_sweep.py --index runs/wiki704k/index-local-onnx --lists 1024,2048 \\
        --nprobe 64,96,128,160,192 --json

Base: the index folder's re-rank vectors; queries: real questions encoded with its model (as
bench/probes/index_sweep.py does). A measurement for issue 17's search target, not the index's code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_sweep import index_vectors, timed  # noqa: E402

from semsearch.index import recall_at_k, rerank_exact  # noqa: E402

CANDIDATE_LISTS = 8  # the second list is chosen among the nearest this many
CHUNK = 65_536  # rows a step when computing assignments (bounds memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="an IVF-PQ index folder")
    parser.add_argument("--query-texts", default="beir/mlquestions")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--lists", default="1024,2048", help="IVF list counts, comma-separated")
    parser.add_argument("--nprobe", default="64,96,128,160,192,224",
                        help="lists probed, comma-separated, for 1,024 lists (scaled with the "
                        "list count)")
    parser.add_argument("--assign", default="one,soar", help="one, soar, or both")
    parser.add_argument("--pq", type=int, default=128, help="4-bit sub-quantisers")
    parser.add_argument("--rerank", type=int, default=20, help="candidates, as multiples of k")
    parser.add_argument("--soar-lambda", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)

    stored, queries = index_vectors(args)
    base = stored.read(0, len(stored))
    n, dim = base.shape
    exact = faiss.IndexFlatIP(dim)
    exact.add(base)
    exact_s, (_, truth) = timed(lambda: exact.search(queries, args.k), args.repeats)
    exact.reset()  # frees its copy of the vectors
    rows = [{"lists": None, "assign": "exact", "nprobe": None, "queries_per_s":
             len(queries) / exact_s, "vs_exact": 1.0, "recall@10": 1.0, "codes_scanned": n}]
    print(f"exact: {len(queries) / exact_s:.0f} queries/s", flush=True)
    rng = np.random.default_rng(0)
    for nlist in (int(x) for x in args.lists.split(",")):
        trained = faiss.index_factory(dim, f"IVF{nlist},PQ{args.pq}x4", faiss.METRIC_INNER_PRODUCT)
        trained.train(base[rng.choice(n, min(n, nlist * 64), replace=False)])
        first, second = assignments(trained, base, args.soar_lambda)
        for assign in args.assign.split(","):
            index, sizes, _source = build(trained, base, first,
                                          second if assign == "soar" else None)
            for nprobe in (int(p) * nlist // 1024 for p in args.nprobe.split(",")):
                index.nprobe = nprobe

                def run(index=index):
                    _, candidates = index.search(queries, args.k * args.rerank)
                    return rerank_exact(queries, unique_rows(candidates), stored, args.k)[1]

                seconds, found = timed(run, args.repeats)
                _, probed = index.quantizer.search(queries, nprobe)
                rows.append({"lists": nlist, "assign": assign, "nprobe": nprobe,
                             "queries_per_s": len(queries) / seconds,
                             "vs_exact": exact_s / seconds,
                             "recall@10": recall_at_k(found, truth, args.k),
                             "codes_scanned": float(sizes[probed].sum(1).mean())})
                print(format_row(rows[-1]), flush=True)
    if args.json:
        print(json.dumps({"vectors": n, "queries": len(queries), "dim": dim, "pq": args.pq,
                          "rerank": args.rerank, "threads": args.threads, "rows": rows}))


def assignments(trained, base: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's nearest list and its SOAR-spilled second list."""
    ivf = faiss.extract_index_ivf(trained)
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    first = np.empty(len(base), dtype=np.int64)
    second = np.empty(len(base), dtype=np.int64)
    for start in range(0, len(base), CHUNK):
        x = base[start : start + CHUNK]
        _, near = ivf.quantizer.search(x, CANDIDATE_LISTS)
        residual = x - centroids[near[:, 0]]
        unit = residual / np.maximum(np.linalg.norm(residual, axis=1, keepdims=True), 1e-12)
        loss = np.empty((len(x), CANDIDATE_LISTS - 1), dtype=np.float32)
        for j in range(1, CANDIDATE_LISTS):
            other = x - centroids[near[:, j]]
            loss[:, j - 1] = (other * other).sum(1) + lam * (unit * other).sum(1) ** 2
        first[start : start + len(x)] = near[:, 0]
        second[start : start + len(x)] = near[np.arange(len(x)), 1 + loss.argmin(1)]
    return first, second


def build(trained, base: np.ndarray, first: np.ndarray, second: np.ndarray | None):
    """A fast-scan IVF-PQ index holding each row in `first` (and `second`) lists, by row id;
    the number of codes in each list; and the IVF-PQ index it was converted from."""
    index = faiss.clone_index(trained)  # an IndexIVFPQ: the factory string has no prefix
    ids = np.arange(len(base), dtype=np.int64)
    for lists in (first, second) if second is not None else (first,):
        lists = np.ascontiguousarray(lists)
        index.add_core(len(base), faiss.swig_ptr(base), faiss.swig_ptr(ids),
                       faiss.swig_ptr(lists), None)
    sizes = np.array([index.invlists.list_size(i) for i in range(index.nlist)])
    # the fast-scan copy shares `index`'s quantiser: the caller keeps both alive
    return faiss.IndexIVFPQFastScan(index), sizes, index


def unique_rows(candidates: np.ndarray) -> np.ndarray:
    """Each query's candidate ids with repeats replaced by -1 (a spilled vector is found in
    both its lists); order does not matter to the exact re-rank that follows.

    >>> unique_rows(np.array([[3, 1, 3, -1]])).tolist()
    [[-1, 1, 3, -1]]
    """
    ordered = np.sort(candidates, axis=1)
    repeat = np.zeros_like(ordered, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    ordered[repeat] = -1
    return ordered


def format_row(row: dict) -> str:
    return (f"| IVF{row['lists']} | {row['assign']} | {row['nprobe']} | "
            f"{row['codes_scanned']:,.0f} | {row['queries_per_s']:.0f} | "
            f"{row['vs_exact']:.1f}x | {row['recall@10']:.3f} |")


if __name__ == "__main__":
    main()
