"""Quality ablations: train each variant, score STS-B dev (for choosing) and test (for reporting).

Each experiment is a preset plus `--set` overrides; results are appended to a JSON-lines file so
an interrupted sweep resumes where it stopped, and the table is printed from that file.

    python bench/ablate.py --preset quick --exp base --exp "lr1e-3:train.lr=1e-3"
    python bench/ablate.py --table runs/ablation.jsonl

An experiment is `name[:key=value,key=value...]` (values with commas: use `;` between specs,
e.g. `mix:data.sources=snli:dev;stsb:train`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def run(preset_name: str, name: str, overrides: dict[str, str], out_root: Path, data_dir):
    from semsearch.data import load_stsb
    from semsearch.encoder import SentenceEncoder
    from semsearch.encoder.presets import apply_overrides, preset
    from semsearch.encoder.train import train_model
    from semsearch.eval.runner import sts_scores

    config = apply_overrides(preset(preset_name), overrides)
    out = out_root / name
    started = time.perf_counter()
    summary = train_model(config, out, data_dir=data_dir, overwrite=True, progress=False,
                          log=lambda m: print(f"[{name}] {m}", file=sys.stderr, flush=True))
    minutes = (time.perf_counter() - started) / 60
    encoder = SentenceEncoder.load(out)
    scores = {split: sts_scores(encoder.encode, load_stsb(split, data_dir))
              for split in ("dev", "test")}
    sets = " ".join(f"--set {k}={v}" for k, v in overrides.items())
    return {"name": name, "preset": preset_name, "overrides": overrides,
            "stsb_dev_spearman": scores["dev"]["spearman"],
            "stsb_test_spearman": scores["test"]["spearman"],
            "train_minutes": round(minutes, 1), "steps": summary["steps"],
            "command": f"semsearch train --preset {preset_name} {sets}".strip(),
            "machine": f"{platform.machine()} {platform.node()}"}


def parse_experiment(text: str) -> tuple[str, dict[str, str]]:
    name, _, specs = text.partition(":")
    overrides = {}
    for spec in filter(None, specs.split(",")):
        key, _, value = spec.partition("=")
        overrides[key.strip()] = value.replace(";", ",").strip()
    return name, overrides


def table(rows: list[dict]) -> str:
    lines = ["| experiment | STS-B dev | STS-B test | train min | steps | command |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['stsb_dev_spearman']:.2f} | {r['stsb_test_spearman']:.2f} "
                     f"| {r['train_minutes']} | {r['steps']} | `{r['command']}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--exp", action="append", default=[], help="name[:key=value,...]")
    parser.add_argument("--results", default="runs/ablation.jsonl", type=Path)
    parser.add_argument("--out", default="runs/ablation", type=Path, help="model folders")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--table", action="store_true", help="only print the table")
    args = parser.parse_args()
    done = ([json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
            if args.results.exists() else [])
    if not args.table:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        for text in args.exp:
            name, overrides = parse_experiment(text)
            if any(r["name"] == name for r in done):
                continue
            row = run(args.preset, name, overrides, args.out, args.data_dir)
            done.append(row)
            with args.results.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
    print(table(done))


if __name__ == "__main__":
    main()
