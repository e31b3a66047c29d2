"""A million documents on two cores (issue 30): build, query latency and quality at 1M.

The collection (semsearch/data/scale_collection.py) is MLQuestions' 9,211 passages among
Wikipedia paragraphs and sentences, Quora questions and Flickr30k captions, 1,000,000 documents
in all, written once as JSONL under --work (never in git). Each arm is then indexed through
`semsearch index` in its own process (wall time from the command's start, its stages from
`--json`, peak memory of its processes, disk), and measured in a fresh process: nDCG@10 and
recall@100 on MLQuestions dev (whose relevant passages are among the million) for each search
mode, the latency of `semsearch.query` one query a call, p50 / p99, and of `semsearch query`
from the shell.

    python bench/bench_million.py --arm lexical --arm static=models/static --json runs/m.json
    python bench/bench_million.py --size 100000 --arm static=models/static     # a slice
    python bench/bench_million.py --arm minilm=models/minilm --reuse           # the reference
    python bench/bench_million.py --arm static=models/static --reuse --rescore models/minilm

An arm is `lexical` (`--lexical-only`: BM25 alone, no model) or NAME=MODEL. `--reuse` measures
index folders already built under --work instead of building them again (the MiniLM reference
takes about an hour to encode; its folder keeps its vectors, so it is built once).
`--rescore MODEL` adds the two-stage arm (hybrid candidates re-scored by MODEL) where this
semsearch has it (`semsearch.query(..., rescore=...)`), else says it is not there.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = ("lexical", "dense", "hybrid")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", action="append", default=[],
                        help="lexical, or NAME=MODEL (repeatable)")
    parser.add_argument("--size", type=int, default=1_000_000, help="documents in the collection")
    parser.add_argument("--work", default=str(REPO / "runs" / "million"))
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--reuse", action="store_true",
                        help="measure index folders already under --work (build only missing ones)")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--latency-queries", type=int, default=300,
                        help="queries timed one a call in process, per mode")
    parser.add_argument("--shell-runs", type=int, default=15, help="`semsearch query` runs a mode")
    parser.add_argument("--serve-queries", type=int, default=200,
                        help="GET /search requests a mode, one at a time, to `semsearch serve` "
                        "(0: skip)")
    parser.add_argument("--rescore", default=None, metavar="MODEL",
                        help="also measure hybrid + rescoring with MODEL (the two-stage arm)")
    parser.add_argument("--rescore-depth", type=int, default=100)
    parser.add_argument("--rescore-queries", type=int, default=0, metavar="N",
                        help="the two-stage arm's quality on a seeded sample of N dev queries "
                        "(hybrid alone on the same sample beside it) and its latency on N "
                        "queries (0: every query)")
    parser.add_argument("--build-args", default="", help="extra `semsearch index` arguments")
    parser.add_argument("--append", type=int, default=0, metavar="N",
                        help="also time `index --append` of the collection's next N documents, "
                        "then `remove` of --remove ids, on a hard-linked copy of each folder")
    parser.add_argument("--remove", type=int, default=1000, metavar="N")
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--index", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "measure":
        print(json.dumps(measure(args)))
        return 0
    if not args.arm:
        parser.error("give at least one --arm (lexical, or NAME=MODEL)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus, collection = make_collection(Path(args.data_dir), work, args.size)
    rows = []
    for arm in args.arm:
        name, _, model = arm.partition("=")
        folder = work / f"index-{name}-{args.size}"
        row = {"arm": name, "model": model or None, "documents": collection["documents"],
               "index": str(folder)}
        if args.reuse and (folder / "manifest.json").is_file():
            row["build"] = "reused"
        else:
            row["build"] = build(corpus, folder, model or None, args.build_args.split())
        row["disk_bytes"] = disk_bytes(folder)
        child = [sys.executable, __file__, "--child", "measure", "--index", str(folder),
                 "--data-dir", args.data_dir, "--latency-queries", str(args.latency_queries),
                 "--rescore-depth", str(args.rescore_depth),
                 "--rescore-queries", str(args.rescore_queries)]
        child += ["--no-quality"] if args.no_quality else []
        child += ["--rescore", args.rescore] if args.rescore and model else []
        done = subprocess.run(child, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"measuring {folder} failed")
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
        row["shell"] = shell_latency(folder, row["modes"], args.shell_runs, args.data_dir)
        if args.append:
            row["update"] = update(folder, Path(args.data_dir), work, args.size, args.append,
                                   args.remove)
        if args.serve_queries:
            row["serve_ms"] = serve_latency(folder, row["modes"], args.serve_queries,
                                            args.data_dir)
        rows.append(row)
        print_row(row)
    result = {"bench": "bench_million", "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": machine(), "collection": collection, "arms": rows}
    print(json.dumps(result))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


# --- the collection ----------------------------------------------------------------------------

def make_collection(data_dir: Path, work: Path, size: int) -> tuple[Path, dict]:
    """The collection's JSONL under `work` (written once; its report kept beside it)."""
    from semsearch.data.scale_collection import write_collection

    corpus = work / f"corpus-{size}.jsonl"
    report_path = corpus.with_suffix(".report.json")
    if corpus.is_file() and report_path.is_file():
        return corpus, json.loads(report_path.read_text())
    started = time.perf_counter()
    report = write_collection(data_dir, corpus, size).to_dict()
    report["seconds"] = round(time.perf_counter() - started, 1)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"collection: {report['documents']:,} documents in {report['seconds']}s "
          f"{report['by_source']}", file=sys.stderr)
    return corpus, report


