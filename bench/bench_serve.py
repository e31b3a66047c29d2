"""A bounded load run against `semsearch serve` on localhost: throughput, latency, errors.

Starts `semsearch serve --index DIR` on a free 127.0.0.1 port (or uses --url, which must be a
localhost address), then C concurrent clients send a fixed number of GET /search requests
(queries cycled from a file, or built-in ones), stopping early at a time cap. Prints a table
and, with --json, one JSON line.

    python bench/bench_serve.py --index indexes/docs --requests 2000 --concurrency 16
    python bench/bench_serve.py --index indexes/docs --endpoint embeddings --workers 2
    python bench/bench_serve.py --index runs/mlq --rescore models/minilm --queries q.txt

With --rescore MODEL the server runs a second phase (MODEL re-scores each query's top
documents); the run reports the rescoring cache's size and hit rate from /health after it,
and with --compare the same run without the second phase (rescore=false on each request,
same server) beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.served import served  # noqa: E402 - after the path

QUERIES = [
    "machine learning and AI", "healthy breakfast ideas", "how do whales communicate",
    "football world cup", "ocean tides and the moon", "learning a new language",
    "electric cars and batteries", "the history of Rome", "quantum computing basics",
    "how to bake bread at home", "climate change and coral reefs", "jazz music improvisation",
]


def server_args(args) -> list[str]:
    """`semsearch serve`'s arguments for this run."""
    command = ["--workers", str(args.workers)]
    for flag, value in (("--index", args.index), ("--model", args.model),
                        ("--rescore", args.rescore)):
        if value:
            command += [flag, value]
    return command


def measure(server, args, queries: list[str]) -> tuple[dict, list[dict]]:
    """/health, then the load runs on `server` (a context giving (process, url)): rescoring on
    and off alternated with --compare, the cache's state after each."""
    with server as (_, url):
        health = httpx.get(url + "/health", timeout=10).json()
        runs = []
        sides = [True, False] if args.rescore and args.compare else [bool(args.rescore)]
        for _ in range(args.rounds if len(sides) > 1 else 1):
            for side in sides:
                args.second_phase = side
                run = asyncio.run(load(url, args, queries))
                run["second_phase"] = side
                if args.rescore:
                    run["rescore_cache"] = httpx.get(url + "/health",
                                                     timeout=10).json()["rescore"]["cache"]
                runs.append(run)
        return health, runs


async def load(url: str, args, queries: list[str]) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + args.time_cap
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < args.requests and time.perf_counter() < deadline:
            number = issued
            issued += 1
            text = queries[number % len(queries)]
            started = time.perf_counter()
            try:
                if args.endpoint == "search":
                    params = {"q": text, "k": args.k}
                    if args.rescore and not args.second_phase:
                        params["rescore"] = "false"
                    answer = await client.get("/search", params=params)
                else:
                    answer = await client.post("/v1/embeddings",
                                               json={"input": [text] * args.batch})
                ok = answer.status_code == 200
                kind = f"HTTP {answer.status_code}"
            except httpx.HTTPError as error:
                ok, kind = False, type(error).__name__
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors[kind] = errors.get(kind, 0) + 1

    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=30) as client:
        await client_loop_warmup(client, args)
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(args.concurrency)))
        seconds = time.perf_counter() - started
    done = np.array(latencies) * 1000
    return {
        "endpoint": args.endpoint,
        "requests": len(latencies),
        "concurrency": args.concurrency,
        "workers": args.workers,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(done, 50)), 1) if len(done) else None,
        "p99_ms": round(float(np.percentile(done, 99)), 1) if len(done) else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "stopped_by_time_cap": len(latencies) < args.requests,
    }


async def client_loop_warmup(client: httpx.AsyncClient, args) -> None:
    """A few requests first, so first-call costs stay out of the figures."""
    for text in QUERIES[:4]:
        if args.endpoint == "search":
            await client.get("/search", params={"q": text, "k": args.k})
        else:
            await client.post("/v1/embeddings", json={"input": [text]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", help="index folder to serve (default: the latest)")
    parser.add_argument("--model", help="model folder (default: the index's)")
    parser.add_argument("--url", help="an already running server on localhost instead")
    parser.add_argument("--api-key", default=os.environ.get("SEMSEARCH_API_KEY"))
    parser.add_argument("--endpoint", choices=["search", "embeddings"], default="search")
    parser.add_argument("--requests", type=int, default=2000, help="requests in all")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--time-cap", type=float, default=60.0, help="stop after this many s")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="texts per embeddings request")
    parser.add_argument("--queries", help="file of queries, one a line (default: built-in)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument("--rescore", metavar="MODEL", help="serve with this second phase")
    parser.add_argument("--compare", action="store_true",
                        help="with --rescore: also run with rescore=false, alternated")
    parser.add_argument("--rounds", type=int, default=1, help="with --compare: on/off rounds")
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.time_cap <= 0:
        parser.error("--requests, --concurrency and --time-cap must be positive")
    queries = QUERIES
    if args.queries:
        with open(args.queries, encoding="utf-8") as handle:
            queries = [line.strip() for line in handle if line.strip()] or QUERIES
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("load runs go to localhost only; give a 127.0.0.1 or localhost --url")
    env = {key: value for key, value in os.environ.items() if key != "SEMSEARCH_API_KEY"}
    server = (nullcontext((None, args.url.rstrip("/"))) if args.url
              else served(server_args(args), env=env))
    try:
        health, runs = measure(server, args, queries)
    except RuntimeError as error:  # the server exited or never answered
        sys.exit(str(error))
    result = runs[0]
    if len(runs) > 1:
        for run in runs[1:]:
            side = "on" if run["second_phase"] else "off"
            print(f"second phase {side}: {run['requests_per_s']} req/s, p50 {run['p50_ms']} ms, "
                  f"p99 {run['p99_ms']} ms, {run['errors']} errors")
        result = {**runs[0], "runs": runs}
    if args.rescore:
        cache = runs[-1]["rescore_cache"]
        print(f"rescoring cache after the run: {cache['entries']} chunk vectors, hit rate "
              f"{cache['hit_rate']} ({cache['hits']} hits, {cache['misses']} misses)")
    result["model"] = health["model"]["name"]
    result["index_documents"] = (health.get("index") or {}).get("documents")
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(f"{'endpoint':<12}{'workers':>8}{'clients':>8}{'requests':>9}{'req/s':>9}"
          f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    print(f"{result['endpoint']:<12}{result['workers']:>8}{result['concurrency']:>8}"
          f"{result['requests']:>9}{result['requests_per_s']:>9}{result['p50_ms']:>9}"
          f"{result['p99_ms']:>9}{result['errors']:>8}")
    print(f"model {result['model']}, {result['index_documents']} documents, {result['seconds']} s"
          + (" (stopped by the time cap)" if result["stopped_by_time_cap"] else ""))
    if args.json:
        print(json.dumps(result))
    if result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
