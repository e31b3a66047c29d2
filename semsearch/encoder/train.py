"""The training loop, top to bottom: config, device, data, tokenizer, model, optimiser,
schedule, epochs (train, validate, checkpoint), publish. The epochs are InfoNCE on the mixture's
pairs, then (`train.sts_epochs`) a graded loss on STS-B train's scored pairs.

`train_model` writes into `<out>.partial/` and renames it to `<out>` when done. After every
epoch — and on Ctrl-C, at the next step boundary — it saves a resumable checkpoint there
(weights, optimiser, scheduler, RNG, epoch and step), which `resume=True` continues exactly.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from semsearch import __version__
from semsearch.data import build_mixture, load_stsb, normalise, scored_training_pairs
from semsearch.data.records import ScoredPair, TrainingPair
from semsearch.encoder import distributed
from semsearch.encoder.batching import plan_batches
from semsearch.encoder.device import autocast, pick_device
from semsearch.encoder.distill import TeacherTargets, distill_loss, teacher_targets
from semsearch.encoder.distributed import SINGLE, RankLost, Ranks
from semsearch.encoder.heap import reuse_freed_memory
from semsearch.encoder.inference import embed
from semsearch.encoder.loss import cosent, cosine_regression, info_nce
from semsearch.encoder.model import Encoder
from semsearch.encoder.moe import take_routing
from semsearch.encoder.presets import RunConfig
from semsearch.encoder.schedule import warmup_cosine
from semsearch.encoder.store import (
    CONFIG,
    FINAL,
    FORMAT_VERSION,
    HISTORY,
    TOKENIZER,
    WEIGHTS,
    check_model_replaceable,
    load_weights,
    publish,
    read_config,
    save_weights,
    write_json,
)
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.errors import ConfigError, DataError, TrainingInterrupted
from semsearch.model_card import write_model_card

CHECKPOINT = "checkpoint"  # sub-folder of the partial folder holding the resumable state
Log = Callable[[str], None]


def train_model(
    config: RunConfig,
    out: Path,
    data_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log: Log = print,
    on_step: Callable[[int], bool] | None = None,
    init: Path | None = None,
) -> dict[str, Any]:
    """Train a sentence encoder and save it as the model folder `out`: from scratch, or, with
    `init` (a model folder whose model config `config.model` must match), continuing from its
    tokenizer and best weights (`semsearch adapt`).

    Returns a summary (best epoch and its STS-B dev Spearman, steps, seconds, paths). Raises
    ConfigError / DataError for bad input before any work, and TrainingInterrupted after saving a
    resumable checkpoint when stopped (Ctrl-C, or `on_step(step)` returning True).
    """
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    # under torchrun: one process of several (rank 0 logs and writes; see encoder/distributed.py)
    ranks = distributed.ranks_from_environment()
    device = distributed.start(ranks, pick_device(config.train.device))
    try:
        config, state = _prepare_on_main(config, out, partial, resume, overwrite, ranks)
        try:
            with reuse_freed_memory():  # each step reuses the last one's activations' memory
                return _run(config, state, out, partial, data_dir, progress and ranks.main,
                            log if ranks.main else _silent, on_step,
                            None if state is not None or init is None else Path(init), ranks,
                            device)
        except BaseException as error:
            # a run that never reached a checkpoint leaves nothing behind to resume or to block
            # the next run; one that did keeps its partial folder for --resume
            if ranks.main and not (partial / CHECKPOINT / "state.pt").exists():
                shutil.rmtree(partial, ignore_errors=True)
            if ranks.distributed and distributed.is_collective_failure(error):
                detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
                raise RankLost(
                    f"rank {ranks.rank}: another training process died or stopped answering "
                    f"({detail}); continue from the last checkpoint with the same torchrun "
                    f"command plus --resume (the checkpoint is in {partial})") from None
            raise
    finally:
        distributed.stop(ranks)


def _silent(_message: str) -> None:
    """The log of ranks other than 0."""


def _prepare_on_main(config, out: Path, partial: Path, resume: bool, overwrite: bool,
                     ranks: Ranks):
    """`_prepare_folder` on rank 0 alone (it may delete and create folders); its verdict, and on
    resume the saved config and state (read from the shared folder), on every rank."""
    if not ranks.distributed:
        return _prepare_folder(config, out, partial, resume, overwrite)
    message, prepared = None, (config, None)
    if ranks.main:
        try:
            prepared = _prepare_folder(config, out, partial, resume, overwrite)
        except ConfigError as error:
            message = str(error)
    message = distributed.error_from_main(message, ranks)
    if message is not None:
        raise ConfigError(message)
    if resume and not ranks.main:
        state_path = partial / CHECKPOINT / "state.pt"
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        prepared = (RunConfig.from_dict(read_config(partial)), state)
    return prepared


def _run(config, state, out: Path, partial: Path, data_dir, progress: bool, log: Log,
         on_step, init: Path | None = None, ranks: Ranks = SINGLE,
         device: torch.device | None = None) -> dict[str, Any]:
    """The body of `train_model`, once the output folder is settled."""
    cfg = config.train
    torch.manual_seed(cfg.seed)  # the same on every rank: the same initial weights
    device = device or pick_device(cfg.device)
    ranks.check_divides("train.batch_size", cfg.batch_size)
    if cfg.sts_epochs:
        ranks.check_divides("train.sts_batch", cfg.sts_batch)

    # data: the mixture, a group-disjoint validation split, STS-B dev for model selection
    pairs, report = build_mixture(config.data, data_dir, seed=cfg.seed)
    train_pairs, val_pairs = _split_validation(pairs, config.data.val_pairs, cfg.seed)
    if len(train_pairs) < cfg.batch_size:
        raise ConfigError(f"batch size {cfg.batch_size} is larger than the {len(train_pairs)} "
                          "training pairs; lower train.batch_size or add data")
    stsb_dev = _stsb_dev(data_dir, cfg.eval_limit, log)
    graded_rows = _graded_rows(data_dir, val_pairs, cfg.sts_batch, log) if cfg.sts_epochs else []

    # tokenizer: learned from the training sentences (kept as-is on resume; the init model's)
    if init is not None:
        tokenizer = Tokenizer.load(init / TOKENIZER)
        tokenizer.save(partial / TOKENIZER)
    elif state is None:  # trained once, on rank 0, and handed to the other ranks
        tokenizer = None
        if ranks.main:
            texts = [t for p in train_pairs for t in (p.anchor, p.positive, p.negative) if t]
            tokenizer = Tokenizer.train(texts, config.tokenizer.vocab_size,
                                        config.tokenizer.lowercase)
            tokenizer.save(partial / TOKENIZER)
        tokenizer = _tokenizer_from_main(tokenizer, ranks)
        config = replace(config, model=replace(config.model, vocab_size=tokenizer.vocab_size))
    else:
        tokenizer = Tokenizer.load(partial / TOKENIZER)

    model = Encoder(config.model).to(device)
    if init is not None:  # resume reloads the checkpoint instead, below
        model.load_state_dict(load_weights(init / WEIGHTS))
    counts = model.parameter_counts()
    examples = _tokenize(train_pairs, tokenizer, config.model.max_seq_len)
    graded = _tokenize_graded(graded_rows, tokenizer, config.model.max_seq_len)
    val_examples = _tokenize(val_pairs, tokenizer, config.model.max_seq_len)
    # distillation: the teacher's vector of every training text (computed once, cached; under
    # torchrun rank 0 fills the cache while the others wait, then they read it)
    targets = None
    if cfg.teacher:
        if not ranks.main:
            distributed.barrier(ranks)
        targets = teacher_targets(cfg.teacher, train_pairs, config.model.hidden, log)
        if ranks.main:
            distributed.barrier(ranks)
    keys = _batch_keys(train_pairs)
    first_plan = plan_batches(keys, cfg.batch_size, np.random.default_rng(cfg.seed))
    total_steps = len(first_plan) * cfg.epochs + len(graded[2]) // cfg.sts_batch * cfg.sts_epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    stage_one = min(total_steps, len(first_plan) * cfg.epochs)  # the InfoNCE steps
    optimizer = _optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, stage_one, total_steps, cfg))

    if ranks.rank:  # dropout draws differ between ranks (rank 0 keeps a single run's stream)
        torch.manual_seed(cfg.seed + ranks.rank)
    net = _distributed_model(model, ranks, device)  # the model as the steps call it
    meta = {"format_version": FORMAT_VERSION, "package_version": __version__, "name": out.name,
            **config.to_dict(), "parameters": counts, "data_report": report,
            "train_pairs": len(train_pairs), "val_pairs": len(val_pairs),
            **({"init_from": str(init)} if init is not None else {})}
    loop = LoopState()
    if state is None:
        if ranks.main:
            write_json(partial / CONFIG, meta)
    else:
        model.load_state_dict(load_weights(partial / CHECKPOINT / WEIGHTS))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        loop = LoopState.from_checkpoint(state)
        log(f"resuming at epoch {loop.epoch + 1}, step {loop.step} of {total_steps}")

    log(f"training {out.name}: {len(train_pairs):,} pairs ({len(val_pairs):,} held out), "
        f"{_human(counts['total'])} parameters ({_human(counts['embedding'])} embedding, "
        f"{_human(counts['other'])} other), {total_steps} steps on {device.type}"
        + (f", {ranks.world} processes" if ranks.distributed else ""))

    stop_requested = _StopFlag()
    clock = _Clock(loop.elapsed)
    last_save = time.perf_counter()

    def checkpoint() -> None:
        loop.elapsed = clock.elapsed()
        if ranks.main:
            save_checkpoint(partial / CHECKPOINT, model, optimizer, scheduler, loop)

    with stop_requested.installed():
        while loop.epoch < cfg.epochs + cfg.sts_epochs and loop.step < total_steps:
            sts_stage = loop.epoch >= cfg.epochs
            if sts_stage:
                batches = _graded_batches(len(graded[2]), cfg.sts_batch, cfg.seed + loop.epoch)
            else:
                batches = first_plan if loop.epoch == 0 else plan_batches(
                    keys, cfg.batch_size, np.random.default_rng(cfg.seed + loop.epoch))
            batches = batches[: total_steps - (loop.step - loop.step_in_epoch)]
            model.train()
            loop.start_epoch()
            epoch_start, steps_before = time.perf_counter(), loop.step
            label = (f"STS-B epoch {loop.epoch + 1 - cfg.epochs}/{cfg.sts_epochs}" if sts_stage
                     else f"epoch {loop.epoch + 1}/{cfg.epochs}")
            bar = _progress(len(batches), loop.step_in_epoch, label, progress)
            for batch in batches[loop.step_in_epoch:]:
                if sts_stage:
                    loss = sts_step(net, optimizer, scheduler, graded, batch, cfg, device, ranks)
                else:
                    loss = train_step(net, optimizer, scheduler, examples, batch, cfg, device,
                                      loop.routing, targets, ranks)
                loop.end_step(loss)
                if bar is not None:
                    bar.set_postfix(loss=f"{np.mean(loop.losses[-50:]):.4f}",
                                    lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
                    bar.update(1)
                since_save = time.perf_counter() - last_save
                if cfg.checkpoint_minutes and since_save > 60 * cfg.checkpoint_minutes:
                    checkpoint()  # a killed run (session end, OOM) loses at most this much
                    last_save = time.perf_counter()
                stop = bool(on_step and on_step(loop.step)) or stop_requested.value
                if distributed.any_rank(stop, ranks):  # every rank stops at the same step
                    if bar is not None:
                        bar.close()
                    checkpoint()
                    raise TrainingInterrupted(
                        f"stopped at step {loop.step}; checkpoint saved in {partial}; continue "
                        f"with `semsearch train --out {out} --resume`"
                    )
            if bar is not None:
                bar.close()

            # end of epoch: validate, select, checkpoint
            seconds = time.perf_counter() - epoch_start
            mean_loss = float(np.mean(loop.losses)) if loop.losses else None
            record = {
                "epoch": loop.epoch + 1, "step": loop.step,
                "train_loss": None if sts_stage else mean_loss,
                **({"sts_loss": mean_loss} if sts_stage else {}),
                **_evaluate(model, tokenizer, val_examples, stsb_dev, cfg, device, ranks),
                "lr": scheduler.get_last_lr()[0],
                "steps_per_s": (loop.step - steps_before) / seconds if seconds else None,
                "elapsed_s": clock.elapsed(),
                **_routing_summary(loop.routing),
            }
            loop.history.append(record)
            log(_describe(record))
            _warn_if_overfitting(loop.history, log)
            if loop.end_epoch(_selection_score(record)) and ranks.main:
                save_weights(model, partial / WEIGHTS)
            if ranks.main:
                write_json(partial / HISTORY, loop.history)
            checkpoint()
            if cfg.patience and loop.stale >= cfg.patience:
                log(f"early stop: no better STS-B dev Spearman for {loop.stale} epochs")
                if loop.epoch >= cfg.epochs or not cfg.sts_epochs:
                    break
                # on to the STS-B stage: its schedule starts where it would have
                loop.epoch, loop.step, loop.stale = cfg.epochs, stage_one, 0
                scheduler.last_epoch = loop.step - 1
                scheduler.step()
                checkpoint()
            elif loop.epoch == cfg.epochs:
                loop.stale = 0  # the STS-B stage gets its own patience

    history = loop.history
    best_record = max(history, key=_selection_score)
    if ranks.main:
        save_weights(model, partial / FINAL)
        meta["best"] = {"epoch": best_record["epoch"],
                        "stsb_dev_spearman": best_record["stsb_dev_spearman"]}
        meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(partial / CONFIG, meta)
        write_model_card(partial)  # README.md: data mixture, licences, recipe (eval.json: later)
        shutil.rmtree(partial / CHECKPOINT, ignore_errors=True)
        publish(partial, out, overwrite=True)
    distributed.barrier(ranks)  # every rank returns once the model folder is in place
    return {"model": str(out), "steps": loop.step, "epochs": len(history),
            "best_epoch": best_record["epoch"],
            "stsb_dev_spearman": best_record["stsb_dev_spearman"],
            "seconds": round(history[-1]["elapsed_s"], 1), "parameters": counts}


@dataclass
class LoopState:
    """Where the training loop is: everything it changes as it runs, in one object that is
    checkpointed and resumed whole (print it to see the run at a glance)."""

    epoch: int = 0  # epochs finished: the InfoNCE ones, then the STS-B stage's
    step_in_epoch: int = 0  # optimiser steps done in the current epoch
    step: int = 0  # optimiser steps done in all (the schedule's position)
    best: float = -math.inf  # best selection score so far (STS-B dev Spearman, else -val loss)
    stale: int = 0  # epochs since `best` last improved (early stopping's patience)
    history: list[dict[str, Any]] = field(default_factory=list)  # one record an epoch
    losses: list[float] = field(default_factory=list)  # this epoch's step losses
    routing: list[dict[str, Any]] = field(default_factory=list)  # this epoch's MoE routing a step
    elapsed: float = 0.0  # training seconds as of the last checkpoint (resumes add up)

    def start_epoch(self) -> None:
        """Begin an epoch: its losses and routing start empty unless resuming inside it."""
        if self.step_in_epoch == 0:
            self.losses, self.routing = [], []

    def end_step(self, loss: float) -> None:
        self.losses.append(loss)
        self.step, self.step_in_epoch = self.step + 1, self.step_in_epoch + 1

    def end_epoch(self, score: float) -> bool:
        """Close the epoch with its selection score; True when it is the best so far."""
        improved = score > self.best
        self.best, self.stale = (score, 0) if improved else (self.best, self.stale + 1)
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        return improved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> LoopState:
        """The loop state saved in a checkpoint (its "loop" entry; or, in a checkpoint from
        before the state object, the same values at the top level)."""
        if "loop" in state:
            return cls(**state["loop"])
        return cls(epoch=state["epoch"], step_in_epoch=state["step_in_epoch"], step=state["step"],
                   best=state["best"], stale=state["stale"], history=list(state["history"]),
                   losses=list(state["epoch_losses"]),
                   routing=list(state.get("epoch_routing", [])), elapsed=state["elapsed"])


def save_checkpoint(folder: Path, model, optimizer, scheduler, loop: LoopState) -> None:
    """Write a resumable checkpoint: the weights, then (atomically) the optimiser, schedule,
    RNG and loop state."""
    folder.mkdir(exist_ok=True)
    save_weights(model, folder / WEIGHTS)
    payload = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
               "torch_rng": torch.get_rng_state(), "loop": loop.to_dict()}
    tmp = folder / "state.pt.tmp"
    torch.save(payload, tmp)
    tmp.replace(folder / "state.pt")


class _Clock:
    """Training seconds: those before this process (from the checkpoint) plus this run's."""

    def __init__(self, before: float) -> None:
        self.before, self.started = before, time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.started


