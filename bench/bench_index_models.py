"""Index build time of the same corpus with different models: `semsearch index` run as a user
runs it, each build in its own fresh process, the models alternated round by round, wall time
from the command's start (model load, reading, chunking, encoding, FAISS and BM25 included).

    python bench/bench_index_models.py models/static models/quick --limit 100000
    python bench/bench_index_models.py models/static --limit 0 --rounds 1   # all 704K sentences
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--limit", type=int, default=100_000,
                        help="first N Wikipedia sentences (0: all 704,910)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-index-models-"))
    try:
        corpus = work / "sentences.txt"
        with gzip.open(Path(args.data_dir) / "wikipedia" / "sentences.txt.gz", "rt",
                       encoding="utf-8") as source, corpus.open("w", encoding="utf-8") as out:
            for number, line in enumerate(source):
                if args.limit and number >= args.limit:
                    break
                out.write(line)
        semsearch = Path(sys.executable).with_name("semsearch")
        env = dict(os.environ, TQDM_DISABLE="1", SEMSEARCH_INDEXES=str(work / "indexes"))
        runs: dict[str, list[float]] = {m: [] for m in args.models}
        for round_ in range(args.rounds):
            for model in (args.models if round_ % 2 == 0 else list(reversed(args.models))):
                out = work / f"index-{round_}-{Path(model).name}"
                started = time.perf_counter()
                subprocess.run([str(semsearch), "-q", "index", str(corpus), "--model", model,
                                "--out", str(out)], env=env, check=True)
                runs[model].append(time.perf_counter() - started)
                shutil.rmtree(out, ignore_errors=True)
        documents = sum(1 for _ in corpus.open(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = min(runs[args.models[-1]])
    rows = [{"model": m, "documents": documents, "seconds": [round(s, 1) for s in t],
             "best_seconds": round(min(t), 1), "docs_per_s": round(documents / min(t), 1),
             f"speedup_vs_{Path(args.models[-1]).name}": round(base / min(t), 2)}
            for m, t in runs.items()]
    print(f"{'model':32} {'docs':>9} {'best s':>8} {'docs/s':>9} {'speed-up':>9}")
    for row in rows:
        print(f"{row['model']:32} {row['documents']:>9,} {row['best_seconds']:>8.1f} "
              f"{row['docs_per_s']:>9,.0f} {list(row.values())[-1]:>8.2f}x")
    result = {"bench": "bench_index_models", "date": time.strftime("%Y-%m-%d"), "rows": rows}
    print(json.dumps(result))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
