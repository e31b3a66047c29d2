"""Training on two gloo processes equals training on one with the same global batch.

Each test spawns two CPU processes that join a gloo group through a file in tmp_path; the
processes write what they saw to files, which the test compares with a single-process run.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from semsearch.encoder import distributed
from semsearch.encoder.distributed import Ranks
from semsearch.encoder.model import Encoder
from semsearch.encoder.presets import preset

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
GLOBAL_BATCH = 8
STEPS = 3


def _join(rank: int, folder: str) -> Ranks:
    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/rendezvous",
                                         rank=rank, world_size=WORLD)
    return Ranks(rank, WORLD)


def _leave(ranks: Ranks) -> None:
    """Leave the group as training does: a barrier first, so that no rank destroys its gloo
    context while a peer's last collective still talks to it (without it, rank 0 aborted with
    "terminate called without an active exception" in about 1 run in 6). Before that, the
    DDP wrapper of a training step is collected (it sits in a reference cycle): its reducer
    holds the group, and freed only at interpreter exit it tore the gloo context down after
    destroy_process_group, the same abort, once in a full suite under load."""
    gc.collect()
    distributed.barrier(ranks)
    torch.distributed.destroy_process_group()


def _gathered_logits_worker(rank: int, folder: str) -> None:
    ranks = _join(rank, folder)
    L, D = 3, 4
    generator = torch.Generator().manual_seed(rank)
    anchors = torch.nn.functional.normalize(torch.randn(L, D, generator=generator), dim=1)
    positives = anchors.clone()  # each anchor's positive is itself: cosine 1
    counts = [1, 2]  # rank 0 has one hard negative, rank 1 two
    negatives = -torch.ones(counts[rank], D) * (rank + 1)
    logits, labels = distributed.contrastive_logits(anchors, positives, negatives, counts, 20.0,
                                                    ranks)
    np.save(f"{folder}/logits{rank}.npy", logits.detach().numpy())
    np.save(f"{folder}/labels{rank}.npy", labels.numpy())
    np.save(f"{folder}/anchors{rank}.npy", anchors.numpy())
    _leave(ranks)


@pytest.mark.slow  # two processes start torch
def test_gathered_logits_put_rank_r_positive_i_at_column_r_times_l_plus_i(tmp_path):
    mp.spawn(_gathered_logits_worker, args=(str(tmp_path),), nprocs=WORLD)
    L = 3
    anchors = [np.load(tmp_path / f"anchors{r}.npy") for r in range(WORLD)]
    for r in range(WORLD):
        logits, labels = np.load(tmp_path / f"logits{r}.npy"), np.load(tmp_path / f"labels{r}.npy")
        assert logits.shape == (L, WORLD * L + 3)  # every positive, then every hard negative
        assert labels.tolist() == [r * L + i for i in range(L)]
        for i in range(L):
            assert logits[i, r * L + i] == pytest.approx(20.0, abs=1e-4)
            for q in range(WORLD):  # the positive columns hold every rank's in rank order
                expected = 20.0 * anchors[q] @ anchors[r][i]
                np.testing.assert_allclose(logits[i, q * L: (q + 1) * L], expected, atol=1e-4)
            # negatives: rank 0's one (all -1), then rank 1's two (all -2)
            total = anchors[r][i].sum()
            np.testing.assert_allclose(logits[i, WORLD * L:], 20.0 * total * np.array([-1, -2, -2]),
                                       atol=1e-4)


# --- the training steps ----------------------------------------------------------------------


def _setup(grad_cache: int):
    """A tiny dropout-free encoder, its optimiser and schedule, and synthetic token sequences
    (every third pair without a hard negative, so the ranks' slices hold unequal numbers)."""
    config = preset("tiny")
    model_config = replace(config.model, vocab_size=50, dropout=0.0)
    cfg = replace(config.train, grad_cache_chunk=grad_cache, sts_batch=4, amp="off")
    torch.manual_seed(0)
    model = Encoder(model_config)
    from semsearch.encoder.train_steps import make_optimizer

    optimizer = make_optimizer(model, 1e-2, 0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _s: 1.0)
    rng = np.random.default_rng(0)

    def sequence():
        return [2] + rng.integers(5, 50, size=int(rng.integers(3, 12))).tolist() + [3]

    count = GLOBAL_BATCH * STEPS
    examples = ([sequence() for _ in range(count)], [sequence() for _ in range(count)],
                [None if i % 3 == 0 else sequence() for i in range(count)])
    graded = ([sequence() for _ in range(8)], [sequence() for _ in range(8)],
              [float(x) for x in rng.uniform(0, 5, 8)])
    return model, optimizer, scheduler, examples, graded, cfg


def _run_steps(ranks: Ranks, grad_cache: int) -> tuple[list[float], dict]:
    from semsearch.encoder.train_steps import distributed_model, sts_step, train_step

    model, optimizer, scheduler, examples, graded, cfg = _setup(grad_cache)
    net = distributed_model(model, ranks, torch.device("cpu"))
    losses = []
    for step in range(STEPS):
        batch = list(range(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH))
        losses.append(train_step(net, optimizer, scheduler, examples, batch, cfg,
                                 torch.device("cpu"), None, ranks=ranks))
    losses.append(sts_step(net, optimizer, scheduler, graded, [0, 1, 2, 3], cfg,
                           torch.device("cpu"), ranks))
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _training_worker(rank: int, folder: str, grad_cache: int) -> None:
    ranks = _join(rank, folder)
    losses, weights = _run_steps(ranks, grad_cache)
    Path(f"{folder}/losses{rank}.json").write_text(json.dumps(losses))
    np.savez(f"{folder}/weights{rank}.npz", **{k: v.numpy() for k, v in weights.items()})
    _leave(ranks)


@pytest.mark.slow
@pytest.mark.parametrize("grad_cache", [0, 6], ids=["plain", "grad-cache"])
def test_two_processes_give_the_losses_and_weights_of_one(tmp_path, grad_cache):
    mp.spawn(_training_worker, args=(str(tmp_path), grad_cache), nprocs=WORLD)
    single_losses, single_weights = _run_steps(Ranks(), grad_cache)
    for rank in range(WORLD):
        losses = json.loads((tmp_path / f"losses{rank}.json").read_text())
        np.testing.assert_allclose(losses, single_losses, rtol=1e-5, atol=1e-6)
        weights = np.load(tmp_path / f"weights{rank}.npz")
        for name, value in single_weights.items():
            np.testing.assert_allclose(weights[name], value.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=name)
    assert single_losses[0] != single_losses[STEPS - 1]  # the steps did train


# --- torchrun --------------------------------------------------------------------------------


def _torchrun(*args: str, env_extra: dict | None = None, timeout: int = 600):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(WORLD),
         "--standalone", "-m", "semsearch", "train", *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO,
    )


