"""`semsearch index` with --engine local and --engine ray on the same corpus: wall time,
sentences/s, peak RSS of the driver and of each Ray worker, and whether the two folders hold
the same chunks under the same ids.

Each engine runs as its own `python -m semsearch index ... --json` process; a sampler reads the
resident memory of that process and of every Ray worker (processes named `ray::...`) every
0.5 s. The first --limit lines of the corpus are indexed (0: all of it).

    python bench/bench_ray_index.py --model models/quick --limit 50000 --concurrency 2
    python bench/bench_ray_index.py --model models/quick --limit 5000 --json
    python bench/bench_ray_index.py --model models/quick --limit 0 --work runs/wiki704k \
        --engines local:onnx local:torch ray:onnx --json-lines     # issues 17 and 18
    python bench/bench_ray_index.py --model models/static --corpus runs/million/corpus-1000000.jsonl \
        --id-field _id --limit 0 --work runs/million/ray --json    # issue 30
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = Path(os.environ.get("SEMSEARCH_DATA", REPO.parent / "shared" / "data")) / \
    "wikipedia" / "sentences.txt.gz"


class Sampler(threading.Thread):
    """Peak RSS of one process, and of each Ray worker process seen, sampled every 0.5 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.driver_peak = 0
        self.workers: dict[int, tuple[str, int]] = {}  # pid -> (name, peak bytes)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.driver_peak = max(self.driver_peak, psutil.Process(self.pid).memory_info().rss)
            except psutil.Error:
                pass
            for process in psutil.process_iter(["pid", "name", "cmdline", "memory_info"]):
                line = " ".join(process.info["cmdline"] or [])
                if not line.startswith("ray::") or process.info["memory_info"] is None:
                    continue
                name = line.split()[0]
                _, peak = self.workers.get(process.info["pid"], (name, 0))
                rss = process.info["memory_info"].rss
                self.workers[process.info["pid"]] = (name, max(peak, rss))
            self.done.wait(0.5)


def run_engine(spec: str, corpus: Path, model: str, out: Path, args) -> dict:
    engine, _, rest = spec.partition(":")
    backend, _, precision = rest.partition(":")
    command = [sys.executable, "-m", "semsearch", "index", str(corpus), "--model", model,
               "--out", str(out), "--json", "--engine", engine, "--batch-size",
               str(args.batch_size), "--type", args.type]
    if args.id_field:
        command += ["--id-field", args.id_field]
    if backend:
        command += ["--backend", backend]
    if precision:
        command += ["--precision", precision]
    if engine == "ray":
        command += ["--concurrency", str(args.concurrency), "--shard-size", str(args.shard_size)]
    env = {**os.environ, "SEMSEARCH_INDEXES": str(out.parent),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    sampler = Sampler(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{engine} failed:\n{stderr[-2000:]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    encoders = [peak for name, peak in sampler.workers.values() if "MapWorker" in name]
    return {
        "engine": spec, "wall_s": wall, "documents": report["documents"],
        "vectors": report["vectors"], "factory": report["factory"],
        "sentences_per_s": report["documents"] / wall,
        "driver_peak_rss_mib": sampler.driver_peak / 2**20,
        "encoder_workers": len(encoders),
        "encoder_peak_rss_mib": [round(p / 2**20) for p in sorted(encoders)],
        "other_ray_processes_peak_rss_mib": round(sum(
            peak for name, peak in sampler.workers.values() if "MapWorker" not in name) / 2**20),
        "index_bytes": sum(f.stat().st_size for f in out.iterdir()),
    }


def same_chunks(first: Path, second: Path) -> bool:
    rows = []
    for folder in (first, second):
        with sqlite3.connect(folder / "documents.sqlite") as connection:
            rows.append(connection.execute(
                "SELECT row, doc_id, chunk, text FROM chunks ORDER BY row").fetchall())
    return rows[0] == rows[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=50_000, help="first N lines (0: all)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--engines", nargs="+", default=["local", "ray"],
                        help="engines to run in turn, each `local` or `ray`, optionally with a "
                        "backend[:precision]: `local:torch`, `ray:onnx`, `local:onnx:int8` "
                        "(default: the index command's)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--type", default="auto", help="index type, as `semsearch index --type`")
    parser.add_argument("--id-field", default=None,
                        help="a JSONL corpus's id field, as `semsearch index --id-field`")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--json-lines", action="store_true",
                        help="also print each engine's row to stderr as soon as it finishes")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-ray-index-"))
    work.mkdir(parents=True, exist_ok=True)
    jsonl = ".jsonl" in args.corpus.name
    corpus = work / ("corpus.jsonl" if jsonl else "corpus.txt")
    if not args.limit and not args.corpus.name.endswith(".gz"):
        corpus = args.corpus  # the whole file, read where it is
    else:
        opener = gzip.open if args.corpus.name.endswith(".gz") else open
        with opener(args.corpus, "rt", encoding="utf-8") as source, open(corpus, "w") as target:
            for number, line in enumerate(source):
                if args.limit and number >= args.limit:
                    break
                target.write(line)
    folders = [work / f"index-{spec.replace(':', '-')}" for spec in args.engines]
    rows = []
    for spec, folder in zip(args.engines, folders, strict=True):
        rows.append(run_engine(spec, corpus, args.model, folder, args))
        if args.json_lines:  # each row as it finishes: a long run keeps what it measured
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for row, folder in zip(rows[1:], folders[1:], strict=False):
        row["same_chunks_as_first"] = same_chunks(folders[0], folder)
        row["speed_vs_first"] = row["sentences_per_s"] / rows[0]["sentences_per_s"]
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "limit": args.limit, "rows": rows}))
        return
    print(f"{'engine':11} {'docs':>8} {'vectors':>8} {'wall s':>8} {'sent/s':>8} "
          f"{'driver MiB':>10} {'encoder MiB (each)':>20} {'factory':>20}")
    for row in rows:
        each = "/".join(str(x) for x in row["encoder_peak_rss_mib"]) or "-"
        print(f"{row['engine']:11} {row['documents']:>8} {row['vectors']:>8} {row['wall_s']:>8.1f} "
              f"{row['sentences_per_s']:>8.0f} {row['driver_peak_rss_mib']:>10.0f} {each:>20} "
              f"{row['factory']:>20}")
    for row in rows[1:]:
        print(f"{row['engine']} / {rows[0]['engine']} speed: {row['speed_vs_first']:.2f}x; same "
              f"chunks and ids: {row['same_chunks_as_first']}")


if __name__ == "__main__":
    main()