# --- building ----------------------------------------------------------------------------------

def build(corpus: Path, folder: Path, model: str | None, extra: list[str]) -> dict:
    """`semsearch index` of the collection into `folder`, timed from the command's start, its
    processes' memory sampled (summed PSS, and the largest one's RSS)."""
    command = [sys.executable, "-m", "semsearch", "index", str(corpus), "--id-field", "_id",
               "--out", str(folder), "--json", *[a for a in extra if a]]
    command += ["--model", model] if model else ["--lexical-only"]
    env = dict(os.environ, TQDM_DISABLE="1",
               SEMSEARCH_INDEXES=str(folder.parent / "indexes"))
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    sampler = MemorySampler(process.pid)
    sampler.start()
    out, err = process.communicate()
    wall = time.perf_counter() - started
    sampler.stop()
    if process.returncode:
        sys.stderr.write(err)
        raise SystemExit(f"building {folder} failed")
    report = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": round(wall, 1), "seconds_in_command": report["seconds"],
            "stages": report.get("stages", {}), "pass_parts": report.get("pass_parts", {}),
            "factory": report["factory"], "reason": report["recipe"].get("reason"),
            "nprobe": report["recipe"].get("nprobe"), "recall": report["recipe"].get("recall"),
            "vectors": report["vectors"], "documents": report["documents"],
            "peak_pss_bytes": sampler.peak_pss, "peak_rss_bytes": sampler.peak_rss,
            "stage_lines": [line for line in err.splitlines() if ": " in line][-20:]}