def _selection_score(record: dict[str, Any]) -> float:
    """What picks the best epoch: STS-B dev Spearman, else minus the validation loss."""
    if record["stsb_dev_spearman"] is not None:
        return record["stsb_dev_spearman"]
    return -(record["val_loss"] or 0.0)


def train_step(model, optimizer, scheduler, examples, batch: list[int], cfg, device,
               routing_log: list[dict[str, Any]] | None = None,
               targets: TeacherTargets | None = None, ranks: Ranks = SINGLE) -> float:
    """One optimiser step on one (global) batch; returns its InfoNCE loss (plus
    cfg.distill_weight x the distillation loss when `targets` holds a teacher's vectors).

    Under torchrun each rank embeds its slice of the batch (`Ranks.local`) and scores its anchors
    against the positives and hard negatives of every rank; `model` is then the DDP-wrapped
    model (`_distributed_model`) and the returned loss is the mean over ranks, which is the
    loss of the whole batch. A mixture-of-experts model also minimises its balance loss (summed
    over layers, times cfg.balance_loss_weight); that loss and the per-layer expert counts go to
    `routing_log`.
    """
    take_routing(_inner(model))  # drop what validation and STS-B scoring routed since the last step
    optimizer.zero_grad(set_to_none=True)
    local = ranks.local(batch)
    sequences = _batch_sequences(examples, local)
    counts = _negative_counts(examples, batch, ranks)
    target = targets.batch(local, device) if targets is not None else None  # this rank's rows
    # the same choice on every rank (their collectives must match): by the largest slice
    if cfg.grad_cache_chunk and 2 * len(local) + max(counts) > cfg.grad_cache_chunk:
        loss = _grad_cache_backward(model, sequences, len(local), device, cfg, routing_log,
                                    target, ranks, counts)
    else:
        with autocast(device, cfg.amp):
            loss = _sequences_loss(model, sequences, len(local), cfg, target, ranks, counts)
        _backward(model, loss, cfg, routing_log)
    _optimise(model, optimizer, scheduler, cfg)
    return distributed.mean_over_ranks(loss.item(), ranks)


