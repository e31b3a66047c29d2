"""Training static models (encoder/static.py): distilled from a teacher on unlabelled text, or
from scratch with InfoNCE on pairs.

Distilled (`semsearch distill --preset static --teacher DIR`), in two stages:

1. Model2Vec's start: every vocabulary token of the teacher's tokenizer through the teacher
   alone (`[CLS] token [SEP]`), the rows reduced to `hidden` by the principal axes of the
   teacher's text vectors, each token weighted by its SIF weight (encoder/static.py).
2. Tokenlearn's fit: the table and the weights trained so the student's vector of each text
   matches the teacher's (cosine loss by default), on the unlabelled texts of
   data/unlabelled.py. The teacher's vectors are centred and reduced to `hidden` by the same
   principal axes (a student narrower than its teacher learns the teacher's main directions;
   centring removes the direction every text shares, which cosine search cannot use).

From scratch (`semsearch train --preset static`): a random table over a WordPiece vocabulary
learned on the pairs, trained with symmetric InfoNCE on large batches of the pair mixture, which
cost little without a transformer.

Both write the model folder format every command reads, under `<out>.partial/` first; a killed
run keeps its last epoch's checkpoint there for `--resume` (and the teacher's vectors stay in
their cache, encoder/teacher.py).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semsearch import __version__
from semsearch.encoder.heap import reuse_freed_memory
from semsearch.encoder.static import (
    KIND,
    StaticConfig,
    save_static,
    sif_from_counts,
    sif_weights,
    static_module,
)
from semsearch.encoder.store import (
    CONFIG,
    FORMAT_VERSION,
    HISTORY,
    TOKENIZER,
    WEIGHTS,
    check_model_replaceable,
    publish,
    write_json,
)
from semsearch.errors import ConfigError, DataError
from semsearch.progress import Meter, sliced

Log = Callable[[str], None]
CHECKPOINT = "checkpoint"
LOSSES = ("cosine", "mse", "infonce")


@dataclass(frozen=True)
class StaticTrainConfig:
    # width of the student's vectors; at most the teacher's (its principal axes). The teacher's
    # own width measured best with extra_vocab (docs/results.md, Training)
    hidden: int = 384
    # tokens of a text that count (the student has no attention: any window costs the same)
    max_seq_len: int = 512
    # passes over the texts (distillation) or pairs (from scratch)
    epochs: int = 4
    # texts (pairs) per step
    batch_size: int = 256
    # Adam's learning rate, cosine-decayed to lr/10 over the run
    lr: float = 2e-3
    # cosine: 1 - cos(student, teacher); mse: squared distance of the unit vectors (the same
    # ranking up to scale); infonce: each text's teacher vector against the batch's others
    # (from scratch: always infonce over the pairs)
    loss: str = "cosine"
    # InfoNCE's 1/temperature
    scale: float = 20.0
    # texts held out to score each epoch (best epoch kept)
    val_texts: int = 2000
    # from scratch: vocabulary learned on the pairs
    vocab_size: int = 30_000
    # distilled: whole words of the texts that the teacher's tokenizer splits into pieces, added
    # to the student's vocabulary (the most frequent first; each starts from the teacher's vector
    # of the word), so "backpropagation" is one row rather than four ambiguous pieces
    extra_vocab: int = 20_000
    # the tokens' starting weights: SIF of their frequency in the training texts ("counts") or
    # of Zipf's estimate from the vocabulary order ("zipf", Model2Vec's); learned from there
    weights: str = "counts"
    # distilled: tokens the fit text holds fewer than this many times keep their distilled row
    # and weight (a few contexts would move them far: Adam's steps do not shrink with a rare
    # token's small gradient), so words the text never shows in context (code, names of other
    # fields) keep what the teacher said of them in isolation. 0: every token is fitted
    keep_rare: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.keep_rare < 0:
            raise ValueError(f"keep_rare {self.keep_rare} is a count of occurrences >= 0")
        if self.weights not in ("counts", "zipf"):
            raise ValueError(f"weights {self.weights!r} is not counts or zipf")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        if self.hidden < 2 or self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError("hidden >= 2, epochs >= 1, batch_size >= 2 and lr > 0 are needed")

    @classmethod
    def with_overrides(cls, values: dict[str, str]) -> StaticTrainConfig:
        """Apply `--set key=value` pairs (static models take these keys, no section)."""
        return with_settings(cls(), values, "static", "a static model", (
            " (transformer settings such as model.layers do not apply)"))


def with_settings(config, values: dict[str, str], section_name: str, what: str, note: str = ""):
    """`config` (a frozen dataclass) with `--set key=value` pairs applied, each coerced to its
    field's type; a key of no field (bare, or `section_name.key`) is one ConfigError naming
    `what` and every key it takes."""
    known = {f.name for f in fields(config)}
    for key, raw in values.items():
        section, _, name = key.rpartition(".")
        if section not in ("", section_name) or name not in known:
            raise ConfigError(f"{what} has no setting {key!r}; it takes "
                              f"{', '.join(sorted(known))}{note}")
        kind = type(getattr(config, name))
        try:
            value = kind(raw) if kind is not bool else raw.lower() in ("1", "true", "yes")
            config = replace(config, **{name: value})
        except ValueError as error:
            raise ConfigError(f"--set {key}={raw}: {error}") from None
    return config


def prepare_out(out: Path, resume: bool, overwrite: bool) -> Path:
    """The partial folder to write into (made here; kept on resume)."""
    partial = out.with_name(out.name + ".partial")
    if resume:
        if not (partial / CHECKPOINT / "loop.json").is_file():
            raise ConfigError(f"nothing to resume: no checkpoint in {partial}; start without "
                              "--resume")
        return partial
    if (out / CONFIG).exists() and not overwrite:
        raise ConfigError(f"{out} already holds a model; pass --overwrite to replace it or "
                          "--out to choose another folder")
    if out.exists() and not (out / CONFIG).exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a model folder; choose another --out")
    check_model_replaceable(out)
    if partial.exists():
        if not overwrite and (partial / CHECKPOINT).exists():
            raise ConfigError(f"an interrupted run is in {partial}; continue it with --resume "
                              "or start over with --overwrite")
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


# -- stage 1: Model2Vec's start ----------------------------------------------------------------

_token_vectors: dict[str, np.ndarray] = {}  # fingerprint -> table: one per process and teacher


@torch.inference_mode()
def teacher_token_vectors(teacher: Path, batch: int = 2048) -> np.ndarray:
    """(vocab, teacher dim): each token id alone through the teacher, `[CLS] id [SEP]`."""
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    encoder = SentenceEncoder.load(teacher, device="cpu")
    if encoder.fingerprint not in _token_vectors:
        _token_vectors[encoder.fingerprint] = _token_vectors_of(encoder, batch)
    return _token_vectors[encoder.fingerprint]


def _token_vectors_of(encoder, batch: int) -> np.ndarray:
    if getattr(encoder, "kind", "transformer") == KIND:
        return encoder.table / np.maximum(np.linalg.norm(encoder.table, axis=1, keepdims=True),
                                          1e-12)
    vocab = encoder.tokenizer.inner
    cls_id, sep_id = vocab.token_to_id("[CLS]"), vocab.token_to_id("[SEP]")
    size = encoder.model.config.vocab_size
    out = np.zeros((size, encoder.dim), dtype=np.float32)
    for start in range(0, size, batch):
        ids = torch.arange(start, min(size, start + batch))
        seq = torch.stack([torch.full_like(ids, cls_id if cls_id is not None else 0), ids,
                           torch.full_like(ids, sep_id if sep_id is not None else 0)], 1)
        out[start:start + len(ids)] = encoder.model(seq, torch.ones_like(seq)).numpy()
    return out


def extend_vocabulary(tokenizer, texts: list[str], count: int):
    """(tokenizer, added words): `tokenizer` with the `count` most frequent whole words of
    `texts` (seen at least 5 times) that it splits into pieces added to its WordPiece
    vocabulary; WordPiece's longest match then takes the whole word."""
    from collections import Counter

    from tokenizers import Tokenizer as HFTokenizer

    from semsearch.encoder.tokenizer import Tokenizer

    inner = tokenizer.inner
    normalise, split = inner.normalizer, inner.pre_tokenizer
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in split.pre_tokenize_str(normalise.normalize_str(text)))
    vocab = inner.get_vocab()
    words = [w for w, n in counts.most_common() if n >= 5 and w not in vocab and len(w) > 1
             and w.isalpha() and len(inner.encode(w, add_special_tokens=False).ids) > 1][:count]
    spec = json.loads(inner.to_str())
    size = inner.get_vocab_size()
    for i, word in enumerate(words):
        spec["model"]["vocab"][word] = size + i
    return Tokenizer(HFTokenizer.from_str(json.dumps(spec))), words


