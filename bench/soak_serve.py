"""A soak of `semsearch serve` on localhost while writers change the served index.

Builds an index of the corpus, serves it (a fixed worker count) on a free 127.0.0.1 port, and
runs C concurrent clients sending GET /search for a fixed time. With writers, after a quiet
first stretch, every few seconds `semsearch index --append` adds a document with a word no
other document has, or `semsearch remove` deletes one added before; once each write has
finished, a search for that word must find the added document (or no longer find the removed
one). Runs the same soak without writers beside it (`--sides both`, the default), each side on
its own fresh index and server, and reports for each: requests, failures (must be 0), p50 / p99
latency before and during writes, the server's RSS and open file descriptors after the first
minute (or the first third of a shorter run) and at the end, writes done and writes checked.

    python bench/soak_serve.py --model models/tiny                       # 10 min a side
    python bench/soak_serve.py --model models/tiny --duration 150 --json # 2.5 min a side
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.served import served  # noqa: E402 - after the path

QUERIES = [
    "machine learning and AI", "healthy breakfast ideas", "how do whales communicate",
    "football world cup", "ocean tides and the moon", "learning a new language",
    "electric cars and batteries", "the history of Rome", "quantum computing basics",
    "how to bake bread at home", "climate change and coral reefs", "jazz music improvisation",
]


def semsearch(*args: str, env: dict) -> None:
    """Run the semsearch CLI to the end; exit with its error if it fails."""
    done = subprocess.run([sys.executable, "-m", "semsearch", *map(str, args)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"semsearch {' '.join(map(str, args[:2]))} failed: "
                           f"{done.stderr.strip()[-400:]}")


def process_stats(pid: int) -> dict:
    """The server's resident memory (MiB) and open file descriptors, from /proc."""
    rss = None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = round(int(line.split()[1]) / 1024, 1)
    return {"rss_mib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


class Writer(threading.Thread):
    """Every `every` seconds: append a document holding a word of its own, or remove one
    appended earlier; after each write, check what a search now finds."""

    def __init__(self, url: str, folder: Path, model: str, every: float, env: dict,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.folder, self.model, self.every, self.env = url, folder, model, every, env
        self.stop = stop
        self.appended = self.removed = self.checked = 0
        self.misses: list[str] = []
        self.started_at: float | None = None
        self.error: str | None = None

    def found(self, client: httpx.Client, word: str, doc_id: str) -> bool:
        answer = client.get("/search", params={"q": word, "k": 5, "mode": "lexical"})
        answer.raise_for_status()
        return any(hit["id"] == doc_id for hit in answer.json()["hits"])

    def run(self) -> None:
        live: list[tuple[str, str]] = []
        number = 0
        self.started_at = time.perf_counter()
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.wait(self.every):
                try:
                    if len(live) >= 3 and number % 3 == 2:  # every third write removes
                        doc_id, word = live.pop(0)
                        semsearch("remove", doc_id, "--index", self.folder, env=self.env)
                        self.removed += 1
                        if self.found(client, word, doc_id):
                            self.misses.append(f"{doc_id} still found after its removal")
                    else:
                        word = f"soakword{number}x{random.randrange(10**6)}"
                        doc_id = f"soak-{number}"
                        extra = self.folder.parent / f"{doc_id}.jsonl"
                        extra.write_text(json.dumps({"id": doc_id, "text": f"{word} appended "
                                                     f"while serving, number {number}"}) + "\n")
                        semsearch("index", extra, "--append", "--out", self.folder,
                                  "--model", self.model, env=self.env)
                        self.appended += 1
                        if not self.found(client, word, doc_id):
                            self.misses.append(f"{doc_id} not found after its append")
                        live.append((doc_id, word))
                    self.checked += 1
                    number += 1
                except Exception as error:  # noqa: BLE001 - reported, the soak goes on
                    self.error = f"{type(error).__name__}: {error}"
                    return


async def clients(url: str, concurrency: int, seconds: float, k: int) -> list[tuple]:
    """(start offset s, latency s, ok, what) of every request of `concurrency` clients."""
    records: list[tuple] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def loop(client: httpx.AsyncClient, number: int) -> None:
        turn = number
        while time.perf_counter() < deadline:
            text = QUERIES[turn % len(QUERIES)]
            turn += concurrency
            sent = time.perf_counter()
            try:
                answer = await client.get("/search", params={"q": text, "k": k})
                ok, what = answer.status_code == 200, f"HTTP {answer.status_code}"
            except httpx.HTTPError as error:
                ok, what = False, type(error).__name__
            records.append((sent - started, time.perf_counter() - sent, ok, what))

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(loop(client, n) for n in range(concurrency)))
    return records


def soak(model: str, corpus: Path, seconds: float, concurrency: int = 16, every: float = 3.0,
         writers: bool = True, workers: int = 1, k: int = 5) -> dict:
    """One side of the soak on a fresh index and server; the figures as a dict."""
    env = {key: value for key, value in os.environ.items() if key != "SEMSEARCH_API_KEY"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="semsearch-soak-") as work:
        folder = Path(work) / "idx"
        env["SEMSEARCH_INDEXES"] = str(Path(work) / "indexes")
        semsearch("index", corpus, "--model", model, "--out", folder, env=env)
        with served(["--index", str(folder), "--workers", str(workers), "-q"],
                    env=env) as (server, url):
            for text in QUERIES[:4]:  # first-call costs stay out of the figures
                httpx.get(url + "/search", params={"q": text, "k": k}, timeout=60)
            quiet = min(60.0, seconds / 4)  # the stretch before the writer starts
            first = min(60.0, seconds / 3)  # "after the first minute" of a shorter run
            stop = threading.Event()
            writer = Writer(url, folder, model, every, env, stop) if writers else None
            samples: dict[str, dict] = {}
            timers = [threading.Timer(first, lambda: samples.setdefault(
                "first", process_stats(server.pid))),
                      # the end sample while the clients still run (their connections open)
                      threading.Timer(max(first, seconds - 2), lambda: samples.setdefault(
                          "end", process_stats(server.pid)))]
            if writer is not None:
                timers.append(threading.Timer(quiet, writer.start))
            for timer in timers:
                timer.start()
            records = asyncio.run(clients(url, concurrency, seconds, k))
            samples.setdefault("end", process_stats(server.pid))
            stop.set()
            for timer in timers:
                timer.cancel()
            if writer is not None and writer.is_alive():
                writer.join(timeout=120)
    before = np.array([r[1] for r in records if r[0] < quiet]) * 1000
    during = np.array([r[1] for r in records if r[0] >= quiet]) * 1000
    failures: dict[str, int] = {}
    for record in records:
        if not record[2]:
            failures[record[3]] = failures.get(record[3], 0) + 1

    def percentiles(values: np.ndarray) -> dict:
        if not len(values):
            return {"p50_ms": None, "p99_ms": None}
        return {"p50_ms": round(float(np.percentile(values, 50)), 1),
                "p99_ms": round(float(np.percentile(values, 99)), 1)}

    return {
        "side": "writers" if writers else "no writers", "seconds": seconds,
        "concurrency": concurrency, "workers": workers, "requests": len(records),
        "failures": sum(failures.values()), "failure_kinds": failures,
        "before_writes": percentiles(before), "during_writes": percentiles(during),
        "quiet_s": round(quiet, 1), "first_sample_s": round(first, 1),
        "server_first": samples.get("first"), "server_end": samples.get("end"),
        "appended": writer.appended if writer else 0,
        "removed": writer.removed if writer else 0,
        "writes_checked": writer.checked if writer else 0,
        "write_misses": writer.misses if writer else [],
        "writer_error": writer.error if writer else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder to index and serve with")
    parser.add_argument("--corpus", default=str(REPO / "corpora" / "docs.txt"),
                        help="corpus to index first (default: corpora/docs.txt)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds a side")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--every", type=float, default=3.0, help="seconds between writes")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--sides", choices=["both", "writers", "none"], default="both")
    parser.add_argument("--json", action="store_true", help="also print one JSON line a side")
    args = parser.parse_args()
    sides = {"both": [False, True], "writers": [True], "none": [False]}[args.sides]
    results = []
    for writers in sides:
        result = soak(args.model, Path(args.corpus), args.duration, args.concurrency,
                      args.every, writers, args.workers)
        results.append(result)
        if args.json:
            print(json.dumps({**result, "machine": platform.machine(),
                              "cpus": os.cpu_count()}), flush=True)
    print(f"{'side':<11} {'requests':>8} {'fail':>5} {'p50/p99 before':>15} "
          f"{'p50/p99 during':>15} {'RSS MiB first/end':>18} {'fds first/end':>14} "
          f"{'appended':>8} {'removed':>7} {'misses':>6}")
    for r in results:
        first, end = r["server_first"] or {}, r["server_end"] or {}
        print(f"{r['side']:<11} {r['requests']:>8} {r['failures']:>5} "
              f"{r['before_writes']['p50_ms']}/{r['before_writes']['p99_ms']:>7} "
              f"{r['during_writes']['p50_ms']}/{r['during_writes']['p99_ms']:>7} "
              f"{first.get('rss_mib')}/{end.get('rss_mib'):>9} "
              f"{first.get('fds')}/{end.get('fds'):>8} {r['appended']:>8} {r['removed']:>7} "
              f"{len(r['write_misses']):>6}")
    bad = [r for r in results if r["failures"] or r["write_misses"] or r["writer_error"]]
    if bad:
        sys.exit(f"soak failed: {json.dumps([{k: r[k] for k in ('side', 'failure_kinds', 'write_misses', 'writer_error')} for r in bad])}")


if __name__ == "__main__":
    main()