def sts_step(model, optimizer, scheduler, graded, batch: list[int], cfg, device,
             ranks: Ranks = SINGLE) -> float:
    """One optimiser step of the STS-B stage's loss (cfg.sts_loss) on a batch of graded pairs
    (`_tokenize_graded` rows); returns the loss. CoSENT's scale is InfoNCE's `cfg.scale`.

    Under torchrun each rank embeds its slice and the cosines are gathered, so every rank
    computes the loss of the whole batch (CoSENT compares every two pairs of it)."""
    take_routing(_inner(model))
    optimizer.zero_grad(set_to_none=True)
    first, second, scores = graded
    local = ranks.local(batch)
    with autocast(device, cfg.amp):
        vectors = _encode(model, [first[i] for i in local] + [second[i] for i in local],
                          cfg.length_chunks).float()
    gold = torch.tensor([scores[i] for i in batch], device=device)
    cosines = distributed.gather((vectors[: len(local)] * vectors[len(local):]).sum(-1), ranks)
    loss = (cosent(cosines, gold, cfg.scale) if cfg.sts_loss == "cosent"
            else cosine_regression(cosines, gold))
    _backward(model, loss, cfg)
    _optimise(model, optimizer, scheduler, cfg)
    return loss.item()


def _backward(model, loss: torch.Tensor, cfg,
              routing_log: list[dict[str, Any]] | None = None) -> None:
    """Backpropagate `loss`, plus cfg.balance_loss_weight x the balance loss of a
    mixture-of-experts model's routing since the last `take_routing` (logged to `routing_log`)."""
    objective = loss
    routing = take_routing(_inner(model))
    if routing is not None:
        objective = loss + cfg.balance_loss_weight * routing.balance_loss
        _log_routing(routing_log, routing.balance_loss.item(), routing.assigned)
    objective.backward()


