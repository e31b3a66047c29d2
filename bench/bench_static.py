"""Encode speed of static and transformer models side by side: each model alone in a fresh
process, the models alternated round by round, best of the rounds (this machine's noise only
ever slows a run down). The same texts for all: the MLQuestions passages of the data folder.

A model is a semsearch model folder (encoded as `semsearch index` would: its default backend,
ONNX Runtime for a transformer on the CPU, numpy for a static model) or `m2v:DIR`, a Model2Vec
StaticModel folder encoded by Model2Vec itself (`pip install model2vec`), the peer. Thread
settings are the same for every process (OMP/MKL/ORT threads = --threads).

    python bench/bench_static.py models/quick models/static m2v:runs/m2v-minilm --rounds 3
    python bench/bench_static.py models/static models/quick --json runs/static-speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
spec, corpus, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = []
with open(corpus, encoding="utf-8") as handle:
    for line in handle:
        row = json.loads(line)
        texts.append((row.get("title", "") + " " + row["text"]).strip())
        if len(texts) >= limit:
            break
if spec.startswith("m2v:"):
    from model2vec import StaticModel
    model = StaticModel.from_pretrained(spec[4:])
    encode = lambda batch: model.encode(batch, show_progress_bar=False)
else:
    from semsearch.embedder import load_embedder
    model = load_embedder(spec)
    encode = lambda batch: model.encode(batch, batch_size=64)
encode(texts[:64])
started = time.perf_counter()
vectors = encode(texts)
seconds = time.perf_counter() - started
print(json.dumps({"model": spec, "texts": len(texts), "seconds": seconds,
                  "texts_per_s": len(texts) / seconds, "dim": int(vectors.shape[1])}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model folders, or m2v:DIR for Model2Vec")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=9211, help="passages encoded (all: 9,211)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    corpus = Path(args.data_dir) / "beir" / "mlquestions" / "corpus.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               SEMSEARCH_THREADS=str(args.threads), TQDM_DISABLE="1")
    runs: dict[str, list[dict]] = {m: [] for m in args.models}
    for round_ in range(args.rounds):
        order = args.models if round_ % 2 == 0 else list(reversed(args.models))
        for model in order:
            out = subprocess.run([sys.executable, "-c", WORKER, model, str(corpus),
                                  str(args.limit)], env=env, capture_output=True, text=True,
                                 check=True)
            runs[model].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = max(r["texts_per_s"] for r in runs[args.models[0]])
    rows = []
    for model, results in runs.items():
        best = max(r["texts_per_s"] for r in results)
        rows.append({"model": model, "texts": results[0]["texts"], "dim": results[0]["dim"],
                     "best_texts_per_s": round(best, 1),
                     "all_texts_per_s": [round(r["texts_per_s"], 1) for r in results],
                     f"x_{Path(args.models[0]).name}": round(best / base, 2)})
    print(f"{'model':40} {'dim':>4} {'texts/s (best)':>15} {'ratio':>7}  rounds")
    for row in rows:
        ratio = list(row.values())[-1]
        print(f"{row['model']:40} {row['dim']:>4} {row['best_texts_per_s']:>15,.0f} "
              f"{ratio:>6.2f}x  {row['all_texts_per_s']}")
    result = {"bench": "bench_static", "date": time.strftime("%Y-%m-%d"), "rounds": args.rounds,
              "threads": args.threads, "rows": rows}
    print(json.dumps(result))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
