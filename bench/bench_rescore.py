"""Latency of the second phase: a query with rescoring, in process, one query a call, each arm
alone in a fresh process (arms alternated over --rounds), over a seeded sample of a dev
collection's real queries.

    python bench/bench_rescore.py --first models/static --rescore models/minilm \
        --collection beir/mlquestions:dev --collection beir/arguana:test \
        --arm int8 --arm fp32 --arm int8,window=128 --arm int8,depth=20 --queries 200 --json

An arm is comma-separated settings: `int8` or `fp32` (the rescoring path; default: what the
pair's calibration recorded), `window=N` (tokens of a candidate read), `depth=N` (default: the
pair's calibration), `mode=hybrid|lexical` (the first stage), `cache` (the rescorer's chunk
cache kept across the run: a server's warm state; default cold, every candidate encoded),
`model=DIR` (another rescoring model). `none` times the first stage alone.

Each query is timed twice: `search` on an opened index (what `serve` runs), split into the
first stage and the second phase, and `semsearch.query` (the Python API as a user calls it).
Indexes are built once, under runs/bench/rescore/, with `semsearch index`'s code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def parse_arm(text: str) -> dict:
    arm: dict = {"name": text}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key in ("int8", "fp32"):
            arm["precision"] = key
        elif key in ("cache", "none"):
            arm[key] = True
        elif key in ("window", "depth"):
            arm[key] = int(value)
        elif key in ("mode", "model"):
            arm[key] = value
        else:
            raise SystemExit(f"unknown arm setting {part!r}")
    return arm


def sample_queries(folder: Path, split: str, count: int, seed: int = 0) -> list[str]:
    from semsearch.eval.beir import read_beir

    collection = read_beir(folder, split)
    ids = sorted(q for q in collection.queries if q in collection.qrels)
    import random

    random.Random(seed).shuffle(ids)
    return [collection.queries[q] for q in ids[:count]]


def build_index(folder: Path, split: str, model: str, out: Path) -> Path:
    if (out / "manifest.json").is_file():
        return out
    from semsearch.embedder import load_embedder
    from semsearch.eval.beir import read_beir
    from semsearch.eval.rescore_eval import index_collection

    built = index_collection(read_beir(folder, split), load_embedder(model), out.parent / (
        out.name + ".build"))
    built.rename(out)
    return out


def worker(args) -> None:
    """One arm in this process: print one JSON line of its timings."""
    arm = json.loads(args.worker)
    from semsearch.embedder import load_embedder
    from semsearch.index import SearchIndex
    from semsearch.querying import SearchOptions, first_stage, rescore, rescore_settings
    from semsearch.rescoring import load_rescorer

    queries = json.loads(Path(args.queries_file).read_text())
    index = SearchIndex.open(Path(args.index))
    mode = arm.get("mode", "hybrid")
    embedder = None if mode == "lexical" else load_embedder(args.first, texts=1)
    rescorer = None
    if not arm.get("none"):
        rescorer = load_rescorer(arm.get("model", args.rescore),
                                 cache_size=100_000 if arm.get("cache") else 0,
                                 precision=arm.get("precision"))
    options = SearchOptions(mode=mode, rescore_depth=arm.get("depth"))
    import semsearch

    def once(text: str) -> tuple[float, float, float]:
        started = time.perf_counter()
        if rescorer is None:
            first_stage(index, embedder, [text], 10, options)
            return time.perf_counter() - started, 0.0, 0.0
        settings = rescore_settings(index, rescorer, mode, options)
        if "window" in arm:
            from dataclasses import replace

            settings = replace(settings, window=arm["window"])
        found = first_stage(index, embedder, [text], max(10, settings.depth), options,
                            fill=False)
        middle = time.perf_counter()
        rescore(index, rescorer, [text], found, settings, 10)
        ended = time.perf_counter()
        return ended - started, middle - started, ended - middle

    once(queries[0])  # first-call set-up (sessions, caches of the tokenizer)
    totals, firsts, seconds = [], [], []
    for text in queries:
        total, first, second = once(text)
        totals.append(total)
        firsts.append(first)
        seconds.append(second)
    api = []
    for text in queries[: args.api_queries]:
        started = time.perf_counter()
        semsearch.query(text, index=args.index, k=10, mode=mode,
                        rescore=rescorer if rescorer is not None else False,
                        rescore_depth=arm.get("depth"))
        api.append(time.perf_counter() - started)
    index.close()

    def pct(values, q):
        ordered = sorted(values)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    row = {"arm": arm["name"], "queries": len(queries),
           "p50_ms": 1000 * statistics.median(totals), "p99_ms": pct(totals, 0.99),
           "first_stage_p50_ms": 1000 * statistics.median(firsts),
           "second_phase_p50_ms": 1000 * statistics.median(seconds),
           "api_p50_ms": 1000 * statistics.median(api) if api else None,
           "precision": rescorer.precision if rescorer else None,
           "cache": rescorer.stats() if rescorer else None}
    if rescorer is not None:
        settings = rescore_settings(index, rescorer, mode, options)
        row["depth"] = settings.depth
        row["window"] = arm.get("window", settings.window or rescorer.full_window)
    print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", default="models/static", help="the first stage's model")
    parser.add_argument("--rescore", default="models/minilm", help="the rescoring model")
    parser.add_argument("--collection", action="append", default=None,
                        help="FOLDER:SPLIT under the data folder (repeatable)")
    parser.add_argument("--arm", action="append", default=None)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--api-queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--out", default="runs/bench/rescore")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--index", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--queries-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    collections = args.collection or ["beir/mlquestions:dev", "beir/arguana:test"]
    arms = [parse_arm(a) for a in (args.arm or ["none", "int8", "fp32"])]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    first_name = Path(args.first).name
    results = {"first": args.first, "rescore": args.rescore, "load": os.getloadavg(),
               "collections": {}}
    for spec in collections:
        folder, _, split = spec.partition(":")
        path = Path(args.data_dir) / folder
        name = Path(folder).name
        index = build_index(path, split, args.first, out / f"{name}-{first_name}")
        queries_file = out / f"{name}-queries-{args.queries}.json"
        queries_file.write_text(json.dumps(sample_queries(path, split, args.queries)))
        rows: dict[str, list[dict]] = {arm["name"]: [] for arm in arms}
        for _ in range(args.rounds):
            for arm in arms:
                command = [sys.executable, __file__, "--worker", json.dumps(arm),
                           "--index", str(index), "--queries-file", str(queries_file),
                           "--first", args.first, "--rescore", args.rescore,
                           "--api-queries", str(args.api_queries)]
                done = subprocess.run(command, check=True, capture_output=True, text=True)
                rows[arm["name"]].append(json.loads(done.stdout.strip().splitlines()[-1]))
        results["collections"][name] = rows
        print(f"\n{name} ({args.queries} queries, first stage {first_name}, rescoring "
              f"{Path(args.rescore).name}; median of {args.rounds} round(s))")
        print(f"{'arm':<28} {'depth':>5} {'window':>6} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'1st p50':>8} {'2nd p50':>8} {'API p50':>8} {'hit rate':>8}")
        for arm_name, runs in rows.items():
            def mid(key, runs=runs):
                values = [r[key] for r in runs if r.get(key) is not None]
                return statistics.median(values) if values else float("nan")
            hit = runs[-1]["cache"]["hit_rate"] if runs[-1]["cache"] else None
            print(f"{arm_name:<28} {runs[-1].get('depth', '-')!s:>5} "
                  f"{runs[-1].get('window', '-')!s:>6} {mid('p50_ms'):8.1f} {mid('p99_ms'):8.1f} "
                  f"{mid('first_stage_p50_ms'):8.1f} {mid('second_phase_p50_ms'):8.1f} "
                  f"{mid('api_p50_ms'):8.1f} {'-' if hit is None else f'{hit:.2f}':>8}")
    results["load_after"] = os.getloadavg()
    print(f"\nload average before / after: {results['load']} / {results['load_after']}")
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
