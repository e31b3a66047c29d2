"""Training steps with and without `reuse_freed_memory` (semsearch/encoder/heap.py), in one run.

    python bench/probes/bench_heap.py --rounds 2 --steps 6 --json

Each round runs two fresh processes, the setting off then on. Each process times `--steps`
InfoNCE steps at the quick preset's shape (hidden 256, 4 layers, ff 1024, batch 512 pairs;
anchors of 6-24 tokens, positives up to 64, two in three at the full window, as the `search`
mixture's passages are) and reports the median step after the first, the minor page faults and
the kernel CPU seconds. The token ids are random: this measures the allocator, not quality.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time


def child(reuse: bool, steps: int) -> dict:
    import random

    import torch

    from semsearch.encoder.heap import reuse_freed_memory
    from semsearch.encoder.loss import info_nce
    from semsearch.encoder.model import Encoder, EncoderConfig

    torch.manual_seed(0)
    rng = random.Random(0)
    model = Encoder(EncoderConfig(vocab_size=8000, hidden=256, layers=4, heads=4, ff=1024,
                                  max_seq_len=64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pairs = 512

    def batch() -> list[list[int]]:
        anchors = [[rng.randrange(5, 8000) for _ in range(rng.randint(6, 24))] for _ in range(pairs)]
        positives = [[rng.randrange(5, 8000) for _ in range(rng.choice([rng.randint(10, 30), 64, 64]))]
                     for _ in range(pairs)]
        return anchors + positives

    times = []
    with (reuse_freed_memory() if reuse else contextlib.nullcontext(False)) as applied:
        before = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(steps):
            sequences = batch()
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            vectors = model.encode_packed(sequences, 8).float()
            info_nce(vectors[:pairs], vectors[pairs:], None, 20.0, True).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
    return {"reuse": reuse, "applied": bool(applied), "step_s": statistics.median(times[1:]),
            "minor_faults": after.ru_minflt - before.ru_minflt,
            "kernel_s": after.ru_stime - before.ru_stime, "user_s": after.ru_utime - before.ru_utime,
            "peak_rss_mib": after.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "on", args.steps)))
        return
    rows = []
    for round_ in range(args.rounds):
        for mode in ("off", "on"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--steps", str(args.steps)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append({"round": round_ + 1, **json.loads(out.strip().splitlines()[-1])})
    print("round | reuse | median step s | minor faults | kernel s | user s | peak RSS MiB")
    for r in rows:
        print(f"{r['round']} | {'on' if r['reuse'] else 'off'}{'' if r['applied'] or not r['reuse'] else ' (n/a)'} | "
              f"{r['step_s']:.2f} | {r['minor_faults']:,} | {r['kernel_s']:.1f} | {r['user_s']:.1f} | "
              f"{r['peak_rss_mib']:.0f}")
    ratios = [off["step_s"] / on["step_s"] for off, on in zip(rows[::2], rows[1::2], strict=True)]
    print("step time off / on, per round: " + ", ".join(f"{x:.2f}x" for x in ratios))
    if args.json:
        print(json.dumps({"rows": rows, "ratios": ratios}))


if __name__ == "__main__":
    main()
