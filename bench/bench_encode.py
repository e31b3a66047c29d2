"""Encoding speed of semsearch models against each other: the same texts, the same backend and
threads, passes interleaved, in one run (e.g. a distilled student against its teacher).

    python bench/bench_encode.py --model models/minilm --model models/distilled --json

Texts: the unique STS-B test sentences (2,552). Each pass encodes all of them with each model in
turn; the best pass per model is reported with its ratio to the first model.
"""

from __future__ import annotations

import argparse
import json
import time

from semsearch.data import load_stsb
from semsearch.embedder import load_embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True,
                        help="model folder (repeat; the first is the reference)")
    parser.add_argument("--backend", default="onnx", choices=["torch", "onnx"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    rows = load_stsb("test", args.data_dir)
    texts = list(dict.fromkeys(t for r in rows for t in (r.sentence1, r.sentence2)))
    models = {name: load_embedder(name, "cpu", precision=args.precision, backend=args.backend,
                                  threads=args.threads) for name in args.model}
    for embedder in models.values():  # warm-up
        embedder.encode(texts[:64], batch_size=args.batch_size)
    best = {name: float("inf") for name in models}
    for _ in range(args.passes):
        for name, embedder in models.items():
            started = time.perf_counter()
            embedder.encode(texts, batch_size=args.batch_size)
            best[name] = min(best[name], time.perf_counter() - started)
    reference = best[args.model[0]]
    print(f"{len(texts):,} unique STS-B test sentences, {args.backend} {args.precision}, "
          f"{args.threads} threads, best of {args.passes} interleaved passes")
    print("| model | sentences/s | vs first |\n|---|--:|--:|")
    result = []
    for name, seconds in best.items():
        result.append({"model": name, "sentences_per_s": len(texts) / seconds,
                       "speed_vs_first": reference / seconds})
        print(f"| {name} | {len(texts) / seconds:,.0f} | {reference / seconds:.2f}x |")
    if args.json:
        print(json.dumps({"texts": len(texts), "backend": args.backend,
                          "precision": args.precision, "threads": args.threads,
                          "passes": args.passes, "rows": result}))


if __name__ == "__main__":
    main()
