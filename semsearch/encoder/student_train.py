"""A transformer student distilled on unlabelled text (`semsearch distill --preset distilled`).

The student starts from its teacher, as DistilBERT did: the teacher's token and position
embeddings and every other one of its layers (0, 2, 4 of six), at the `distilled` preset's window
(128 tokens). It is then trained so its vector of each text matches the teacher's (1 - cosine),
on the unlabelled texts of data/unlabelled.py whose teacher vectors encoder/teacher.py cached,
with the word embeddings frozen (they are most of the parameters and already the teacher's).
Batches are buckets of texts of similar length, so a batch is not mostly padding; many small
steps (64 texts) rather than a few huge ones.

Written under `<out>.partial/`; a checkpoint every `checkpoint_minutes` lets `--resume` go on
from the last one (the teacher's vectors stay in their cache).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semsearch import __version__
from semsearch.encoder.heap import reuse_freed_memory
from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.static_train import CHECKPOINT, Log, prepare_out, with_settings
from semsearch.encoder.store import (
    CONFIG,
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
from semsearch.errors import ConfigError, DataError


@dataclass(frozen=True)
class StudentConfig:
    # teacher layers the student keeps, in order; "" (the default): half of them, spread evenly
    # from the first to the last (0,2,5 of six: the last layer kept, whose output the student
    # is trained toward; 10-minute probes: MLQuestions 0.515 against 0.436 for 0,2,4)
    keep_layers: str = ""
    # the student's window (the distilled preset's); longer texts keep their first tokens
    max_seq_len: int = 128
    # passes over the texts
    epochs: int = 2
    # texts per step
    batch_size: int = 64
    # AdamW's peak rate (warmup 5%, cosine decay to 10%; 10-minute probes: 3e-4 over 1e-4)
    lr: float = 3e-4
    # stop after this many minutes of training, at a step boundary (0: no limit); the rate's
    # warmup and cosine decay then run over whichever ends first, the epochs or the minutes,
    # so a run cut by time still ends at its lowest rate
    max_minutes: float = 0.0
    # save a resumable checkpoint this often
    checkpoint_minutes: float = 10.0
    # keep the teacher's word embeddings as they are
    freeze_embeddings: bool = True
    seed: int = 0

    @classmethod
    def with_overrides(cls, values: dict[str, str]) -> StudentConfig:
        """Apply `--set key=value` pairs (bare keys or student.KEY)."""
        return with_settings(cls(), values, "student", "a distilled transformer student")

    def layers_of(self, teacher_layers: int) -> list[int]:
        """The teacher layers kept: keep_layers (ValueError if it is not numbers), or half of
        the teacher's (rounded up) spread evenly from its first to its last (0,2,5 of six)."""
        if self.keep_layers:
            return [int(i) for i in self.keep_layers.split(",")]
        count = (teacher_layers + 1) // 2
        if count == 1:
            return [teacher_layers - 1]
        return [int(i) for i in np.round(np.linspace(0, teacher_layers - 1, count))]


def student_from_teacher(teacher: Path, config: StudentConfig) -> tuple[Encoder, dict]:
    """(student Encoder, teacher's config.json) with the teacher's embeddings and kept layers."""
    teacher_config = read_config(teacher)
    shape = dict(teacher_config["model"])
    if shape.get("kind", "transformer") != "transformer":
        raise ConfigError(f"--preset distilled starts from a transformer teacher's layers; "
                          f"{teacher} is a {shape['kind']} model")
    try:
        keep = config.layers_of(shape["layers"])
    except ValueError:
        raise ConfigError(f"keep_layers {config.keep_layers!r} is not a list of layer numbers, "
                          "e.g. 0,2,4") from None
    if not keep or any(not 0 <= i < shape["layers"] for i in keep):
        raise ConfigError(f"keep_layers {config.keep_layers!r}: the teacher has layers 0 to "
                          f"{shape['layers'] - 1}")
    window = min(config.max_seq_len, shape["max_seq_len"])
    student_shape = {**shape, "layers": len(keep), "max_seq_len": window}
    state = load_weights(teacher / WEIGHTS)
    mapped = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            _, layer, rest = key.split(".", 2)
            if int(layer) in keep:
                mapped[f"blocks.{keep.index(int(layer))}.{rest}"] = value
        elif key == "position_embedding.weight":
            mapped[key] = value[:window]
        else:
            mapped[key] = value
    model = Encoder(EncoderConfig(**student_shape))
    model.load_state_dict(mapped)
    return model, teacher_config


