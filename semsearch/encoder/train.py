"""The training loop, top to bottom: config, device, data, tokenizer, model, optimiser,
schedule, epochs (train, validate, checkpoint), publish. The epochs are InfoNCE on the mixture's
pairs, then (`train.sts_epochs`) a graded loss on STS-B train's scored pairs.

`train_model` writes into `<out>.partial/` and renames it to `<out>` when done. After every
epoch — and on Ctrl-C, at the next step boundary — it saves a resumable checkpoint there
(weights, optimiser, scheduler, RNG, epoch and step), which `resume=True` continues exactly.
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from semsearch import __version__
from semsearch.data import build_mixture, load_stsb, normalise, scored_training_pairs
from semsearch.data.records import ScoredPair, TrainingPair
from semsearch.encoder.batching import plan_batches
from semsearch.encoder.device import autocast, pick_device
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
) -> dict[str, Any]:
    """Train a sentence encoder from scratch and save it as the model folder `out`.

    Returns a summary (best epoch and its STS-B dev Spearman, steps, seconds, paths). Raises
    ConfigError / DataError for bad input before any work, and TrainingInterrupted after saving a
    resumable checkpoint when stopped (Ctrl-C, or `on_step(step)` returning True).
    """
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    config, state = _prepare_folder(config, out, partial, resume, overwrite)
    try:
        return _run(config, state, out, partial, data_dir, progress, log, on_step)
    except BaseException:
        # a run that never reached a checkpoint leaves nothing behind to resume or to block
        # the next run; one that did keeps its partial folder for --resume
        if not (partial / CHECKPOINT / "state.pt").exists():
            shutil.rmtree(partial, ignore_errors=True)
        raise


def _run(config, state, out: Path, partial: Path, data_dir, progress: bool, log: Log,
         on_step) -> dict[str, Any]:
    """The body of `train_model`, once the output folder is settled."""
    cfg = config.train
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)

    # data: the mixture, a group-disjoint validation split, STS-B dev for model selection
    pairs, report = build_mixture(config.data, data_dir, seed=cfg.seed)
    train_pairs, val_pairs = _split_validation(pairs, config.data.val_pairs, cfg.seed)
    if len(train_pairs) < cfg.batch_size:
        raise ConfigError(f"batch size {cfg.batch_size} is larger than the {len(train_pairs)} "
                          "training pairs; lower train.batch_size or add data")
    stsb_dev = _stsb_dev(data_dir, cfg.eval_limit, log)
    graded_rows = _graded_rows(data_dir, val_pairs, cfg.sts_batch, log) if cfg.sts_epochs else []

    # tokenizer: learned from the training sentences (kept as-is on resume)
    if state is None:
        texts = [t for p in train_pairs for t in (p.anchor, p.positive, p.negative) if t]
        tokenizer = Tokenizer.train(texts, config.tokenizer.vocab_size, config.tokenizer.lowercase)
        tokenizer.save(partial / TOKENIZER)
        config = replace(config, model=replace(config.model, vocab_size=tokenizer.vocab_size))
    else:
        tokenizer = Tokenizer.load(partial / TOKENIZER)

    model = Encoder(config.model).to(device)
    counts = model.parameter_counts()
    examples = _tokenize(train_pairs, tokenizer, config.model.max_seq_len)
    graded = _tokenize_graded(graded_rows, tokenizer, config.model.max_seq_len)
    val_examples = _tokenize(val_pairs, tokenizer, config.model.max_seq_len)
    keys = _batch_keys(train_pairs)
    first_plan = plan_batches(keys, cfg.batch_size, np.random.default_rng(cfg.seed))
    total_steps = len(first_plan) * cfg.epochs + len(graded[2]) // cfg.sts_batch * cfg.sts_epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    stage_one = min(total_steps, len(first_plan) * cfg.epochs)  # the InfoNCE steps
    optimizer = _optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, stage_one, total_steps, cfg))

    meta = {"format_version": FORMAT_VERSION, "package_version": __version__, "name": out.name,
            **config.to_dict(), "parameters": counts, "data_report": report,
            "train_pairs": len(train_pairs), "val_pairs": len(val_pairs)}
    history: list[dict[str, Any]] = []
    losses: list[float] = []  # this epoch's step losses (kept across a resume)
    routing: list[dict[str, Any]] = []  # this epoch's MoE routing per step (ditto; MoE only)
    epoch, step_in_epoch, step, best, stale = 0, 0, 0, -math.inf, 0
    elapsed_before = 0.0
    if state is None:
        write_json(partial / CONFIG, meta)
    else:
        model.load_state_dict(load_weights(partial / CHECKPOINT / WEIGHTS))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history = list(state["history"])
        epoch, step_in_epoch, step = state["epoch"], state["step_in_epoch"], state["step"]
        best, stale, elapsed_before = state["best"], state["stale"], state["elapsed"]
        losses = list(state["epoch_losses"])
        routing = list(state.get("epoch_routing", []))
        log(f"resuming at epoch {epoch + 1}, step {step} of {total_steps}")

    log(f"training {out.name}: {len(train_pairs):,} pairs ({len(val_pairs):,} held out), "
        f"{_human(counts['total'])} parameters ({_human(counts['embedding'])} embedding, "
        f"{_human(counts['other'])} other), {total_steps} steps on {device.type}")

    stop_requested = _StopFlag()
    started = last_save = time.perf_counter()

    def checkpoint() -> None:
        folder = partial / CHECKPOINT
        folder.mkdir(exist_ok=True)
        save_weights(model, folder / WEIGHTS)
        payload = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch,
                   "step_in_epoch": step_in_epoch, "step": step, "best": best, "stale": stale,
                   "epoch_losses": losses, "epoch_routing": routing,
                   "elapsed": elapsed_before + time.perf_counter() - started}
        tmp = folder / "state.pt.tmp"
        torch.save(payload, tmp)
        tmp.replace(folder / "state.pt")

    with stop_requested.installed():
        while epoch < cfg.epochs + cfg.sts_epochs and step < total_steps:
            sts_stage = epoch >= cfg.epochs
            if sts_stage:
                batches = _graded_batches(len(graded[2]), cfg.sts_batch, cfg.seed + epoch)
            else:
                batches = first_plan if epoch == 0 else plan_batches(
                    keys, cfg.batch_size, np.random.default_rng(cfg.seed + epoch))
            batches = batches[: total_steps - (step - step_in_epoch)]
            model.train()
            losses = losses if step_in_epoch else []
            routing = routing if step_in_epoch else []
            epoch_start, steps_before = time.perf_counter(), step
            label = (f"STS-B epoch {epoch + 1 - cfg.epochs}/{cfg.sts_epochs}" if sts_stage
                     else f"epoch {epoch + 1}/{cfg.epochs}")
            bar = _progress(len(batches), step_in_epoch, label, progress)
            for batch in batches[step_in_epoch:]:
                if sts_stage:
                    losses.append(sts_step(model, optimizer, scheduler, graded, batch, cfg, device))
                else:
                    losses.append(train_step(model, optimizer, scheduler, examples, batch, cfg,
                                             device, routing))
                step, step_in_epoch = step + 1, step_in_epoch + 1
                if bar is not None:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}",
                                    lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
                    bar.update(1)
                since_save = time.perf_counter() - last_save
                if cfg.checkpoint_minutes and since_save > 60 * cfg.checkpoint_minutes:
                    checkpoint()  # a killed run (session end, OOM) loses at most this much
                    last_save = time.perf_counter()
                if (on_step and on_step(step)) or stop_requested.value:
                    if bar is not None:
                        bar.close()
                    checkpoint()
                    raise TrainingInterrupted(
                        f"stopped at step {step}; checkpoint saved in {partial}; continue with "
                        f"`semsearch train --out {out} --resume`"
                    )
            if bar is not None:
                bar.close()

            # end of epoch: validate, select, checkpoint
            seconds = time.perf_counter() - epoch_start
            mean_loss = float(np.mean(losses)) if losses else None
            record = {
                "epoch": epoch + 1, "step": step,
                "train_loss": None if sts_stage else mean_loss,
                **({"sts_loss": mean_loss} if sts_stage else {}),
                "val_loss": _validation_loss(model, val_examples, cfg, device),
                "stsb_dev_spearman": _stsb_spearman(model, tokenizer, stsb_dev, device),
                "lr": scheduler.get_last_lr()[0],
                "steps_per_s": (step - steps_before) / seconds if seconds else None,
                "elapsed_s": elapsed_before + time.perf_counter() - started,
                **_routing_summary(routing),
            }
            history.append(record)
            log(_describe(record))
            _warn_if_overfitting(history, log)
            score = (record["stsb_dev_spearman"] if record["stsb_dev_spearman"] is not None
                     else -(record["val_loss"] or 0.0))
            if score > best:
                best, stale = score, 0
                save_weights(model, partial / WEIGHTS)
            else:
                stale += 1
            epoch, step_in_epoch = epoch + 1, 0
            write_json(partial / HISTORY, history)
            checkpoint()
            if cfg.patience and stale >= cfg.patience:
                log(f"early stop: no better STS-B dev Spearman for {stale} epochs")
                if epoch >= cfg.epochs or not cfg.sts_epochs:
                    break
                # on to the STS-B stage: its schedule starts where it would have
                epoch, step, stale = cfg.epochs, stage_one, 0
                scheduler.last_epoch = step - 1
                scheduler.step()
                checkpoint()
            elif epoch == cfg.epochs:
                stale = 0  # the STS-B stage gets its own patience

    save_weights(model, partial / FINAL)
    best_record = max(history, key=lambda r: (r["stsb_dev_spearman"] if r["stsb_dev_spearman"]
                                              is not None else -(r["val_loss"] or 0.0)))
    meta["best"] = {"epoch": best_record["epoch"],
                    "stsb_dev_spearman": best_record["stsb_dev_spearman"]}
    meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(partial / CONFIG, meta)
    write_model_card(partial)  # README.md: data mixture, licences, recipe (eval.json: later)
    shutil.rmtree(partial / CHECKPOINT, ignore_errors=True)
    publish(partial, out, overwrite=True)
    return {"model": str(out), "steps": step, "epochs": len(history),
            "best_epoch": best_record["epoch"],
            "stsb_dev_spearman": best_record["stsb_dev_spearman"],
            "seconds": round(history[-1]["elapsed_s"], 1), "parameters": counts}


def train_step(model, optimizer, scheduler, examples, batch: list[int], cfg, device,
               routing_log: list[dict[str, Any]] | None = None) -> float:
    """One optimiser step on one batch; returns its InfoNCE loss.

    A mixture-of-experts model also minimises its balance loss (summed over layers, times
    cfg.balance_loss_weight); that loss and the per-layer expert counts go to `routing_log`.
    """
    take_routing(model)  # drop what validation and STS-B scoring routed since the last step
    optimizer.zero_grad(set_to_none=True)
    sequences = _batch_sequences(examples, batch)
    if cfg.grad_cache_chunk and len(sequences) > cfg.grad_cache_chunk:
        loss = _grad_cache_backward(model, sequences, len(batch), device, cfg, routing_log)
    else:
        with autocast(device, cfg.amp):
            loss = _sequences_loss(model, sequences, len(batch), cfg)
        _backward(model, loss, cfg, routing_log)
    _optimise(model, optimizer, scheduler, cfg)
    return loss.item()


def sts_step(model, optimizer, scheduler, graded, batch: list[int], cfg, device) -> float:
    """One optimiser step of the STS-B stage's loss (cfg.sts_loss) on a batch of graded pairs
    (`_tokenize_graded` rows); returns the loss. CoSENT's scale is InfoNCE's `cfg.scale`."""
    take_routing(model)
    optimizer.zero_grad(set_to_none=True)
    first, second, scores = graded
    with autocast(device, cfg.amp):
        vectors = model.encode_packed([first[i] for i in batch] + [second[i] for i in batch],
                                      cfg.length_chunks).float()
    gold = torch.tensor([scores[i] for i in batch], device=device)
    cosines = (vectors[: len(batch)] * vectors[len(batch):]).sum(-1)
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
    routing = take_routing(model)
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


def _info_nce(vectors: torch.Tensor, pairs: int, cfg) -> torch.Tensor:
    B = pairs
    return info_nce(vectors[:B], vectors[B: 2 * B], vectors[2 * B:], cfg.scale, cfg.symmetric)


def _sequences_loss(model, sequences: list[list[int]], pairs: int, cfg) -> torch.Tensor:
    """One forward pass over a batch's sequences (`_batch_sequences` order) and its InfoNCE."""
    # packed: no linear layer sees a padding row (see Encoder.encode_packed)
    vectors = model.encode_packed(sequences, cfg.length_chunks).float()
    return _info_nce(vectors, pairs, cfg)