class MemorySampler:
    """The peak, over time, of a process tree's summed PSS (shared pages split among the
    processes sharing them, so forked workers are not counted twice) and of its largest RSS."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.every = every
        self.peak_pss = self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
                pss = rss = 0
                for process in tree:
                    try:
                        full = process.memory_full_info()
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    pss += getattr(full, "pss", full.rss)
                    rss = max(rss, full.rss)
                self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.every)


def update(folder: Path, data_dir: Path, work: Path, size: int, count: int, removed: int
           ) -> dict:
    """`semsearch index --append` of the collection's next `count` documents, then `semsearch
    remove` of `removed` ids (the appended ones' first), each timed from the command's start,
    on a hard-linked copy of `folder` (writers never write into the files they replace, so the
    measured folder is left as it was)."""
    from semsearch.data.scale_collection import write_collection

    more = work / f"corpus-{size}+{count}.jsonl"
    if not more.is_file():
        whole = work / f"corpus-{size + count}.jsonl"
        if not whole.is_file():
            write_collection(data_dir, whole, size + count)
        with whole.open(encoding="utf-8") as lines, more.open("w", encoding="utf-8") as out:
            for number, line in enumerate(lines):
                if number >= size:
                    out.write(line)
    copy = folder.with_name(folder.name + "-update")
    shutil.rmtree(copy, ignore_errors=True)
    subprocess.run(["cp", "-al", str(folder), str(copy)], check=True)
    env = dict(os.environ, TQDM_DISABLE="1", SEMSEARCH_INDEXES=str(work / "indexes"))
    out = {}
    try:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "semsearch", "index", str(more), "--append",
                               "--id-field", "_id", "--out", str(copy), "--json"],
                              capture_output=True, text=True, env=env)
        out["append_s"] = round(time.perf_counter() - started, 2)
        if done.returncode:
            raise SystemExit(f"--append failed: {done.stderr[-2000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        out.update(appended=report["documents_added"], after=report["documents"],
                   append_stages=report.get("stages", {}), recall_change=report["recall_change"])
        ids = [json.loads(line)["_id"] for line in more.open(encoding="utf-8")][:removed]
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "semsearch", "remove", *ids, "--index",
                               str(copy), "--json"], capture_output=True, text=True, env=env)
        out["remove_s"] = round(time.perf_counter() - started, 2)
        if done.returncode:
            raise SystemExit(f"remove failed: {done.stderr[-2000:]}")
        out["removed"] = json.loads(done.stdout.strip().splitlines()[-1])["documents_removed"]
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return out


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --- measuring (a child process an index) -------------------------------------------------------

def measure(args) -> dict:
    """Quality on MLQuestions dev and in-process latency of each mode the index has."""
    import numpy as np

    import semsearch
    from semsearch.embedder import load_embedder, model_for_index
    from semsearch.eval.beir import read_beir
    from semsearch.eval.metrics import retrieval_scores
    from semsearch.index import SearchIndex
    from semsearch.querying import SearchOptions, search

    folder = Path(args.index)
    dev = read_beir(Path(args.data_dir) / "beir" / "mlquestions", "dev")
    query_ids = [q for q in dev.queries if q in dev.qrels]
    texts = [dev.queries[q] for q in query_ids]
    opened = SearchIndex.open(folder)
    modes = ["lexical"] if opened.index is None else list(MODES)
    embedder = None
    if opened.index is not None:
        embedder = load_embedder(model_for_index(opened.manifest, None), texts=64)
    out: dict = {"modes": modes, "quality": {}, "latency_ms": {}}
    if not args.no_quality:
        for mode in modes:
            started = time.perf_counter()
            found = []
            for begin in range(0, len(texts), 64):
                found += search(opened, embedder, texts[begin:begin + 64], 100,
                                options=SearchOptions(mode=mode))
            rankings = {q: [hit.id for hit in hits] for q, hits in zip(query_ids, found,
                                                                      strict=True)}
            scores = retrieval_scores(rankings, dev.qrels, ks=(10, 100))
            out["quality"][mode] = {"ndcg@10": round(scores["ndcg@10"], 4),
                                    "recall@100": round(scores["recall@100"], 4),
                                    "queries": scores["queries"],
                                    "seconds": round(time.perf_counter() - started, 1)}
    opened.close()
    # latency: semsearch.query one query a call, as a user's program calls it
    rescore = _rescore_keywords(args)
    arms = [(mode, {"mode": mode}) for mode in modes]
    if rescore is not None and "hybrid" in modes:
        arms.append(("hybrid+rescore", {"mode": "hybrid", **rescore}))
        if not args.no_quality:
            chosen = rescore_sample(len(texts), args.rescore_queries)
            if len(chosen) < len(texts):
                out["quality"]["hybrid (the sample)"] = _rescore_quality(
                    folder, [query_ids[i] for i in chosen], [texts[i] for i in chosen],
                    dev.qrels, {"rescore": False})
            out["quality"]["hybrid+rescore"] = _rescore_quality(
                folder, [query_ids[i] for i in chosen], [texts[i] for i in chosen], dev.qrels,
                rescore)
    elif args.rescore:
        out["rescore"] = "not measured: this semsearch.query takes no rescore= (issue 29)"
    sample = [texts[i % len(texts)] for i in range(args.latency_queries + 5)]
    for name, keywords in arms:
        semsearch.query(sample[0], index=folder, k=10, **keywords)  # the model loads once
        times = []
        timed = sample[1:]
        if "rescore" in keywords and args.rescore_queries:
            timed = timed[:args.rescore_queries + 4]
        for text in timed:
            started = time.perf_counter()
            semsearch.query(text, index=folder, k=10, **keywords)
            times.append((time.perf_counter() - started) * 1000)
        times = times[4:]  # warm-up
        out["latency_ms"][name] = {"p50": round(float(np.percentile(times, 50)), 2),
                                   "p99": round(float(np.percentile(times, 99)), 2),
                                   "mean": round(statistics.fmean(times), 2),
                                   "queries": len(times)}
    return out


def _rescore_keywords(args) -> dict | None:
    """The keywords of the two-stage arm, where semsearch.query takes them (issue 29)."""
    import semsearch

    if not args.rescore:
        return None
    if "rescore" not in inspect.signature(semsearch.query).parameters:
        return None
    keywords = {"rescore": args.rescore}
    if "rescore_depth" in inspect.signature(semsearch.query).parameters:
        keywords["rescore_depth"] = args.rescore_depth
    return keywords


def rescore_sample(queries: int, size: int) -> list[int]:
    """The seeded sample of the dev queries the two-stage rows are scored on (every query when
    size is 0 or not below their count); bench/probes/sample_quality.py scores others on it."""
    if 0 < size < queries:
        return sorted(random.Random(30).sample(range(queries), size))
    return list(range(queries))


def _rescore_quality(folder, query_ids, texts, qrels, keywords) -> dict:
    import semsearch
    from semsearch.eval.metrics import retrieval_scores

    started = time.perf_counter()
    found = semsearch.query(texts, index=folder, k=100, **keywords)
    rankings = {q: [hit["id"] for hit in hits] for q, hits in zip(query_ids, found, strict=True)}
    scores = retrieval_scores(rankings, {q: qrels[q] for q in query_ids}, ks=(10, 100))
    return {"ndcg@10": round(scores["ndcg@10"], 4), "recall@100": round(scores["recall@100"], 4),
            "queries": scores["queries"], "seconds": round(time.perf_counter() - started, 1)}


def shell_latency(folder: Path, modes: list[str], runs: int, data_dir: str) -> dict:
    """`semsearch query TEXT --index DIR --mode M` from the shell, wall seconds, per mode."""
    from semsearch.eval.beir import read_beir

    dev = read_beir(Path(data_dir) / "beir" / "mlquestions", "dev")
    texts = list(dev.queries.values())
    semsearch = shutil.which("semsearch") or str(Path(sys.executable).with_name("semsearch"))
    out = {}
    for mode in modes:
        walls = []
        for run in range(runs + 1):
            started = time.perf_counter()
            subprocess.run([semsearch, "query", texts[run], "--index", str(folder), "--mode", mode,
                            "-k", "10"], check=True, capture_output=True)
            walls.append(time.perf_counter() - started)
        walls = sorted(walls[1:])  # the first run warms the page cache
        out[mode] = {"p50_s": round(statistics.median(walls), 3), "max_s": round(walls[-1], 3),
                     "runs": runs}
    return out


def serve_latency(folder: Path, modes: list[str], count: int, data_dir: str) -> dict:
    """`semsearch serve --index DIR` on a free localhost port: GET /search one request at a
    time (each waits for the last), milliseconds p50 / p99 a mode."""
    import httpx
    import numpy as np

    from bench.served import served
    from semsearch.eval.beir import read_beir

    texts = list(read_beir(Path(data_dir) / "beir" / "mlquestions", "dev").queries.values())
    with served(["--index", str(folder), "-q"], timeout=300) as (_, url):
        out = {}
        with httpx.Client(base_url=url, timeout=30) as client:
            for mode in modes:
                times = []
                for i in range(count + 5):
                    started = time.perf_counter()
                    answer = client.get("/search", params={"q": texts[i % len(texts)],
                                                           "k": 10, "mode": mode})
                    times.append((time.perf_counter() - started) * 1000)
                    answer.raise_for_status()
                times = times[5:]
                out[mode] = {"p50": round(float(np.percentile(times, 50)), 2),
                             "p99": round(float(np.percentile(times, 99)), 2),
                             "requests": len(times)}
        return out


# --- reporting ---------------------------------------------------------------------------------

def machine() -> dict:
    import platform

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "load_at_end": load}


def print_row(row: dict) -> None:
    build_ = row["build"]
    print(f"\n== {row['arm']} ({row['model'] or 'no model'}), {row['documents']:,} documents")
    if isinstance(build_, dict):
        print(f"build {build_['wall_s']:.1f}s wall ({build_['factory']}, nprobe {build_['nprobe']},"
              f" recall@10 {build_['recall']}), peak PSS {build_['peak_pss_bytes'] / 2**30:.2f} GiB"
              f" (largest process RSS {build_['peak_rss_bytes'] / 2**30:.2f} GiB), disk "
              f"{row['disk_bytes'] / 2**30:.2f} GiB")
        stages = "  ".join(f"{k} {v:.1f}" for k, v in build_["stages"].items())
        parts = "  ".join(f"{k} {v:.1f}" for k, v in build_["pass_parts"].items())
        print(f"  stages (s): {stages}\n  pass parts (s, summed over processes): {parts}")
    nan = float("nan")
    print(f"{'mode':16} {'nDCG@10':>8} {'R@100':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'serve p50':>9} {'serve p99':>9} {'shell s':>8}")
    if row.get("update"):
        update_ = row["update"]
        print(f"--append of {update_['appended']:,} documents: {update_['append_s']:.1f}s; remove "
              f"of {update_['removed']:,}: {update_['remove_s']:.1f}s")
    for mode in row["latency_ms"]:
        quality = row["quality"].get(mode, {})
        shell = row["shell"].get(mode, {})
        served = row.get("serve_ms", {}).get(mode, {})
        print(f"{mode:16} {quality.get('ndcg@10', nan):>8.4f} {quality.get('recall@100', nan):>7.4f} "
              f"{row['latency_ms'][mode]['p50']:>8.2f} {row['latency_ms'][mode]['p99']:>8.2f} "
              f"{served.get('p50', nan):>9.2f} {served.get('p99', nan):>9.2f} "
              f"{shell.get('p50_s', nan):>8.3f}")
    for mode, quality in row["quality"].items():
        if mode not in row["latency_ms"]:
            print(f"{mode:16} {quality['ndcg@10']:>8.4f} {quality['recall@100']:>7.4f}  "
                  f"({quality['queries']} queries)")


if __name__ == "__main__":
    raise SystemExit(main())
