"""Index benchmark: build time, peak memory, queries/s and recall@10 against exact search, for
each index type, on the Wikipedia sentences (embedded with a model) or on synthetic vectors.

Each index type is built and searched in its own subprocess, so its peak RSS (ru_maxrss) is its
own: the vectors are read from disk in blocks, never held whole by the worker. Recall is
k-recall@k of the default search settings (the recipe's nprobe / efSearch / re-ranking)
against exact inner-product search over the same vectors.

    python bench/bench_index.py --random-vectors 384 --limit 100000
    python bench/bench_index.py --model models/quick --limit 200000 --json
    python bench/bench_index.py --random-vectors 384 --types flat,ivf --threads 1
    python bench/bench_index.py --model models/quick --cache runs/wiki-vectors --json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_TYPES = "flat,hnsw,ivf,ivfpq,auto"


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: VmHWM, which starts afresh at exec.

    ru_maxrss would not do for the workers: Linux carries it over fork and exec, so every worker
    reported the parent's peak (the embedding step) instead of its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("SEMSEARCH_DATA", str(REPO.parent / "shared" / "data")),
        help="shared data folder (wikipedia/sentences.txt.gz inside)",
    )
    parser.add_argument("--model", default=None, help="model folder to embed the sentences with")
    parser.add_argument(
        "--random-vectors",
        type=int,
        default=None,
        metavar="DIM",
        help="skip the model: seeded clustered unit vectors of this dimension",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="index the first N sentences (default: all 704,910 less the queries)",
    )
    parser.add_argument("--queries", type=int, default=1000, help="queries (held-out sentences)")
    parser.add_argument(
        "--types", default=DEFAULT_TYPES, help=f"comma-separated (default {DEFAULT_TYPES})"
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--repeats", type=int, default=5,
        help="timed passes over the queries per type; queries/s is their median (default 5)",
    )
    parser.add_argument("--threads", type=int, default=None, help="FAISS threads (default: all)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--json", action="store_true", help="print the results as one JSON document"
    )
    parser.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="keep the embedded vectors here and reuse them on the next run with the same "
        "source, count and queries (embedding 700K sentences takes the better part of an hour)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, Path(args.workdir), args.k, args.threads, args.repeats)))
        return
    if args.model is None and args.random_vectors is None:
        parser.error("give --model DIR (embed the sentences) or --random-vectors DIM")

    with tempfile.TemporaryDirectory(prefix="bench-index-") as workdir:
        workdir = Path(workdir)
        source, dim, count = cached_vectors(args, workdir)
        log(f"exact search for {args.queries} queries over {count:,} vectors ...")
        exact_ids = exact_top_k(workdir, count, dim, args.queries, args.k)
        np.save(workdir / "truth.npy", exact_ids)
        results = []
        for index_type in args.types.split(","):
            log(f"{index_type}: building ...")
            command = [
                sys.executable,
                __file__,
                "--worker",
                index_type,
                "--workdir",
                str(workdir),
                "--k",
                str(args.k),
                "--repeats",
                str(args.repeats),
            ]
            if args.threads:
                command += ["--threads", str(args.threads)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                log(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            log(format_row(result))
    report = {
        "vectors": source,
        "count": count,
        "dim": dim,
        "queries": args.queries,
        "k": args.k,
        "threads": args.threads or os.cpu_count(),
        "repeats": args.repeats,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))


def cached_vectors(args, workdir: Path) -> tuple[str, int, int]:
    """prepare_vectors, or hard links to the --cache copy made by an identical earlier run."""
    if not args.cache:
        return prepare_vectors(args, workdir)
    cache = Path(args.cache)
    key = {"model": str(Path(args.model).resolve()) if args.model else None,
           "random_vectors": args.random_vectors, "limit": args.limit, "queries": args.queries}
    meta = cache / "meta.json"
    if meta.exists() and json.loads(meta.read_text())["key"] == key:
        saved = json.loads(meta.read_text())
        log(f"reusing the vectors in {cache}")
    else:
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("meta.json", "base.f32", "queries.f32"):  # an interrupted earlier try
            (cache / name).unlink(missing_ok=True)
        source, dim, count = prepare_vectors(args, cache)
        saved = {"key": key, "source": source, "dim": dim, "count": count}
        meta.write_text(json.dumps(saved))
    for name in ("base.f32", "queries.f32"):
        os.symlink((cache / name).resolve(), workdir / name)
    return saved["source"], saved["dim"], saved["count"]


def prepare_vectors(args, workdir: Path) -> tuple[str, int, int]:
    """Write base.f32 (count, dim) and queries.f32 (queries, dim) into workdir."""
    from semsearch.index import VectorFile

    queries = args.queries
    if args.random_vectors:
        count = args.limit or 704_910 - queries
        dim = args.random_vectors
        log(f"generating {count + queries:,} clustered unit vectors of dimension {dim} ...")
        base, query_file = (
            VectorFile(workdir / "base.f32", dim),
            VectorFile(workdir / "queries.f32", dim),
        )
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((1000, dim)).astype(np.float32)
        for start in range(0, count + queries, 100_000):
            n = min(100_000, count + queries - start)
            block = centres[rng.integers(0, len(centres), n)] + rng.standard_normal(
                (n, dim), dtype=np.float32
            )
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            split = max(0, min(n, count - start))
            if split:
                base.append(block[:split])
            if split < n:
                query_file.append(block[split:])
        return f"synthetic: 1000 gaussian clusters, dim {dim}", dim, count

    from semsearch.encoder import SentenceEncoder

    path = Path(args.data) / "wikipedia" / "sentences.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        sentences = [line.strip() for line in handle if line.strip()]
    count = min(args.limit or len(sentences) - queries, len(sentences) - queries)
    encoder = SentenceEncoder.load(args.model)
    dim = encoder.dim
    log(f"embedding {count + queries:,} Wikipedia sentences with {encoder.path} ...")
    started = time.perf_counter()
    for name, texts in (("base.f32", sentences[:count]), ("queries.f32", sentences[-queries:])):
        target = VectorFile(workdir / name, dim)
        for start in range(0, len(texts), 50_000):
            chunk = texts[start : start + 50_000]
            order = np.argsort([len(text) for text in chunk], kind="stable")
            vectors = encoder.encode([chunk[i] for i in order], batch_size=args.batch_size)
            in_order = np.empty_like(vectors)
            in_order[order] = vectors
            target.append(in_order)
    log(f"embedded in {time.perf_counter() - started:.0f}s")
    return f"wikipedia sentences, {encoder.path.name} (dim {dim})", dim, count


def exact_top_k(workdir: Path, count: int, dim: int, queries: int, k: int) -> np.ndarray:
    import faiss

    from semsearch.index import VectorFile

    index = faiss.IndexFlatIP(dim)
    base = VectorFile(workdir / "base.f32", dim)
    for start in range(0, count, 100_000):
        index.add(base.read(start, min(count, start + 100_000)))
    query_vectors = VectorFile(workdir / "queries.f32", dim).read(0, queries)
    _, ids = index.search(query_vectors, k)
    (workdir / "shape.json").write_text(
        json.dumps({"count": count, "dim": dim, "queries": queries})
    )
    return ids


def run_worker(index_type: str, workdir: Path, k: int, threads: int | None,
               repeats: int = 5) -> dict:
    """Build one index type from base.f32 and time it; runs in its own process."""
    import faiss

    from semsearch.index import (
        VectorFile,
        build_index,
        choose_recipe,
        estimate_memory,
        recall_at_k,
        search_with_recipe,
    )
    from semsearch.index.tuning import tune_recipe

    if threads:
        faiss.omp_set_num_threads(threads)
    shape = json.loads((workdir / "shape.json").read_text())
    count, dim = shape["count"], shape["dim"]
    base = VectorFile(workdir / "base.f32", dim)
    queries = VectorFile(workdir / "queries.f32", dim).read(0, shape["queries"])
    truth = np.load(workdir / "truth.npy")
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    recipe = choose_recipe(index_type, count, dim)
    index, trained_on = build_index(recipe, base, count)
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    recipe, tuning = tune_recipe(index, recipe, base, count)  # as `semsearch index` does
    tune_seconds = time.perf_counter() - started
    search_with_recipe(index, recipe, base, queries[:10], k)  # warm up
    passes = []  # one pass over 1,000 queries is under a second: median of several
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        _, found = search_with_recipe(index, recipe, base, queries, k)
        passes.append(time.perf_counter() - started)
    search_seconds = statistics.median(passes)
    return {
        "type": index_type,
        "factory": recipe.factory,
        "nprobe": recipe.nprobe,
        "ef_search": recipe.ef_search,
        "rerank": recipe.rerank,
        "trained_on": trained_on,
        "build_s": round(build_seconds, 2),
        "tune_s": round(tune_seconds, 2),
        "tuned_recall_on_corpus": tuning.recall if tuning else None,
        "peak_rss_mib": peak_rss_mib(),
        "start_rss_mib": rss_before,
        "index_mib": round(len(faiss.serialize_index(index)) / 2**20, 1),
        "estimated_mib": round(estimate_memory(recipe, count, dim) / 2**20, 1),
        "queries_per_s": round(len(queries) / search_seconds, 1),
        "queries_per_s_passes": [round(len(queries) / t, 1) for t in passes],
        f"recall@{k}": round(recall_at_k(found, truth, k), 4),
    }


def format_row(result: dict, exact_rate: float | None = None) -> str:
    recall = next(value for key, value in result.items() if key.startswith("recall@"))
    settings = ", ".join(
        f"{name}={result[name]}" for name in ("nprobe", "ef_search", "rerank") if result.get(name)
    )
    ratio = f"{result['queries_per_s'] / exact_rate:.1f}x" if exact_rate else ""
    return (
        f"| {result['type']:<6} | {result['factory']:<16} | {settings:<21} | {result['build_s']:>8.1f} "
        f"| {result['peak_rss_mib']:>9.0f} | {result['index_mib']:>9.0f} | {result['queries_per_s']:>9.0f} "
        f"| {ratio:>7} | {recall:>9.3f} |"
    )


def format_table(report: dict) -> str:
    """One row per type; `vs exact` divides by the median rate of the flat rows in the run."""
    exact = [r["queries_per_s"] for r in report["results"] if r["factory"] == "Flat"]
    exact_rate = statistics.median(exact) if exact else None
    head = (
        f"{report['vectors']}: {report['count']:,} vectors, {report['queries']} queries, "
        f"k={report['k']}, {report['threads']} threads, queries/s the median of "
        f"{report.get('repeats', 1)} passes\n\n"
        f"| type   | factory          | search settings       |  build s | RSS MiB   | index MiB | queries/s | vs exact | recall@{report['k']} |\n"
        "|--------|------------------|-----------------------|---------:|----------:|----------:|----------:|---------:|----------:|"
    )
    return "\n".join([head] + [format_row(result, exact_rate) for result in report["results"]])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