def _batch_loss(model, examples, batch, device, cfg) -> torch.Tensor:
    """One forward pass over anchors, positives and the batch's hard negatives."""
    return _sequences_loss(model, _batch_sequences(examples, batch), len(batch), cfg)


def _grad_cache_backward(model, sequences, pairs: int, device, cfg,
                         routing_log: list[dict[str, Any]] | None) -> torch.Tensor:
    """Accumulate the gradient of InfoNCE over the whole batch while holding the activations of
    only `cfg.grad_cache_chunk` sequences at a time (gradient caching, Gao et al. 2021).

    1. embed every chunk without a graph; 2. the loss and its gradient with respect to those
    vectors, over the whole batch (every in-batch negative counts); 3. embed each chunk again
    with a graph and backpropagate its slice of that gradient. Each chunk replays the random
    state of its first pass, so dropout draws the same masks and the result is the gradient of
    one big batch (to float rounding) at about 4/3 of its compute and a fraction of its memory.
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
                parts.append(model.encode_packed([sequences[i] for i in chunk],
                                                 cfg.length_chunks).float())
    take_routing(model)  # the graph-free pass routes again below
    vectors = torch.empty(len(sequences), parts[0].shape[1], device=device)
    vectors[torch.cat(rows)] = torch.cat(parts)
    vectors.requires_grad_(True)
    loss = _info_nce(vectors, pairs, cfg)
    loss.backward()
    balance, assigned = 0.0, None
    for chunk, chunk_rows, state in zip(chunks, rows, states, strict=True):
        _set_rng_state(device, state)
        with autocast(device, cfg.amp):
            part = model.encode_packed([sequences[i] for i in chunk], cfg.length_chunks).float()
        surrogate = (part * vectors.grad[chunk_rows]).sum()
        routing = take_routing(model)
        if routing is not None:  # the balance loss is a mean: weight each chunk by its share
            surrogate = surrogate + (cfg.balance_loss_weight * len(chunk) / len(sequences)
                                     * routing.balance_loss)
            balance += routing.balance_loss.item() * len(chunk) / len(sequences)
            assigned = routing.assigned if assigned is None else [
                [a + b for a, b in zip(x, y, strict=True)]
                for x, y in zip(assigned, routing.assigned, strict=True)]
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