def _optimise(model, optimizer, scheduler, cfg) -> None:
    """Clip the gradient norm, then step the optimiser and the schedule."""
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()


def _lr_factor(step: int, stage_one: int, total: int, cfg) -> float:
    """The multiplier of cfg.lr at `step`: warmup and cosine over the InfoNCE steps, then warmup
    and cosine again over the STS-B steps, peaking at cfg.sts_lr."""
    if step < stage_one:
        warmup = max(1, round(cfg.warmup_ratio * stage_one))
        return warmup_cosine(step, stage_one, warmup, cfg.min_lr_ratio)
    stage_two = total - stage_one
    warmup = max(1, round(cfg.warmup_ratio * stage_two))
    return cfg.sts_lr / cfg.lr * warmup_cosine(step - stage_one, stage_two, warmup)


def _graded_rows(data_dir, val_pairs: list[TrainingPair], batch: int, log: Log) -> list[ScoredPair]:
    """STS-B train's graded pairs for the STS-B stage; none shares a sentence with STS-B
    dev/test or with a validation pair."""
    rows = scored_training_pairs(data_dir, {k for pair in val_pairs for k in _keys_of(pair)})
    if len(rows) < batch:
        raise DataError(f"train.sts_epochs needs STS-B train's graded pairs and found {len(rows)}, "
                        f"fewer than train.sts_batch ({batch}); set train.sts_epochs=0 or point "
                        "--data-dir at a folder with STS-B")
    log(f"STS-B stage: {len(rows):,} graded STS-B train pairs")
    return rows


