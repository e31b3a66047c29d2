"""The STS-B stage alone, from a trained model: STS-B dev Spearman and dev separation by epoch.

Loads a model folder, runs `train.sts_epochs` epochs of the stage exactly as `semsearch train`
does after its InfoNCE epochs (the same `sts_step`, batches, warmup and cosine decay, peaking at
`train.sts_lr`), and after each epoch scores STS-B dev: Spearman x100 and the mean cosine of its
similar (gold >= 4) and dissimilar (gold <= 1) pairs, the evaluate checklist's two means (on dev,
where choices are made). Nothing is saved: it is for choosing the stage's loss and rate.

    python bench/probes/sts_probe.py --model models/quick --set train.sts_loss=cosine --set train.sts_lr=1e-4
    python bench/probes/sts_probe.py --model models/production --epochs 4 --set train.sts_lr=3e-4 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def probe(model_dir: str, epochs: int, overrides: dict, data_dir: str | None) -> dict:
    from dataclasses import replace

    from semsearch.data import load_stsb
    from semsearch.encoder import SentenceEncoder
    from semsearch.encoder.presets import RunConfig, apply_overrides
    from semsearch.encoder.store import read_config
    from semsearch.encoder.train_data import graded_batches, read_graded_rows, tokenize_graded
    from semsearch.encoder.train_steps import lr_factor, make_optimizer, sts_step
    from semsearch.eval.metrics import spearman

    config = apply_overrides(RunConfig.from_dict(read_config(Path(model_dir))), overrides)
    cfg = replace(config.train, sts_epochs=epochs)
    torch.manual_seed(cfg.seed)
    encoder = SentenceEncoder.load(model_dir, device="cpu")
    model, tokenizer, device = encoder.model, encoder.tokenizer, torch.device("cpu")
    graded = tokenize_graded(read_graded_rows(data_dir, [], cfg.sts_batch, lambda _m: None),
                              tokenizer, model.config.max_seq_len)
    dev = load_stsb("dev", data_dir)
    gold = np.array([r.score for r in dev])

    def score(epoch: int, seconds: float) -> dict:
        model.eval()
        cosines = (encoder.encode([r.sentence1 for r in dev], 256)
                   * encoder.encode([r.sentence2 for r in dev], 256)).sum(1)
        return {"epoch": epoch, "stsb_dev_spearman": spearman(cosines, gold),
                "similar_mean": float(cosines[gold >= 4].mean()),
                "dissimilar_mean": float(cosines[gold <= 1].mean()), "seconds": seconds}

    per_epoch = len(graded[2]) // cfg.sts_batch
    total = per_epoch * epochs
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, 0, total, cfg))
    rows = [score(0, 0.0)]
    started = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for batch in graded_batches(len(graded[2]), cfg.sts_batch, cfg.seed + epoch):
            sts_step(model, optimizer, scheduler, graded, batch, cfg, device)
        rows.append(score(epoch + 1, time.perf_counter() - started))
    return {"model": model_dir, "sts_loss": cfg.sts_loss, "sts_lr": cfg.sts_lr,
            "sts_batch": cfg.sts_batch, "epochs": rows, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained model folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="train.sts_loss, train.sts_lr, train.sts_batch, train.seed ...")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from semsearch.encoder.presets import parse_set_options

    result = probe(args.model, args.epochs, parse_set_options(tuple(args.set)), args.data_dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['model']}: STS-B stage, loss {result['sts_loss']}, lr {result['sts_lr']}, "
          f"{result['sts_batch']} pairs a step")
    print("epoch | STS-B dev | dev similar mean | dev dissimilar mean | seconds")
    print("---|---|---|---|---")
    for r in result["epochs"]:
        print(f"{r['epoch']} | {r['stsb_dev_spearman']:.2f} | {r['similar_mean']:.3f} | "
              f"{r['dissimilar_mean']:.3f} | {r['seconds']:.0f}")
    print(f"\n{torch.get_num_threads()} threads, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
