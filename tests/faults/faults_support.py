"""Helpers and fixtures of the fault-injection tests: the real CLI in-process or as a subprocess
(killed, signalled, raced, memory-limited), with the hash embedder standing in for a model.

No conftest.py in this folder: tests/index imports its conftest by that bare module name, which a
second conftest module would shadow; test modules import the `workspace` fixture from here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import HashEmbedder

FAKE_CLI = Path(__file__).with_name("fake_cli.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A temp folder as the working directory, indexes/ inside it, the hash embedder as model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setattr(
        "semsearch.embedder.load_embedder",
        lambda model=None, **options: HashEmbedder(),
    )
    return tmp_path


def cli(*args: str):
    """Run the CLI in-process; returns click's Result (exit_code, output)."""
    from semsearch.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def environment(workspace: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        SEMSEARCH_INDEXES=str(workspace / "indexes"),
        OMP_NUM_THREADS="1",
        **extra,
    )
    return env


def start(workspace: Path, *args: str, preexec_fn=None, **extra: str) -> subprocess.Popen:
    """Start the real CLI (hash embedder) as a subprocess in `workspace`."""
    return subprocess.Popen(
        [sys.executable, str(FAKE_CLI), *map(str, args)],
        cwd=workspace,
        env=environment(workspace, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
    )


def run(workspace: Path, *args: str, timeout: float = 60, **extra: str):
    """Run the real CLI (hash embedder) as a subprocess to the end: (exit code, stdout, stderr)."""
    process = start(workspace, *args, **extra)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def assert_clean_failure(code: int, err: str, *phrases: str) -> None:
    """A non-zero exit with a one-line error naming the problem, and no traceback."""
    assert code != 0, err
    assert "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in err, err


def write_corpus(path: Path, count: int, prefix: str = "doc") -> Path:
    path.write_text("".join(f"{prefix} {i} about topic {i % 17} and thing {i % 5}\n"
                            for i in range(count)))
    return path


def folder_bytes(folder: Path) -> dict:
    """Every file under `folder` with its bytes: to show nothing changed."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