def _tokenize_graded(rows: list[ScoredPair], tokenizer: Tokenizer, max_len: int):
    return (tokenizer.encode([r.sentence1 for r in rows], max_len),
            tokenizer.encode([r.sentence2 for r in rows], max_len), [r.score for r in rows])


def _graded_batches(count: int, batch_size: int, seed: int) -> list[list[int]]:
    """A seeded shuffle of `count` graded pairs cut into full batches (the rest waits for the
    next epoch's shuffle)."""
    order = np.random.default_rng(seed).permutation(count).tolist()
    return [order[s: s + batch_size] for s in range(0, count - batch_size + 1, batch_size)]


def _prepare_folder(config: RunConfig, out: Path, partial: Path, resume: bool, overwrite: bool):
    """Check the output location before any work; on resume, return the saved config+state."""
    if resume:
        state_path = partial / CHECKPOINT / "state.pt"
        if not state_path.is_file():
            raise ConfigError(f"nothing to resume: no checkpoint at {state_path}; start a new run "
                              "without --resume")
        saved = read_config(partial)
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        return RunConfig.from_dict(saved), state
    if (out / CONFIG).exists() and not overwrite:
        raise ConfigError(f"{out} already holds a model; pass --overwrite to replace it, "
                          "--resume to continue it, or --out to choose another folder")
    if out.exists() and not (out / CONFIG).exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a model folder; choose another --out")
    check_model_replaceable(out)  # --overwrite replaces a model folder, never anything else
    if partial.exists():
        if not overwrite:
            raise ConfigError(f"an interrupted run is in {partial}; continue it with --resume or "
                              "start over with --overwrite")
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as error:
        raise ConfigError(f"cannot write the model folder {partial} ({error.strerror}); "
                          "choose a writable --out") from None
    return config, None


