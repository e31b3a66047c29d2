"""Training throughput on 1 and N processes (torchrun, DDP): steps/s and pairs/s of the real
training step on a preset's real batches, and what each step communicates.

Each process count runs under `torchrun --nproc-per-node N` (gloo on CPU, NCCL on CUDA): the
global batch stays the preset's, split over the ranks, so pairs/s is comparable across N. After
`--warmup` steps, `--steps` steps are timed on rank 0 (the ranks move in lockstep).

    python bench/bench_ddp.py --preset tiny --processes 1 2 --steps 10
    python bench/bench_ddp.py --preset quick --processes 1 2 --steps 3 --json

The table also gives the bytes a step moves per rank: the gradient all-reduce (ring: about
2 (N-1)/N x 4 bytes x parameters) and the embedding all-gather ((N-1)/N x the global batch's
positive and negative vectors, and their gradients back), next to the step's compute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """One rank: build the preset's data and model, time `steps` training steps."""
    from semsearch.data import build_mixture
    from semsearch.encoder import distributed
    from semsearch.encoder.batching import plan_batches
    from semsearch.encoder.model import Encoder
    from semsearch.encoder.presets import apply_overrides, preset
    from semsearch.encoder.tokenizer import Tokenizer
    from semsearch.encoder.train_data import batch_keys, tokenize
    from semsearch.encoder.train_steps import distributed_model, make_optimizer, train_step

    config = apply_overrides(preset(args.preset), dict(s.split("=", 1) for s in args.set))
    cfg = config.train
    ranks = distributed.ranks_from_environment()
    device = distributed.start(ranks, torch.device(args.device))
    torch.manual_seed(cfg.seed)
    pairs, _ = build_mixture(config.data, args.data_dir, seed=cfg.seed)
    texts = [t for p in pairs for t in (p.anchor, p.positive, p.negative) if t]
    tokenizer = Tokenizer.train(texts, config.tokenizer.vocab_size, config.tokenizer.lowercase)
    model_config = replace(config.model, vocab_size=tokenizer.vocab_size)
    model = Encoder(model_config).to(device)
    net = distributed_model(model, ranks, device)
    examples = tokenize(pairs, tokenizer, model_config.max_seq_len)
    batches = plan_batches(batch_keys(pairs), cfg.batch_size, np.random.default_rng(cfg.seed))
    needed = args.warmup + args.steps
    batches = (batches * (needed // max(1, len(batches)) + 1))[:needed]
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    times = []
    for number, batch in enumerate(batches):
        distributed.barrier(ranks)
        started = time.perf_counter()
        train_step(net, optimizer, scheduler, examples, batch, cfg, device, None, ranks=ranks)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if number >= args.warmup:
            times.append(time.perf_counter() - started)
    parameters = sum(p.numel() for p in model.parameters())
    negatives = float(np.mean([sum(examples[2][i] is not None for i in b) for b in batches]))
    result = {
        "preset": args.preset, "processes": ranks.world, "device": device.type,
        "global_batch": cfg.batch_size, "local_batch": cfg.batch_size // ranks.world,
        "grad_cache_chunk": cfg.grad_cache_chunk, "steps": len(times),
        "median_step_s": float(np.median(times)), "steps_per_s": 1 / float(np.median(times)),
        "pairs_per_s": cfg.batch_size / float(np.median(times)),
        "parameters": parameters, "hidden": model_config.hidden,
        "mean_hard_negatives": negatives,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if ranks.main:
        Path(args.out_json).write_text(json.dumps(result))
    distributed.stop(ranks)


def communication(result: dict, world: int) -> dict:
    """Bytes each rank sends a step (float32): the ring all-reduce of the gradients, and the
    all-gather of the positives and hard negatives forward and of their gradients backward."""
    grad_bytes = 4 * result["parameters"]
    allreduce = 2 * (world - 1) / world * grad_bytes
    vectors = result["global_batch"] + result["mean_hard_negatives"]  # gathered rows
    gather = 2 * (world - 1) / world * 4 * vectors * result["hidden"]  # forward + backward
    return {"allreduce_mib": allreduce / 2**20, "gather_mib": gather / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads a process (default: the cores / processes)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    rows = []
    for count in args.processes:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "result.json"
            command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                       str(count), "--standalone", str(Path(__file__).resolve()),
                       "--worker", "--out-json", str(out), "--preset", args.preset,
                       "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--device", args.device]
            for setting in args.set:
                command += ["--set", setting]
            if args.data_dir:
                command += ["--data-dir", args.data_dir]
            # each rank gets an equal share of the cores (torchrun would give 1 thread each)
            threads = args.threads or max(1, (os.cpu_count() or 1) // count)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads),
                   "PYTHONPATH": os.pathsep.join(p for p in (str(REPO),
                                                             os.environ.get("PYTHONPATH")) if p)}
            subprocess.run(command, check=True, env=env)
            row = json.loads(out.read_text())
        row["threads_per_process"] = threads
        row.update(communication(row, count))
        rows.append(row)
    base = rows[0]["pairs_per_s"]
    for row in rows:
        row["pairs_per_s_vs_first"] = row["pairs_per_s"] / base
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "rows": rows}))
        return
    print(f"{'preset':8} {'procs':>5} {'thr':>4} {'batch':>6} {'step s':>8} {'steps/s':>8} "
          f"{'pairs/s':>8} {'x first':>7} {'allreduce MiB':>13} {'gather MiB':>10} {'RSS MiB':>8}")
    for row in rows:
        print(f"{row['preset']:8} {row['processes']:>5} {row['threads_per_process']:>4} "
              f"{row['global_batch']:>6} {row['median_step_s']:>8.3f} {row['steps_per_s']:>8.2f} "
              f"{row['pairs_per_s']:>8.0f} {row['pairs_per_s_vs_first']:>7.2f} "
              f"{row['allreduce_mib']:>13.2f} {row['gather_mib']:>10.2f} "
              f"{row['peak_rss_mib']:>8.0f}")


if __name__ == "__main__":
    main()