def _buckets(lengths: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Batches of texts of similar length (sorted, cut, the batches shuffled)."""
    rng = np.random.default_rng(seed)
    # sort with a little noise so the buckets differ from epoch to epoch
    order = np.argsort(lengths + rng.uniform(0, 4, len(lengths)), kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def distill_transformer(teacher: str | Path, out: str | Path, config: StudentConfig,
                        texts: list[str], text_counts: dict[str, int], resume: bool = False,
                        overwrite: bool = False, progress: bool = True,
                        log: Log = print) -> dict[str, Any]:
    """Distil a transformer student of `teacher` on `texts`; write the model folder `out`."""
    from safetensors.torch import load_file, save_file

    from semsearch.encoder.batching import pad
    from semsearch.encoder.store import resolve_model
    from semsearch.encoder.teacher import teacher_vectors
    from semsearch.encoder.tokenizer import Tokenizer

    started = time.perf_counter()
    out, teacher = Path(out), resolve_model(teacher)
    partial = prepare_out(out, resume, overwrite)
    try:
        model, teacher_config = student_from_teacher(teacher, config)
        kept = config.layers_of(teacher_config["model"]["layers"])
        config = replace(config, keep_layers=",".join(map(str, kept)))  # recorded as kept
        vectors, teacher_summary = teacher_vectors(teacher, texts, log, progress)
        if not np.isfinite(vectors).all():
            raise DataError(f"teacher {teacher} gave non-finite vectors; check the teacher model")
        targets = torch.from_numpy(vectors / np.maximum(
            np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
        if model.config.hidden != targets.shape[1]:
            raise ConfigError(f"the student is {model.config.hidden} wide and the teacher's "
                              f"vectors {targets.shape[1]}; a teacher whose vectors are not its "
                              "hidden width cannot be a layer-subset student's start")
        tokenizer = Tokenizer.load(teacher / TOKENIZER)
        ids = tokenizer.encode(texts, max_length=model.config.max_seq_len)
        lengths = np.array([len(s) for s in ids])
        model.token_embedding.weight.requires_grad_(not config.freeze_embeddings)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
        steps_per_epoch = math.ceil(len(ids) / config.batch_size)
        total = steps_per_epoch * config.epochs
        warmup = max(1, total // 20)

        minutes_before = 0.0  # of training, in the runs this one resumes

        def progress_at(step: int) -> float:
            """How far through the run: by steps, or by time where max_minutes ends it first."""
            done = step / total
            if config.max_minutes:
                elapsed = minutes_before + (time.perf_counter() - fit_started) / 60
                done = max(done, elapsed / config.max_minutes)
            return min(1.0, done)

        def factor(step: int) -> float:
            done = progress_at(step)
            if done < 0.05:  # warmup: the first 5% of the run
                return max(done / 0.05, 1 / warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (done - 0.05) / 0.95))

        fit_started = time.perf_counter()
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        step, history = 0, []
        if resume:
            state = load_file(str(partial / CHECKPOINT / "state.safetensors"))
            model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
            loop = json.loads((partial / CHECKPOINT / "loop.json").read_text(encoding="utf-8"))
            step, history = loop["step"], loop["history"]
            minutes_before = float(loop.get("minutes", 0.0))
            schedule.last_epoch = step
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor(step)
            log(f"resuming at step {step:,} of {total:,}")
        log(f"student: {model.config.layers} layers of {teacher.name} (its layers "
            f"{config.keep_layers}), window {model.config.max_seq_len}, {total:,} steps of "
            f"{config.batch_size} texts")

        def checkpoint() -> None:
            folder = partial / CHECKPOINT
            folder.mkdir(exist_ok=True)
            tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(tensors, str(folder / "state.safetensors.tmp"))
            (folder / "state.safetensors.tmp").replace(folder / "state.safetensors")
            write_json(folder / "loop.json", {
                "step": step, "history": history,
                "minutes": minutes_before + (time.perf_counter() - fit_started) / 60})

        with reuse_freed_memory():  # each step reuses the last one's activations' memory
            fit_started = last_checkpoint = time.perf_counter()
            stopped = False
            model.train()
            for epoch in range(step // steps_per_epoch, config.epochs):
                batches = _buckets(lengths, config.batch_size, config.seed + epoch)
                losses = []
                for rows in batches[step - epoch * steps_per_epoch:]:
                    input_ids, mask = pad([ids[i] for i in rows])
                    cosine = (model(input_ids, mask) * targets[rows]).sum(-1)
                    loss = (1 - cosine).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                    schedule.step()
                    step += 1
                    losses.append(loss.item())
                    now = time.perf_counter()
                    if step % 100 == 0:
                        log(f"step {step:,}/{total:,}  loss {np.mean(losses[-100:]):.4f}  "
                            f"{(now - fit_started) / 60:.1f} min")
                    if now - last_checkpoint > config.checkpoint_minutes * 60:
                        checkpoint()
                        last_checkpoint = now
                    if (config.max_minutes and minutes_before + (now - fit_started) / 60
                            > config.max_minutes):
                        stopped = True
                        break
                history.append({"epoch": epoch + 1, "steps": step,
                                "train_loss": round(float(np.mean(losses)) if losses else 0.0, 5),
                                "minutes": round((time.perf_counter() - fit_started) / 60, 1)})
                checkpoint()
                if stopped:
                    log(f"stopped at step {step:,} of {total:,}: max_minutes {config.max_minutes}")
                    break
        model.eval()
        teacher_config = {k: v for k, v in teacher_config.items()
                          if k not in ("source", "imported", "name")}
        shutil.copyfile(teacher / TOKENIZER, partial / TOKENIZER)
        save_weights(model, partial / WEIGHTS)
        write_json(partial / CONFIG, {
            **teacher_config, "format_version": FORMAT_VERSION, "package_version": __version__,
            "name": out.name, "model": asdict(model.config),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "run": {"kind": "distilled on unlabelled text", "teacher": str(teacher),
                    "texts": text_counts, "student": asdict(config), "steps": step},
            "parameters": model.parameter_counts()})
        write_json(partial / HISTORY, history)
        shutil.rmtree(partial / CHECKPOINT, ignore_errors=True)
        publish(partial, out, overwrite)
    except BaseException:
        if not (partial / CHECKPOINT / "loop.json").is_file():
            shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"model": str(out), "kind": "transformer", "layers": model.config.layers,
            "texts": len(texts), "steps": step, "teacher": teacher_summary,
            "history": history, "seconds": round(time.perf_counter() - started, 1)}