def _split_validation(pairs: list[TrainingPair], count: int, seed: int):
    """Hold out about `count` pairs whose groups and sentences never occur in training."""
    if count <= 0 or len(pairs) < 4 * count:
        return pairs, []
    rng = np.random.default_rng(seed + 10_007)
    order = rng.permutation(len(pairs))
    val_index = set(int(i) for i in order[:count])
    held = {k for i in val_index for k in _keys_of(pairs[i])}
    train = [p for i, p in enumerate(pairs) if i not in val_index and held.isdisjoint(_keys_of(p))]
    return train, [pairs[i] for i in sorted(val_index)]


def _keys_of(pair: TrainingPair) -> set[str]:
    keys = {normalise(t) for t in (pair.anchor, pair.positive, pair.negative) if t}
    if pair.group:
        keys.add("group:" + pair.group)
    return keys


def _batch_keys(pairs: list[TrainingPair]) -> list[tuple[int, ...]]:
    ids: dict[str, int] = {}
    return [tuple(ids.setdefault(k, len(ids)) for k in _keys_of(p)) for p in pairs]


def _tokenize(pairs: list[TrainingPair], tokenizer: Tokenizer, max_len: int):
    anchors = tokenizer.encode([p.anchor for p in pairs], max_len)
    positives = tokenizer.encode([p.positive for p in pairs], max_len)
    with_negative = [i for i, p in enumerate(pairs) if p.negative]
    negative_ids = tokenizer.encode([pairs[i].negative for i in with_negative], max_len)
    negatives: list[list[int] | None] = [None] * len(pairs)
    for i, ids in zip(with_negative, negative_ids, strict=True):
        negatives[i] = ids
    return anchors, positives, negatives


def _batch_sequences(examples, batch: list[int]) -> list[list[int]]:
    """Token ids of the batch's anchors, then its positives, then its hard negatives."""
    anchors, positives, negatives = examples
    hard = [negatives[i] for i in batch if negatives[i] is not None]
    return [anchors[i] for i in batch] + [positives[i] for i in batch] + hard


def _info_nce(vectors: torch.Tensor, pairs: int, cfg, target: torch.Tensor | None = None,
              ranks: Ranks = SINGLE, negative_counts: list[int] | None = None) -> torch.Tensor:
    """InfoNCE over a batch's (anchors, positives, hard negatives) rows — under torchrun, of
    this rank's anchors against the whole global batch's candidates
    (distributed.contrastive_logits) — plus cfg.distill_weight x the distance to the teacher's
    vectors `target` (same rows) when given."""
    B = pairs
    anchors, positives, negatives = vectors[:B], vectors[B: 2 * B], vectors[2 * B:]
    if not ranks.distributed:
        loss = info_nce(anchors, positives, negatives, cfg.scale, cfg.symmetric)
    else:
        logits, labels = distributed.contrastive_logits(anchors, positives, negatives,
                                                        negative_counts, cfg.scale, ranks)
        loss = F.cross_entropy(logits, labels)
        if cfg.symmetric:  # each positive picks its anchor among every rank's anchors
            back = cfg.scale * positives @ distributed.gather(anchors, ranks).T
            loss = (loss + F.cross_entropy(back, labels)) / 2
    if target is not None:
        loss = loss + cfg.distill_weight * distill_loss(vectors, target)
    return loss


def _negative_counts(examples, batch: list[int], ranks: Ranks) -> list[int]:
    """Hard negatives in each rank's slice of the batch (every rank knows the whole batch)."""
    negatives = examples[2]
    return [sum(negatives[i] is not None for i in Ranks(r, ranks.world).local(batch))
            for r in range(ranks.world)]


def _sequences_loss(model, sequences: list[list[int]], pairs: int, cfg,
                    target: torch.Tensor | None = None, ranks: Ranks = SINGLE,
                    negative_counts: list[int] | None = None) -> torch.Tensor:
    """One forward pass over a batch's sequences (`_batch_sequences` order) and its loss."""
    # packed: no linear layer sees a padding row (see Encoder.encode_packed)
    vectors = _encode(model, sequences, cfg.length_chunks).float()
    return _info_nce(vectors, pairs, cfg, target, ranks, negative_counts)


class _Packed(torch.nn.Module):
    """The encoder's packed forward pass as a module's `forward`, which is what DDP wraps."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, sequences: list[list[int]], chunks: int) -> torch.Tensor:
        return self.encoder.encode_packed(sequences, chunks)


def _distributed_model(model: Encoder, ranks: Ranks, device: torch.device):
    """The model as the training steps call it: itself, or under torchrun wrapped in
    DistributedDataParallel, which averages the gradients over the ranks during backward (and
    starts every rank from rank 0's weights)."""
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        _Packed(model), device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=bool(model.config.experts),  # unrouted experts get no gradient
    )  # the encoder has no buffers, so the forward pass syncs nothing but the gradients


def _encode(model, sequences: list[list[int]], chunks: int) -> torch.Tensor:
    """Sentence vectors through the DDP wrapper when there is one (its hooks sync gradients)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model(sequences, chunks)
    return model.encode_packed(sequences, chunks)


def _inner(model) -> Encoder:
    """The Encoder inside a DDP wrapper, or the model itself."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module.encoder
    return model