def _word_vectors(teacher: Path, words: list[str]) -> np.ndarray:
    """The teacher's vector of each word alone (its pieces between [CLS] and [SEP])."""
    from semsearch.encoder.onnx_encoder import fastest_agreeing

    encoder, _ = fastest_agreeing(teacher, words, lambda _m: None, "teacher")
    return np.asarray(encoder.encode(words, batch_size=256), dtype=np.float32)


def principal_axes(vectors: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), axes (d, width)) of `vectors`: the top `width` principal directions."""
    mean = vectors.mean(0)
    centred = (vectors - mean).astype(np.float64)
    covariance = centred.T @ centred / max(1, len(vectors) - 1)
    values, axes = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1][:width]
    return mean.astype(np.float32), np.ascontiguousarray(axes[:, order], dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# -- stage 2: the fit --------------------------------------------------------------------------

def _flat(ids: list[list[int]], rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbeddingBag input of the texts `rows`: flat ids and each text's offset."""
    seqs = [ids[i] for i in rows]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    offsets = torch.zeros(len(seqs), dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)[:-1]
    flat = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
    return flat, offsets


def _loss(student: torch.Tensor, target: torch.Tensor, kind: str, scale: float) -> torch.Tensor:
    if kind == "cosine":
        return (1 - (student * target).sum(-1)).mean()
    if kind == "mse":
        return ((student - target) ** 2).sum(-1).mean()
    logits = scale * student @ target.T  # (B, B): each text against every teacher vector
    labels = torch.arange(len(student))
    return torch.nn.functional.cross_entropy(logits, labels)


