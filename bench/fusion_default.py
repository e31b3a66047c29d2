"""The uncalibrated fusion default: which single setting loses least across models.

Reads the sweep each model's calibration measured (fusion.json, written by `train`, `distill`,
`adapt`, `import-model` or `evaluate`: hybrid nDCG@10 of every grid setting on each shared
collection) and, for every setting, the most it loses on any (model, collection) against that
model's own best setting, and against BM25 alone. The default is the setting whose worst loss is
smallest.

    python bench/fusion_default.py models/quick models/minilm models/static --json runs/fd.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    cells = []  # (model, collection, bm25, {setting: ndcg})
    for model in args.models:
        measured = json.loads((Path(model) / "fusion.json").read_text())["measured"]
        for name, result in measured.items():
            cells.append((model, name, result["bm25"]["ndcg@10"], result["sweep_ndcg@10"]))
    settings = list(cells[0][3])
    rows = []
    for setting in settings:
        loss_best = max(max(sweep.values()) - sweep[setting] for _, _, _, sweep in cells)
        loss_bm25 = max(bm25 - sweep[setting] for _, _, bm25, sweep in cells)
        rows.append({"setting": setting, "worst_loss_vs_best": round(loss_best, 4),
                     "worst_loss_vs_bm25": round(loss_bm25, 4)})
    rows.sort(key=lambda r: (r["worst_loss_vs_best"], r["worst_loss_vs_bm25"]))
    print(f"{'setting':14} {'worst loss vs best':>19} {'worst loss vs BM25':>19}")
    for row in rows:
        print(f"{row['setting']:14} {row['worst_loss_vs_best']:>19.3f} "
              f"{row['worst_loss_vs_bm25']:>19.3f}")
    print(f"\nper model and collection ({len(cells)} cells):")
    for model, name, bm25, sweep in cells:
        best = max(sweep, key=sweep.get)
        print(f"  {model:28} {name:12} BM25 {bm25:.3f}  best {best} {sweep[best]:.3f}  "
              f"{rows[0]['setting']} {sweep[rows[0]['setting']]:.3f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"models": args.models, "rows": rows},
                                                   indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