def _no_sync(model, last: bool):
    """DDP's no_sync for all but the last of several backward passes in one step: the
    gradients add up locally and are averaged over the ranks once."""
    if last or not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def _tokenizer_from_main(tokenizer: Tokenizer | None, ranks: Ranks) -> Tokenizer:
    """Rank 0's tokenizer on every rank (sent as its JSON)."""
    if not ranks.distributed:
        return tokenizer
    from tokenizers import Tokenizer as HFTokenizer

    text = distributed.text_from_main(tokenizer.inner.to_str() if ranks.main else None, ranks)
    return tokenizer if ranks.main else Tokenizer(HFTokenizer.from_str(text))


def _evaluate(model: Encoder, tokenizer, val_examples, stsb_dev, cfg, device,
              ranks: Ranks) -> dict[str, float | None]:
    """The epoch's validation loss and STS-B dev Spearman, computed on rank 0 and shared, so
    that every rank makes the same model-selection and early-stopping decisions."""
    values: list[float | None] = [None, None]
    if ranks.main:
        values = [_validation_loss(model, val_examples, cfg, device),
                  _stsb_spearman(model, tokenizer, stsb_dev, device)]
    val_loss, spearman = distributed.from_main(values, ranks)
    return {"val_loss": val_loss, "stsb_dev_spearman": spearman}


def _batch_loss(model, examples, batch, device, cfg) -> torch.Tensor:
    """One forward pass over anchors, positives and the batch's hard negatives."""
    return _sequences_loss(model, _batch_sequences(examples, batch), len(batch), cfg)


def _grad_cache_backward(model, sequences, pairs: int, device, cfg,
                         routing_log: list[dict[str, Any]] | None,
                         target: torch.Tensor | None = None, ranks: Ranks = SINGLE,
                         negative_counts: list[int] | None = None) -> torch.Tensor:
    """Accumulate the gradient of InfoNCE over the whole batch while holding the activations of
    only `cfg.grad_cache_chunk` sequences at a time (gradient caching, Gao et al. 2021).

    1. embed every chunk without a graph; 2. the loss and its gradient with respect to those
    vectors, over the whole batch (every in-batch negative counts); 3. embed each chunk again
    with a graph and backpropagate its slice of that gradient. Each chunk replays the random
    state of its first pass, so dropout draws the same masks and the result is the gradient of
    one big batch (to float rounding) at about 4/3 of its compute and a fraction of its memory.
    Under torchrun step 2 gathers across ranks, and step 3's backward passes add up locally
    (DDP no_sync) until the last, which averages the gradients over the ranks.
    """
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths
    chunks = [order[s: s + cfg.grad_cache_chunk]
              for s in range(0, len(order), cfg.grad_cache_chunk)]
    rows = [torch.tensor(chunk, device=device) for chunk in chunks]  # each chunk's batch rows
    states, parts = [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(_rng_state(device))
            with autocast(device, cfg.amp):
                parts.append(_encode(model, [sequences[i] for i in chunk],
                                     cfg.length_chunks).float())
    take_routing(_inner(model))  # the graph-free pass routes again below
    vectors = torch.empty(len(sequences), parts[0].shape[1], device=device)
    vectors[torch.cat(rows)] = torch.cat(parts)
    vectors.requires_grad_(True)
    loss = _info_nce(vectors, pairs, cfg, target, ranks, negative_counts)
    loss.backward()
    balance, assigned = 0.0, None
    for number, (chunk, chunk_rows, state) in enumerate(zip(chunks, rows, states, strict=True)):
        _set_rng_state(device, state)
        last = number == len(chunks) - 1
        with _no_sync(model, last), autocast(device, cfg.amp):
            part = _encode(model, [sequences[i] for i in chunk], cfg.length_chunks).float()
        surrogate = (part * vectors.grad[chunk_rows]).sum()
        routing = take_routing(_inner(model))
        if routing is not None:  # the balance loss is a mean: weight each chunk by its share
            surrogate = surrogate + (cfg.balance_loss_weight * len(chunk) / len(sequences)
                                     * routing.balance_loss)
            balance += routing.balance_loss.item() * len(chunk) / len(sequences)
            assigned = routing.assigned if assigned is None else [
                [a + b for a, b in zip(x, y, strict=True)]
                for x, y in zip(assigned, routing.assigned, strict=True)]
        with _no_sync(model, last):
            surrogate.backward()
    if assigned is not None:
        _log_routing(routing_log, balance, assigned)
    return loss.detach()


def _rng_state(device: torch.device) -> tuple:
    if device.type == "cuda":
        return torch.get_rng_state(), torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.get_rng_state(), torch.mps.get_rng_state()
    return (torch.get_rng_state(),)


def _set_rng_state(device: torch.device, state: tuple) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state[1])


def _log_routing(routing_log, balance_loss: float, assigned) -> None:
    if routing_log is not None:
        routing_log.append({"balance_loss": balance_loss, "assigned": assigned})


