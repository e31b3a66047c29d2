"""Static-model recipes side by side: each arm a `semsearch distill` (or `train --preset static`)
with some settings changed, scored by dense nDCG@10 (exact search) on MLQuestions dev and
ArguAna, with its fit time. The teacher's vectors come from the cache the first distill filled
(same texts, same teacher), so an arm costs its fit alone.

    python bench/static_arms.py --teacher models/minilm --arm base --arm hidden=384 \
        --arm loss=infonce --json runs/static-arms.json
    python bench/static_arms.py --scratch --arm epochs=4 --arm batch_size=2048

An arm is `name` (the defaults) or comma-separated settings (`hidden=384,epochs=8`); with
--scratch the arms train from scratch on the static pair mixture instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", default="models/minilm")
    parser.add_argument("--arm", action="append", default=[], help="settings of one arm")
    parser.add_argument("--scratch", action="store_true", help="from scratch, no teacher")
    parser.add_argument("--wiki", action="append", default=None)
    parser.add_argument("--corpus", action="append", default=[])
    parser.add_argument("--out", default="runs/static-arms")
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)

    from search_dev import score_model

    from semsearch.data.unlabelled import DEFAULT_TEXT, gather
    from semsearch.encoder.static_train import (
        STATIC_SOURCES,
        StaticTrainConfig,
        distill_static,
        train_static,
    )
    from semsearch.encoder.store import read_config, resolve_model
    from semsearch.encoder.tokenizer import Tokenizer

    data_dir = Path(args.data_dir)
    texts = counts = None
    if not args.scratch:
        teacher = resolve_model(args.teacher).resolve()
        tokenizer = Tokenizer.load(teacher / "tokenizer.json")
        window = int(read_config(teacher)["model"]["max_seq_len"])
        texts, counts = gather(args.wiki or DEFAULT_TEXT, [], args.corpus, data_dir,
                               lambda b: [len(i) for i in tokenizer.encode(b)], window)
        from semsearch.encoder.teacher import teacher_vectors

        vectors, _ = teacher_vectors(teacher, texts, lambda m: print(m, file=sys.stderr))
        first = counts[next(iter(counts))]  # texts of the first source come first
    rows = []
    for arm in args.arm or ["base"]:
        settings = dict(s.split("=", 1) for s in arm.split(",") if "=" in s)
        # texts=first|rest|N: the arm fits on the first source's texts, the others', or every
        # Nth text (teacher vectors from the same cache)
        subset = settings.pop("texts", "all")
        rows_used = (np.arange(first) if subset == "first" else
                     np.arange(first, len(texts)) if subset == "rest" else
                     np.arange(0, len(texts), int(subset)) if subset.isdigit() else
                     np.arange(len(texts))) if texts is not None else None
        config = StaticTrainConfig.with_overrides(settings)
        out = Path(args.out) / (arm.replace("=", "-").replace(",", "_") or "base")
        started = time.perf_counter()
        if args.scratch:
            summary = train_static(out, config, STATIC_SOURCES, data_dir, overwrite=True,
                                   progress=False, log=lambda m: print(m, file=sys.stderr))
        else:
            summary = distill_static(teacher, out, config, [texts[i] for i in rows_used],
                                     {"subset": subset, **counts}, overwrite=True,
                                     progress=False, log=lambda m: print(m, file=sys.stderr),
                                     vectors=vectors[rows_used])
        seconds = time.perf_counter() - started
        scores = score_model(str(out), data_dir, None, 256)
        row = {"arm": arm, "seconds": round(seconds, 1),
               "mlquestions": round(scores["mlquestions_ndcg@10"], 4),
               "arguana": round(scores["arguana_ndcg@10"], 4),
               "stsb_dev": round(scores["stsb_dev"], 2),
               "history": summary["history"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{'arm':36} {'fit s':>7} {'MLQ dev':>8} {'ArguAna':>8} {'STS-B dev':>9}")
    for row in rows:
        print(f"{row['arm']:36} {row['seconds']:>7.0f} {row['mlquestions']:>8.3f} "
              f"{row['arguana']:>8.3f} {row['stsb_dev']:>9.2f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
