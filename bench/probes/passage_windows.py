"""What a 64 / 128 / 256-token window costs and keeps, for passages on the document side.

Tokenises, with a model's tokenizer, the document side of each passage source (whole
paragraphs, no character cut) and the retrieval corpora's documents, and prints per window: the
share of texts the window cuts, the share of their tokens it keeps, and the tokens per text the
encoder then processes relative to the 64-token window (the linear layers' compute, which
dominates at these lengths, grows with it; attention's grows faster). Pure counting: no timing,
so a shared machine does not skew it.

    python bench/probes/passage_windows.py --tokenizer models/quick/tokenizer.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

WINDOWS = (64, 128, 256)


def lengths_of_sources(data_dir: Path, tokenizer, limit: int) -> dict[str, np.ndarray]:
    from semsearch.data import sources
    from semsearch.eval.beir import read_beir

    texts: dict[str, list[str]] = {}
    for name in sources.PASSAGE_SOURCES:
        pairs = sources.load_training_pairs(name, ("all",), data_dir, 4.0, 5, 0)
        step = max(1, len(pairs) // limit)
        texts[name] = [p.positive for p in pairs[::step][:limit]]
    for name, split in (("mlquestions", "dev"), ("arguana", "test")):
        corpus = list(read_beir(data_dir / "beir" / name, split).corpus.values())
        step = max(1, len(corpus) // limit)
        texts[f"{name} corpus"] = corpus[::step][:limit]
    # the window counts [CLS] and [SEP]; encode without a cap to see the whole text
    return {name: np.array([len(ids) for ids in tokenizer.encode(items, 100_000)])
            for name, items in texts.items()}


def window_table(lengths: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    for name, counts in lengths.items():
        row = {"texts": name, "n": int(len(counts)), "median_tokens": float(np.median(counts)),
               "p90_tokens": float(np.percentile(counts, 90))}
        base = np.minimum(counts, WINDOWS[0]).mean()
        for window in WINDOWS:
            kept = np.minimum(counts, window)
            row[f"cut@{window}"] = float((counts > window).mean())
            row[f"kept@{window}"] = float(kept.sum() / counts.sum())
            row[f"cost@{window}"] = float(kept.mean() / base)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True, help="a model folder's tokenizer.json")
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--limit", type=int, default=3000, help="texts per source (spread)")
    args = parser.parse_args(argv)
    from semsearch.encoder.tokenizer import Tokenizer

    rows = window_table(lengths_of_sources(Path(args.data_dir), Tokenizer.load(Path(args.tokenizer)),
                                           args.limit))
    header = ["texts", "median", "p90"] + [f"cut/kept/cost @{w}" for w in WINDOWS]
    print(" | ".join(header))
    for r in rows:
        cells = [r["texts"], f"{r['median_tokens']:.0f}", f"{r['p90_tokens']:.0f}"]
        cells += [f"{r[f'cut@{w}']:.0%} / {r[f'kept@{w}']:.0%} / {r[f'cost@{w}']:.2f}x"
                  for w in WINDOWS]
        print(" | ".join(cells))
    print(json.dumps({"tokenizer": args.tokenizer, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
