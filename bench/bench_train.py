"""Training throughput of a preset on this machine: steps/s, tokens/s, GFLOP/s, peak memory.

Runs the real training step (`semsearch.encoder.train.train_step`) on real batches of the preset's
data mixture, after a few warm-up steps, and prints one table (and JSON with --json). A preset
with an STS-B stage also times that stage's step (`sts_step`) on STS-B train's graded pairs, and
the table estimates the whole run: epochs x steps x median step time, for both stages.

    python bench/bench_train.py --preset production --steps 20
    python bench/bench_train.py --preset quick --preset production --json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch


def measure(preset_name: str, steps: int, warmup: int, data_dir: str | None, overrides: dict):
    from semsearch.data import build_mixture
    from semsearch.encoder.batching import plan_batches
    from semsearch.encoder.device import pick_device
    from semsearch.encoder.model import Encoder
    from semsearch.encoder.presets import apply_overrides, preset
    from semsearch.encoder.tokenizer import Tokenizer
    from semsearch.encoder.train_data import (
        batch_keys,
        graded_batches,
        read_graded_rows,
        tokenize,
        tokenize_graded,
    )
    from semsearch.encoder.train_steps import make_optimizer, sts_step, train_step

    config = apply_overrides(preset(preset_name), overrides)
    cfg = config.train
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    pairs, _ = build_mixture(config.data, data_dir, seed=cfg.seed)
    started = time.perf_counter()
    texts = [t for p in pairs for t in (p.anchor, p.positive, p.negative) if t]
    tokenizer = Tokenizer.train(texts, config.tokenizer.vocab_size, config.tokenizer.lowercase)
    tokenizer_s = time.perf_counter() - started
    from dataclasses import replace

    model_config = replace(config.model, vocab_size=tokenizer.vocab_size)
    model = Encoder(model_config).to(device)
    examples = tokenize(pairs, tokenizer, model_config.max_seq_len)
    batches = plan_batches(batch_keys(pairs), cfg.batch_size, np.random.default_rng(cfg.seed))
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    times, real_tokens, padded_tokens = [], [], []
    for i, batch in enumerate(batches[: warmup + steps]):
        sequences = ([examples[0][j] for j in batch] + [examples[1][j] for j in batch]
                     + [examples[2][j] for j in batch if examples[2][j] is not None])
        seconds = _timed(device, train_step, model, optimizer, scheduler, examples, batch, cfg,
                         device)
        if i >= warmup:
            times.append(seconds)
            real_tokens.append(sum(map(len, sequences)))
            lengths = sorted(map(len, sequences))
            size = -(-len(lengths) // max(1, cfg.length_chunks))
            # padding now exists only inside attention (linear layers run packed)
            padded_tokens.append(sum(len(lengths[s: s + size]) * lengths[s: s + size][-1]
                                     for s in range(0, len(lengths), size)))
    sts = {}
    if cfg.sts_epochs:
        graded = tokenize_graded(read_graded_rows(data_dir, [], cfg.sts_batch, lambda _m: None),
                                  tokenizer, model_config.max_seq_len)
        sts_batches = graded_batches(len(graded[2]), cfg.sts_batch, cfg.seed)
        sts_times = []
        for i, batch in enumerate(sts_batches[: warmup + steps]):
            seconds = _timed(device, sts_step, model, optimizer, scheduler, graded, batch, cfg,
                             device)
            if i >= warmup:
                sts_times.append(seconds)
        sts = {"sts_step_s_median": statistics.median(sts_times),
               "sts_steps_per_epoch": len(sts_batches),
               "estimated_sts_stage_min": (cfg.sts_epochs * len(sts_batches)
                                           * statistics.median(sts_times) / 60)}
    counts = model.parameter_counts()
    step_s = statistics.median(times)
    # forward + backward ~ 6 FLOPs per non-embedding parameter per token (attention extra ignored)
    gflop_real = 6 * counts["other"] * statistics.median(real_tokens) / 1e9
    return {
        "preset": preset_name, "device": device.type, "threads": torch.get_num_threads(),
        "batch_size": cfg.batch_size, "steps_timed": len(times),
        "steps_per_s": 1 / step_s, "step_s_median": step_s,
        "real_tokens_per_s": statistics.median(real_tokens) / step_s,
        "padding_fraction": 1 - sum(real_tokens) / sum(padded_tokens),
        "gflop_per_step_real_tokens": gflop_real, "achieved_gflop_per_s": gflop_real / step_s,
        "parameters": counts, "tokenizer_train_s": tokenizer_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "estimated_epoch_min": len(batches) * step_s / 60, "steps_per_epoch": len(batches),
        "epochs": cfg.epochs, "sts_epochs": cfg.sts_epochs, **sts,
        "estimated_run_min": (cfg.epochs * len(batches) * step_s / 60
                              + sts.get("estimated_sts_stage_min", 0.0)),
    }


def _timed(device, step, *args) -> float:
    """Seconds one call of `step(*args)` takes, waiting for a GPU's queued work on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    step(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="preset(s) to measure (default quick, production)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from semsearch.encoder.presets import parse_set_options

    overrides = parse_set_options(tuple(args.set))
    rows = [measure(name, args.steps, args.warmup, args.data_dir, overrides)
            for name in args.preset or ["quick", "production"]]
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "torch": torch.__version__, "rows": rows}, indent=2))
        return
    header = ("preset", "device", "thr", "batch", "steps/s", "tokens/s", "attn pad %", "GFLOP/s",
              "peak RSS MiB", "epoch min", "STS-B stage min", "run min", "tok train s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(" | ".join([r["preset"], r["device"], str(r["threads"]), str(r["batch_size"]),
                          f"{r['steps_per_s']:.3f}", f"{r['real_tokens_per_s']:.0f}",
                          f"{100 * r['padding_fraction']:.0f}", f"{r['achieved_gflop_per_s']:.0f}",
                          f"{r['peak_rss_mib']:.0f}", f"{r['estimated_epoch_min']:.1f}",
                          f"{r.get('estimated_sts_stage_min', 0.0):.1f}",
                          f"{r['estimated_run_min']:.1f}",
                          f"{r['tokenizer_train_s']:.1f}"]))
    print(f"\n{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          "median over timed steps; tokens are real (unpadded) tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