def fit(module, ids: list[list[int]], targets: np.ndarray, config: StaticTrainConfig,
        partial: Path, log: Log, progress: bool, resume: bool) -> list[dict[str, Any]]:
    """Fit `module` so its vector of text i matches targets[i] (unit rows); the best epoch's
    tensors are left in `module`. Returns the history (one record an epoch)."""
    rng = np.random.default_rng(config.seed)
    # texts with no token say nothing to a static model: leave them out
    usable = np.array([i for i, s in enumerate(ids) if s], dtype=np.int64)
    order = rng.permutation(usable)
    val = order[: min(config.val_texts, len(order) // 10)]
    train = order[len(val):]
    if not len(train):
        raise DataError("no text with a known token to distil on")
    target = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    optimizer, schedule, history, best, first_epoch = _start(
        module, config, steps_per_epoch * config.epochs, partial, log, resume)
    for epoch in range(first_epoch, config.epochs):
        started = time.perf_counter()
        perm = np.random.default_rng(config.seed + 1 + epoch).permutation(train)
        module.train()
        losses = []
        bar = Meter(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", log, progress, "step")
        for start in range(0, len(perm), config.batch_size):
            rows = perm[start:start + config.batch_size]
            flat, offsets = _flat(ids, rows)
            loss = _loss(module(flat, offsets), target[rows], config.loss, config.scale)
            losses.append(_step(optimizer, schedule, loss))
            bar.update(1)
        bar.close()
        module.eval()
        with torch.no_grad():
            flat, offsets = _flat(ids, val)
            val_cos = float((module(flat, offsets) * target[val]).sum(-1).mean()) if len(val) else 0.0
        record = {"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 5),
                  "val_cosine": round(val_cos, 5),
                  "seconds": round(time.perf_counter() - started, 1)}
        history.append(record)
        log(f"epoch {epoch + 1}  train_loss {record['train_loss']:.4f}  "
            f"val_cosine {val_cos:.4f}  {record['seconds']:.0f}s")
        if best is None or val_cos > best["val_cosine"] or not len(val):  # no held-out: last
            best = {**record, "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}
        _save_checkpoint(partial, module, optimizer, schedule, history, best)
    module.load_state_dict(best["state"])
    return history


def _start(module, config: StaticTrainConfig, total: int, partial: Path, log: Log,
           resume: bool):
    """(optimizer, schedule, history, best, first epoch): Adam at config.lr, cosine-decayed to
    a tenth over `total` steps; on resume, all of them as the last checkpoint left them."""
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    if not resume:
        return optimizer, schedule, [], None, 0
    history, best, first_epoch = _load_checkpoint(partial, module, optimizer, schedule)
    log(f"resuming after epoch {first_epoch} of {config.epochs}")
    return optimizer, schedule, history, best, first_epoch


def _step(optimizer, schedule, loss: torch.Tensor) -> float:
    """One optimiser step on `loss`; returns its value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.item()


def _save_checkpoint(partial: Path, module, optimizer, schedule, history, best) -> None:
    from safetensors.torch import save_file

    folder = partial / CHECKPOINT
    folder.mkdir(exist_ok=True)
    tensors = {f"model.{k}": v.contiguous() for k, v in module.state_dict().items()}
    tensors.update({f"best.{k}": v.contiguous() for k, v in best["state"].items()})
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"adam.{i}.{name}"] = torch.as_tensor(value).contiguous()
    tmp = folder / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(folder / "state.safetensors")
    write_json(folder / "loop.json", {
        "history": history, "best": {k: v for k, v in best.items() if k != "state"},
        "schedule": schedule.state_dict()["last_epoch"]})


def _load_checkpoint(partial: Path, module, optimizer, schedule):
    from safetensors.torch import load_file

    folder = partial / CHECKPOINT
    loop = json.loads((folder / "loop.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "state.safetensors"))
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    schedule.last_epoch = loop["schedule"]
    for group, factor in zip(optimizer.param_groups, schedule.lr_lambdas, strict=True):
        group["lr"] = group["initial_lr"] * factor(schedule.last_epoch)
    best = {**loop["best"], "state": {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}}
    return loop["history"], best, len(loop["history"])


def distill_static(teacher: str | Path, out: str | Path, config: StaticTrainConfig,
                   texts: list[str], text_counts: dict[str, int], resume: bool = False,
                   overwrite: bool = False, progress: bool = True,
                   log: Log = print, vectors: np.ndarray | None = None) -> dict[str, Any]:
    """Distil a static model from `teacher` on `texts`; write the model folder `out`.
    `vectors`: the teacher's vectors of `texts` when the caller has them (benchmarks)."""
    from semsearch.encoder.store import read_config, resolve_model
    from semsearch.encoder.teacher import teacher_vectors
    from semsearch.encoder.tokenizer import Tokenizer

    started = time.perf_counter()
    out, teacher = Path(out), resolve_model(teacher)
    partial = prepare_out(out, resume, overwrite)
    try:
        if vectors is None:
            vectors, teacher_summary = teacher_vectors(teacher, texts, log, progress)
        else:
            teacher_summary = {"path": "given", "texts": len(texts), "encoded": 0, "seconds": 0}
        if not np.isfinite(vectors).all():
            raise DataError(f"teacher {teacher} gave non-finite vectors; check the teacher model")
        width = vectors.shape[1]
        if config.hidden > width:
            raise ConfigError(f"a static student of hidden {config.hidden} is wider than its "
                              f"teacher's {width}-dim vectors; use --set hidden={width} or less")
        # a teacher whose vectors are not unit length still gives unit targets
        mean, axes = principal_axes(_unit(vectors), config.hidden)
        targets = _unit((_unit(vectors) - mean) @ axes)
        tokenizer = Tokenizer.load(teacher / TOKENIZER)
        tokens = teacher_token_vectors(teacher)
        added = 0
        if config.extra_vocab:
            tokenizer, words = extend_vocabulary(tokenizer, texts, config.extra_vocab)
            if words:
                tokens = np.concatenate([tokens, _word_vectors(teacher, words)])
            added = len(words)
        log(f"student: static, {tokenizer.vocab_size:,} tokens x {config.hidden} "
            f"(the teacher's vocabulary" + (f" + {added:,} whole words" if added else "")
            + f"; its top {config.hidden} principal axes keep "
            f"{_kept(vectors, mean, axes):.0%} of the variance of its vectors)")
        table = (_unit(tokens) - mean) @ axes
        ids = _token_ids(tokenizer, texts, config.max_seq_len, log)
        module = static_module(table, _start_weights(config, ids, len(table)))
        if config.keep_rare:
            rare = keep_rare_tokens(module, ids, config.keep_rare)
            log(f"{rare:,} of {len(table):,} tokens seen fewer than {config.keep_rare} times in "
                "the text keep their distilled start")
        with reuse_freed_memory():  # each step reuses the last one's gradient buffers
            history = fit(module, ids, targets, config, partial, log, progress, resume)
        teacher_config = read_config(teacher)
        run = {"kind": "distilled", "teacher": str(teacher),
               "teacher_fingerprint": teacher_summary, "texts": text_counts,
               "train": asdict(config)}
        _write_folder(partial, module, tokenizer, config, run, history,
                      teacher_config.get("model", {}))
        publish(partial, out, overwrite)
    except BaseException:
        if not (partial / CHECKPOINT / "loop.json").is_file():
            shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"model": str(out), "kind": KIND, "hidden": config.hidden,
            "vocab_size": tokenizer.vocab_size, "texts": len(texts), "teacher": teacher_summary,
            "history": history, "seconds": round(time.perf_counter() - started, 1)}


def keep_rare_tokens(module, ids: list[list[int]], fewer_than: int) -> int:
    """Hold the rows and weights of tokens seen fewer than `fewer_than` times in `ids` where
    they are (their gradients masked to zero, so Adam never moves them); returns how many.

    >>> import numpy as np; from semsearch.encoder.static import static_module
    >>> module = static_module(np.eye(3, dtype=np.float32), np.ones(3, dtype=np.float32))
    >>> keep_rare_tokens(module, [[0, 0, 1]], 2)
    2
    """
    size = module.embedding.shape[0]
    counts = np.bincount(np.fromiter((t for s in ids for t in s), dtype=np.int64),
                         minlength=size)[:size]
    fitted = torch.from_numpy((counts >= fewer_than).astype(np.float32))
    module.embedding.register_hook(lambda grad: grad * fitted[:, None])
    module.weight.register_hook(lambda grad: grad * fitted)
    return int(size - fitted.sum().item())


def _start_weights(config: StaticTrainConfig, ids: list[list[int]], size: int) -> np.ndarray:
    return sif_from_counts(ids, size) if config.weights == "counts" else sif_weights(size)


def _kept(vectors: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> float:
    centred = _unit(vectors) - mean
    total = float((centred ** 2).sum())
    return float(((centred @ axes) ** 2).sum()) / total if total else 1.0


def _write_folder(partial: Path, module, tokenizer, config: StaticTrainConfig,
                  run: dict[str, Any], history: list[dict[str, Any]],
                  teacher_model: dict[str, Any] | None = None) -> None:
    table = module.embedding.detach().numpy()
    weight = module.weight.detach().numpy()
    model = StaticConfig(vocab_size=len(table), hidden=table.shape[1],
                         max_seq_len=config.max_seq_len)
    tokenizer.save(partial / TOKENIZER)
    save_static(partial, table, weight)
    write_json(partial / CONFIG, {
        "format_version": FORMAT_VERSION, "semsearch_version": __version__,
        "name": partial.name.removesuffix(".partial"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model.to_dict(), "run": run,
        "parameters": {"total": int(table.size + weight.size), "embedding": int(table.size)}})
    write_json(partial / HISTORY, history)
    from semsearch.model_card import write_model_card

    write_model_card(partial)
    shutil.rmtree(partial / CHECKPOINT, ignore_errors=True)


# -- from scratch: InfoNCE on pairs ------------------------------------------------------------

# the pairs a static model learns from: the search mixture with four times its Wikipedia-mined
# pairs, since a model this cheap overfits a few tens of thousands of pairs (every pair the
# articles give, 568,820, takes 2.5 min an epoch here: over the 5-minute budget)
STATIC_SOURCES = ("snli:dev", "stsb:train", "flickr30k@10000", "coco@5000", "quora", "mrpc",
                  "wikititle", "wikisection@40000", "wikiict@120000", "wikinext@40000")


# from scratch the table starts random, so it wants a higher rate than a distilled start, and
# large batches (more in-batch negatives) cost little without a transformer
SCRATCH_DEFAULTS = {"lr": "2e-2", "batch_size": "2048", "epochs": "3", "hidden": "256"}


def _pair_batches(pairs, batch_size: int, seed: int) -> list[np.ndarray]:
    """Shuffled batches in which no two pairs share a group (captions of one image, one
    premise): such a pair's positive would be another's negative. A pair that would is put in
    the next batch."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    batches, current, groups, waiting = [], [], set(), []
    for i in order.tolist():
        group = pairs[i].group
        if group and group in groups:
            waiting.append(i)
            continue
        current.append(i)
        if group:
            groups.add(group)
        if len(current) == batch_size:
            batches.append(np.array(current))
            current, groups = [], set()
            retry, waiting = waiting, []
            for j in retry:
                g = pairs[j].group
                if g and g in groups:
                    waiting.append(j)
                else:
                    current.append(j)
                    if g:
                        groups.add(g)
    if len(current) >= 2:
        batches.append(np.array(current))
    return batches


def train_static(out: str | Path, config: StaticTrainConfig, sources: tuple[str, ...],
                 data_dir, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, log: Log = print,
                 init: Path | None = None) -> dict[str, Any]:
    """A static model from scratch: a WordPiece vocabulary learned on the pairs' texts, a random
    table, symmetric InfoNCE over in-batch negatives (`scale` = 1/temperature). With `init` (a
    static model folder), its tokenizer, table and weights are the start instead (`adapt`)."""
    from semsearch.data.mixture import MixtureConfig, build_mixture
    from semsearch.encoder.tokenizer import Tokenizer

    started = time.perf_counter()
    out = Path(out)
    partial = prepare_out(out, resume, overwrite)
    try:
        pairs, report = build_mixture(MixtureConfig(sources=sources, max_pairs=0), data_dir,
                                      config.seed, log)
        texts = list(dict.fromkeys(t for p in pairs for t in (p.anchor, p.positive)))
        if init is not None:
            tokenizer = Tokenizer.load(Path(init) / TOKENIZER)
        elif resume:
            tokenizer = Tokenizer.load(partial / TOKENIZER)
        else:
            began = time.perf_counter()
            tokenizer = Tokenizer.train(texts, config.vocab_size, log=log)
            log(f"tokenizer: {tokenizer.vocab_size:,} WordPiece tokens learned on "
                f"{len(texts):,} texts ({time.perf_counter() - began:.0f}s)")
        tokenizer.save(partial / TOKENIZER)
        log(f"training static from scratch: {len(pairs):,} pairs, {tokenizer.vocab_size:,} "
            f"tokens x {config.hidden}, batch {config.batch_size}, {config.epochs} epochs")
        index = {t: i for i, t in enumerate(texts)}
        ids = _token_ids(tokenizer, texts, config.max_seq_len, log)
        anchors = np.array([index[p.anchor] for p in pairs])
        positives = np.array([index[p.positive] for p in pairs])
        if init is not None:
            from safetensors.numpy import load_file

            tensors = load_file(str(Path(init) / WEIGHTS))
            module = static_module(tensors["embedding"], tensors["weight"])
            config = replace(config, hidden=int(tensors["embedding"].shape[1]))
        else:
            rng = np.random.default_rng(config.seed)
            table = rng.normal(0, 1 / math.sqrt(config.hidden),
                               (tokenizer.vocab_size, config.hidden)).astype(np.float32)
            module = static_module(table, _start_weights(config, ids, tokenizer.vocab_size))
        with reuse_freed_memory():
            history = _fit_pairs(module, ids, pairs, anchors, positives, config, partial, log,
                                 progress, resume)
        run = {"kind": "from scratch" if init is None else "adapted", "sources": list(sources),
               "data_report": report, "train": asdict(config),
               **({"init_from": str(init)} if init is not None else {})}
        _write_folder(partial, module, tokenizer, config, run, history)
        publish(partial, out, overwrite)
    except BaseException:
        if not (partial / CHECKPOINT / "loop.json").is_file():
            shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"model": str(out), "kind": KIND, "hidden": config.hidden, "pairs": len(pairs),
            "vocab_size": tokenizer.vocab_size, "history": history,
            "seconds": round(time.perf_counter() - started, 1)}


def _token_ids(tokenizer, texts: list[str], max_len: int, log: Log,
               slice: int = 32768) -> list[list[int]]:
    """Every text's token ids (no specials, cut at `max_len`), a slice at a time on a meter:
    400,000 texts take half a minute on two cores."""
    ids: list[list[int]] = []
    with Meter(len(texts), "token ids", log) as meter:
        for part in sliced(texts, slice, meter):
            ids.extend(e.ids[:max_len] for e in
                       tokenizer.inner.encode_batch_fast(part, add_special_tokens=False))
    return ids


def _fit_pairs(module, ids, pairs, anchors, positives, config: StaticTrainConfig,
               partial: Path, log: Log, progress: bool, resume: bool) -> list[dict[str, Any]]:
    first = _pair_batches(pairs, config.batch_size, config.seed)
    optimizer, schedule, history, best, start_epoch = _start(
        module, config, len(first) * config.epochs, partial, log, resume)
    labels_cache: dict[int, torch.Tensor] = {}
    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        batches = first if epoch == 0 else _pair_batches(pairs, config.batch_size,
                                                         config.seed + epoch)
        module.train()
        losses = []
        bar = Meter(len(batches), f"epoch {epoch + 1}/{config.epochs}", log, progress, "step")
        for rows in batches:
            n = len(rows)
            flat, offsets = _flat(ids, np.concatenate([anchors[rows], positives[rows]]))
            vectors = module(flat, offsets)
            logits = config.scale * vectors[:n] @ vectors[n:].T  # (n, n) anchors x positives
            labels = labels_cache.setdefault(n, torch.arange(n))
            loss = (torch.nn.functional.cross_entropy(logits, labels)
                    + torch.nn.functional.cross_entropy(logits.T, labels)) / 2
            losses.append(_step(optimizer, schedule, loss))
            bar.update(1)
        bar.close()
        record = {"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 5),
                  "seconds": round(time.perf_counter() - began, 1)}
        # the last epoch is kept (no held-out pairs: the loss keeps falling while retrieval
        # still improves on these cheap models; measured in docs/results.md)
        history.append(record)
        log(f"epoch {epoch + 1}  train_loss {record['train_loss']:.4f}  {record['seconds']:.0f}s")
        best = {**record, "val_cosine": 0.0,
                "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}
        _save_checkpoint(partial, module, optimizer, schedule, history, best)
    return history
