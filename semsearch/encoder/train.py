"""The training loop, top to bottom: config, device, data, tokenizer, model, optimiser,
schedule, epochs (train, validate, checkpoint), publish. The epochs are InfoNCE on the mixture's
pairs, then (`train.sts_epochs`) a graded loss on STS-B train's scored pairs.

`train_model` writes into `<out>.partial/` and renames it to `<out>` when done. After every
epoch — and on Ctrl-C, at the next step boundary — it saves a resumable checkpoint there
(weights, optimiser, scheduler, RNG, epoch and step), which `resume=True` continues exactly.

The parts it is made of, each in its own module: the examples (train_data.py), one optimiser
step (train_steps.py), what a resume needs (train_state.py) and what an epoch measures and says
(train_validation.py).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semsearch import __version__
from semsearch.data import build_mixture
from semsearch.encoder import distributed
from semsearch.encoder.batching import plan_batches
from semsearch.encoder.device import pick_device
from semsearch.encoder.distill import teacher_targets
from semsearch.encoder.distributed import SINGLE, RankLost, Ranks
from semsearch.encoder.heap import reuse_freed_memory
from semsearch.encoder.model import Encoder
from semsearch.encoder.presets import RunConfig
from semsearch.encoder.store import (
    CONFIG,
    FINAL,
    FORMAT_VERSION,
    HISTORY,
    TOKENIZER,
    WEIGHTS,
    load_weights,
    publish,
    read_config,
    save_weights,
    write_json,
)
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.encoder.train_data import (
    batch_keys,
    graded_batches,
    load_stsb_dev,
    read_graded_rows,
    split_validation,
    tokenize,
    tokenize_graded,
)
from semsearch.encoder.train_state import (
    CHECKPOINT,
    Clock,
    LoopState,
    StopFlag,
    prepare_folder,
    save_checkpoint,
    selection_score,
)
from semsearch.encoder.train_steps import (
    distributed_model,
    lr_factor,
    make_optimizer,
    sts_step,
    train_step,
)
from semsearch.encoder.train_validation import (
    describe,
    human,
    routing_summary,
    step_meter,
    validate,
    warn_if_overfitting,
)
from semsearch.errors import ConfigError, TrainingInterrupted
from semsearch.model_card import write_model_card

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
    """`prepare_folder` on rank 0 alone (it may delete and create folders); its verdict, and on
    resume the saved config and state (read from the shared folder), on every rank."""
    if not ranks.distributed:
        return prepare_folder(config, out, partial, resume, overwrite)
    message, prepared = None, (config, None)
    if ranks.main:
        try:
            prepared = prepare_folder(config, out, partial, resume, overwrite)
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
    pairs, report = build_mixture(config.data, data_dir, seed=cfg.seed, log=log)
    train_pairs, val_pairs = split_validation(pairs, config.data.val_pairs, cfg.seed)
    if len(train_pairs) < cfg.batch_size:
        raise ConfigError(f"batch size {cfg.batch_size} is larger than the {len(train_pairs)} "
                          "training pairs; lower train.batch_size or add data")
    stsb_dev = load_stsb_dev(data_dir, cfg.eval_limit, log)
    graded_rows = read_graded_rows(data_dir, val_pairs, cfg.sts_batch, log) if cfg.sts_epochs else []

    # tokenizer: learned from the training sentences (kept as-is on resume; the init model's)
    if init is not None:
        tokenizer = Tokenizer.load(init / TOKENIZER)
        tokenizer.save(partial / TOKENIZER)
    elif state is None:  # trained once, on rank 0, and handed to the other ranks
        tokenizer = None
        if ranks.main:
            texts = [t for p in train_pairs for t in (p.anchor, p.positive, p.negative) if t]
            began = time.perf_counter()
            tokenizer = Tokenizer.train(texts, config.tokenizer.vocab_size,
                                        config.tokenizer.lowercase, log=log)
            log(f"tokenizer: {tokenizer.vocab_size:,} WordPiece tokens learned on "
                f"{len(texts):,} texts ({time.perf_counter() - began:.0f}s)")
            tokenizer.save(partial / TOKENIZER)
        tokenizer = _tokenizer_from_main(tokenizer, ranks)
        config = replace(config, model=replace(config.model, vocab_size=tokenizer.vocab_size))
    else:
        tokenizer = Tokenizer.load(partial / TOKENIZER)

    model = Encoder(config.model).to(device)
    if init is not None:  # resume reloads the checkpoint instead, below
        model.load_state_dict(load_weights(init / WEIGHTS))
    counts = model.parameter_counts()
    examples = tokenize(train_pairs, tokenizer, config.model.max_seq_len)
    graded = tokenize_graded(graded_rows, tokenizer, config.model.max_seq_len)
    val_examples = tokenize(val_pairs, tokenizer, config.model.max_seq_len)
    # distillation: the teacher's vector of every training text (computed once, cached; under
    # torchrun rank 0 fills the cache while the others wait, then they read it)
    targets = None
    if cfg.teacher:
        if not ranks.main:
            distributed.barrier(ranks)
        targets = teacher_targets(cfg.teacher, train_pairs, config.model.hidden, log)
        if ranks.main:
            distributed.barrier(ranks)
    keys = batch_keys(train_pairs)
    first_plan = plan_batches(keys, cfg.batch_size, np.random.default_rng(cfg.seed))
    total_steps = len(first_plan) * cfg.epochs + len(graded[2]) // cfg.sts_batch * cfg.sts_epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    stage_one = min(total_steps, len(first_plan) * cfg.epochs)  # the InfoNCE steps
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, stage_one, total_steps, cfg))

    if ranks.rank:  # dropout draws differ between ranks (rank 0 keeps a single run's stream)
        torch.manual_seed(cfg.seed + ranks.rank)
    net = distributed_model(model, ranks, device)  # the model as the steps call it
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
        f"{human(counts['total'])} parameters ({human(counts['embedding'])} embedding, "
        f"{human(counts['other'])} other), {total_steps} steps on {device.type}"
        + (f", {ranks.world} processes" if ranks.distributed else ""))

    stop_requested = StopFlag()
    clock = Clock(loop.elapsed)
    last_save = time.perf_counter()

    def checkpoint() -> None:
        loop.elapsed = clock.elapsed()
        if ranks.main:
            save_checkpoint(partial / CHECKPOINT, model, optimizer, scheduler, loop)

    with stop_requested.installed():
        while loop.epoch < cfg.epochs + cfg.sts_epochs and loop.step < total_steps:
            sts_stage = loop.epoch >= cfg.epochs
            if sts_stage:
                batches = graded_batches(len(graded[2]), cfg.sts_batch, cfg.seed + loop.epoch)
            else:
                batches = first_plan if loop.epoch == 0 else plan_batches(
                    keys, cfg.batch_size, np.random.default_rng(cfg.seed + loop.epoch))
            batches = batches[: total_steps - (loop.step - loop.step_in_epoch)]
            model.train()
            loop.start_epoch()
            epoch_start, steps_before = time.perf_counter(), loop.step
            label = (f"STS-B epoch {loop.epoch + 1 - cfg.epochs}/{cfg.sts_epochs}" if sts_stage
                     else f"epoch {loop.epoch + 1}/{cfg.epochs}")
            bar = step_meter(len(batches), loop.step_in_epoch, label, progress, log)
            for batch in batches[loop.step_in_epoch:]:
                if sts_stage:
                    loss = sts_step(net, optimizer, scheduler, graded, batch, cfg, device, ranks)
                else:
                    loss = train_step(net, optimizer, scheduler, examples, batch, cfg, device,
                                      loop.routing, targets, ranks)
                loop.end_step(loss)
                bar.set_postfix(loss=f"{np.mean(loop.losses[-50:]):.4f}",
                                lr=f"{scheduler.get_last_lr()[0]:.2e}")
                bar.update(1)
                since_save = time.perf_counter() - last_save
                if cfg.checkpoint_minutes and since_save > 60 * cfg.checkpoint_minutes:
                    checkpoint()  # a killed run (session end, OOM) loses at most this much
                    last_save = time.perf_counter()
                stop = bool(on_step and on_step(loop.step)) or stop_requested.value
                if distributed.any_rank(stop, ranks):  # every rank stops at the same step
                    bar.close()
                    checkpoint()
                    raise TrainingInterrupted(
                        f"stopped at step {loop.step}; checkpoint saved in {partial}; continue "
                        f"with `semsearch train --out {out} --resume`"
                    )
            bar.close()

            # end of epoch: validate, select, checkpoint
            seconds = time.perf_counter() - epoch_start
            mean_loss = float(np.mean(loop.losses)) if loop.losses else None
            record = {
                "epoch": loop.epoch + 1, "step": loop.step,
                "train_loss": None if sts_stage else mean_loss,
                **({"sts_loss": mean_loss} if sts_stage else {}),
                **validate(model, tokenizer, val_examples, stsb_dev, cfg, device, ranks),
                "lr": scheduler.get_last_lr()[0],
                "steps_per_s": (loop.step - steps_before) / seconds if seconds else None,
                "elapsed_s": clock.elapsed(),
                **routing_summary(loop.routing),
            }
            loop.history.append(record)
            log(describe(record))
            warn_if_overfitting(loop.history, log)
            if loop.end_epoch(selection_score(record)) and ranks.main:
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
    best_record = max(history, key=selection_score)
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



def _tokenizer_from_main(tokenizer: Tokenizer | None, ranks: Ranks) -> Tokenizer:
    """Rank 0's tokenizer on every rank (sent as its JSON)."""
    if not ranks.distributed:
        return tokenizer
    from tokenizers import Tokenizer as HFTokenizer

    text = distributed.text_from_main(tokenizer.inner.to_str() if ranks.main else None, ranks)
    return tokenizer if ranks.main else Tokenizer(HFTokenizer.from_str(text))