@pytest.mark.slow
def test_torchrun_trains_one_model_and_rank_0_writes_it(tmp_path, data_dir):
    out = tmp_path / "model"
    result = _torchrun("--preset", "tiny", "--data-dir", str(data_dir), "--out", str(out),
                       "--set", "train.max_steps=4", "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["step"] == 4
    assert result.stderr.count("training model:") == 1  # rank 0 alone logs
    assert not (tmp_path / "model.partial").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_worker(rank: int, folder: str, data_dir: str, port: int, die_at: int,
                  resume: bool) -> None:
    """A rank of `train_model` as torchrun would start it; rank 1 dies at step `die_at`."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from semsearch.encoder.train import train_model

    def on_step(step: int) -> bool:
        if rank == 1 and step == die_at:
            os._exit(1)  # killed mid-epoch, as by the OOM killer
        return False

    config = replace(preset("tiny"), train=replace(preset("tiny").train, epochs=2))
    try:
        summary = train_model(config, Path(folder) / "model", data_dir=data_dir, resume=resume,
                              progress=False, log=lambda _m: None, on_step=on_step)
        outcome = {"ok": True, "steps": summary["steps"]}
    except Exception as error:  # noqa: BLE001 - the test reads what rank 0 saw
        outcome = {"ok": False, "type": type(error).__name__, "message": str(error)}
    if rank == 0:
        Path(f"{folder}/outcome.json").write_text(json.dumps(outcome))


@pytest.mark.slow
def test_a_dead_rank_ends_the_run_with_a_clear_error_and_resume_finishes_it(tmp_path, data_dir):
    # tiny: 18 steps an epoch, a checkpoint after each; rank 1 dies in epoch 2
    spawn = mp.get_context("spawn")
    port = _free_port()
    processes = [spawn.Process(target=_train_worker,
                               args=(rank, str(tmp_path), str(data_dir), port, 22, False))
                 for rank in range(WORLD)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=600)
    assert [process.exitcode for process in processes] == [0, 1]  # rank 0 ended, not hung
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert not outcome["ok"] and outcome["type"] == "RankLost", outcome
    assert "another training process died" in outcome["message"]
    assert "--resume" in outcome["message"] and "\n" not in outcome["message"]
    assert (tmp_path / "model.partial" / "checkpoint" / "state.pt").is_file()
    mp.spawn(_train_worker, args=(str(tmp_path), str(data_dir), _free_port(), -1, True),
             nprocs=WORLD)
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert outcome == {"ok": True, "steps": 36}, outcome
    assert (tmp_path / "model" / "model.safetensors").is_file()