@torch.no_grad()
def _validation_loss(model, examples, cfg, device) -> float | None:
    anchors = examples[0]
    if len(anchors) < 2:
        return None
    model.eval()
    losses = []
    for start in range(0, len(anchors), cfg.batch_size):
        batch = list(range(start, min(start + cfg.batch_size, len(anchors))))
        if len(batch) > 1:
            losses.append(_batch_loss(model, examples, batch, device, cfg).item())
    model.train()
    return float(np.mean(losses))


def _stsb_dev(data_dir, limit: int, log: Log) -> list[ScoredPair] | None:
    try:
        rows = load_stsb("dev", data_dir)
    except DataError as error:
        log(f"no STS-B dev ({error}); selecting the best epoch by validation loss")
        return None
    return rows[:limit] if limit else rows


def _stsb_spearman(model, tokenizer, rows, device) -> float | None:
    """STS-B dev Spearman x100 of cosine similarity against the gold scores."""
    if not rows:
        return None
    a = embed(model, tokenizer, [r.sentence1 for r in rows], 256, device)
    b = embed(model, tokenizer, [r.sentence2 for r in rows], 256, device)
    return float(100 * spearmanr((a * b).sum(1), [r.score for r in rows]).statistic)


def _optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    def decays(name: str, p: torch.nn.Parameter) -> bool:
        # matrices only; MoE expert biases are (experts, width) but still biases
        return p.dim() >= 2 and "embedding" not in name and not name.endswith("bias")

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    rest = [p for n, p in model.named_parameters() if not decays(n, p)]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def _progress(total: int, done: int, description: str, enabled: bool):
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    # in a log file (not a terminal) a line a minute instead of a redraw per step
    interval = 0.1 if sys.stderr.isatty() else 60.0
    return tqdm(total=total, initial=done, desc=description, unit="step", dynamic_ncols=True,
                mininterval=interval, maxinterval=max(10.0, interval))


def _human(count: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return str(count)


def _routing_summary(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """An epoch's MoE routing: mean balance loss (summed over layers) and, per layer, the share
    of routing assignments each expert got. Empty for a dense model.

    >>> _routing_summary([{"balance_loss": 2.0, "assigned": [[3, 1]]},
    ...                   {"balance_loss": 1.0, "assigned": [[1, 3]]}])
    {'balance_loss': 1.5, 'expert_utilisation': [[0.5, 0.5]]}
    """
    if not steps:
        return {}
    assigned = np.sum([s["assigned"] for s in steps], axis=0)  # (layers, experts)
    shares = assigned / np.maximum(assigned.sum(1, keepdims=True), 1)
    return {"balance_loss": float(np.mean([s["balance_loss"] for s in steps])),
            "expert_utilisation": [[round(float(x), 4) for x in layer] for layer in shares]}


def _describe(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}"]
    for key, fmt in (("train_loss", ".4f"), ("sts_loss", ".3f"), ("val_loss", ".4f"),
                     ("stsb_dev_spearman", ".2f"),
                     ("lr", ".2e"), ("steps_per_s", ".2f"), ("elapsed_s", ".0f"),
                     ("balance_loss", ".3f")):
        if record.get(key) is not None:
            parts.append(f"{key} {record[key]:{fmt}}")
    if record.get("expert_utilisation"):
        # percent of routing per expert, layer by layer: "experts % 27/24/25/24 31/19/26/24"
        parts.append("experts % " + " ".join("/".join(f"{100 * x:.0f}" for x in layer)
                                             for layer in record["expert_utilisation"]))
    return "  ".join(parts)


def _warn_if_overfitting(history: list[dict[str, Any]], log: Log) -> None:
    if len(history) < 2:
        return
    previous, last = history[-2], history[-1]
    if None in (previous["val_loss"], last["val_loss"], previous["train_loss"], last["train_loss"]):
        return
    if last["val_loss"] > previous["val_loss"] and last["train_loss"] < previous["train_loss"]:
        message = (f"validation loss rose ({previous['val_loss']:.4f} -> {last['val_loss']:.4f}) "
                   "while training loss fell: the model may be overfitting")
        log("warning: " + message)


class _StopFlag:
    """The first Ctrl-C (or SIGTERM) asks the loop to stop at the next step boundary (and
    checkpoint); a second one interrupts at once."""

    def __init__(self) -> None:
        self.value = False

    def installed(self):
        import contextlib

        @contextlib.contextmanager
        def manager():
            try:  # SIGTERM (kill, a scheduler's stop) is handled like Ctrl-C
                previous = {sig: signal.signal(sig, self._handle)
                            for sig in (signal.SIGINT, signal.SIGTERM)}
            except ValueError:  # not the main thread: leave signals alone
                yield
                return
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        return manager()

    def _handle(self, signum, frame) -> None:
        if self.value:
            raise KeyboardInterrupt
        self.value = True


