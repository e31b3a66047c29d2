"""What a training run keeps between steps and across a resume: the loop state (one object,
checkpointed and restored whole), the checkpoint on disk, the output folder's checks, the
training clock, and the stop flag that Ctrl-C and SIGTERM raise.
"""

from __future__ import annotations

import math
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from semsearch.encoder.presets import RunConfig
from semsearch.encoder.store import (
    CONFIG,
    WEIGHTS,
    check_model_replaceable,
    read_config,
    save_weights,
)
from semsearch.errors import ConfigError

CHECKPOINT = "checkpoint"  # sub-folder of the partial folder holding the resumable state


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


class Clock:
    """Training seconds: those before this process (from the checkpoint) plus this run's."""

    def __init__(self, before: float) -> None:
        self.before, self.started = before, time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.started


def selection_score(record: dict[str, Any]) -> float:
    """What picks the best epoch: STS-B dev Spearman, else minus the validation loss."""
    if record["stsb_dev_spearman"] is not None:
        return record["stsb_dev_spearman"]
    return -(record["val_loss"] or 0.0)


def prepare_folder(config: RunConfig, out: Path, partial: Path, resume: bool, overwrite: bool):
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


class StopFlag:
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
