"""kill -9 at several points of a write, SIGTERM / SIGINT, and two writers at once: the index is
never damaged, nothing is lost, leftovers are cleaned by the next writer, a second writer waits
or refuses."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from faults_support import (
    assert_clean_failure,
    run,
    start,
    workspace,  # noqa: F401 - a fixture
    write_corpus,
)

from semsearch.index import SearchIndex
from semsearch.index.folder import is_index_folder


def build(workspace, count=30, name="idx", *extra):
    corpus = write_corpus(workspace / f"{name}.txt", count)
    code, _, err = run(workspace, "index", corpus, "--out", name, *extra)
    assert code == 0, err
    return workspace / name


def documents(folder):
    opened = SearchIndex.open(folder)
    try:
        return opened.manifest.documents
    finally:
        opened.close()


def leftovers(workspace, name="idx"):
    return sorted(p.name for p in workspace.iterdir() if p.is_dir() and p.name.startswith(f".{name}."))


def wait_for(path, process, seconds=30):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the writer never started embedding"
        time.sleep(0.02)


# two cases run by default; the full matrix (each is three subprocesses) is marked slow
KILL_CASES = [
    pytest.param(point, append, id=f"{point}-{'append' if append else 'build'}",
                 marks=() if (point, append) in {("between_renames", False), ("embed", True)}
                 else pytest.mark.slow)
    for point in ("embed", "index_written", "between_renames", "before_latest")
    for append in (False, True)
]


@pytest.mark.parametrize(("point", "append"), KILL_CASES)
def test_kill_9_never_damages_the_index_and_the_next_writer_cleans_up(workspace, point, append):
    folder = build(workspace, 30)
    more = write_corpus(workspace / "more.txt", 10, prefix="more")
    args = ["index", more, "--out", "idx"] + (["--append"] if append else [])
    marker = workspace / "killed-at"
    code, _, err = run(workspace, *args, FAKE_KILL_AT=point, FAKE_KILL_MARKER=str(marker))
    # killed, and at the point armed (a patch of a name that moved would never be reached)
    assert code == -signal.SIGKILL, err
    assert marker.read_text() == point
    if point == "between_renames":
        assert not folder.exists() and leftovers(workspace)  # the one window a crash shows
    else:
        # every other point: the previous version, or the new one once swapped in, is whole
        assert documents(folder) in (30, 40 if append else 10)
    # the next writer restores / removes what the dead one left, then writes normally
    code, _, err = run(workspace, "index", write_corpus(workspace / "third.txt", 5, "third"),
                       "--out", "idx", "--append")
    assert code == 0, err
    assert leftovers(workspace) == [] and is_index_folder(folder)
    assert documents(folder) in (35, 45 if append else 15)


def _default_sigint() -> None:
    """Give the CLI the default SIGINT, as an interactive shell does. A suite started from a
    background job inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored, so Ctrl-C
    would never reach the process and the test would wait out the encoder's delay."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_sigterm_and_sigint_clean_up_and_exit_non_zero(workspace, how):
    folder = build(workspace, 30)
    marker = workspace / "embedding"
    process = start(workspace, "index", write_corpus(workspace / "big.txt", 50), "--out", "idx",
                    FAKE_ENCODE_DELAY="30", FAKE_ENCODE_MARKER=str(marker),
                    preexec_fn=_default_sigint)
    wait_for(marker, process)
    process.send_signal(how)
    _, err = process.communicate(timeout=30)
    assert process.returncode == (143 if how == signal.SIGTERM else 1), err
    assert_clean_failure(process.returncode, err, "terminated" if how == signal.SIGTERM else
                         "interrupted")
    assert leftovers(workspace) == [] and documents(folder) == 30


@pytest.mark.slow
def test_a_second_writer_refuses_or_waits_and_no_update_is_lost(workspace):
    folder = build(workspace, 30)
    marker = workspace / "embedding"
    first = start(workspace, "index", write_corpus(workspace / "a.txt", 10, "alpha"), "--out", "idx",
                  "--append", FAKE_ENCODE_DELAY="8", FAKE_ENCODE_MARKER=str(marker))
    wait_for(marker, first)
    # without --wait: refused at once, naming the holder, changing nothing
    code, _, err = run(workspace, "index", write_corpus(workspace / "b.txt", 10, "beta"),
                       "--out", "idx", "--append")
    assert_clean_failure(code, err, "being written by another semsearch process", "--wait")
    code, _, err = run(workspace, "remove", "idx:1", "--index", "idx")
    assert_clean_failure(code, err, "being written by another semsearch process")
    # with --wait: queued behind the first, and both appends are there
    second = start(workspace, "index", workspace / "b.txt", "--out", "idx", "--append",
                   "--wait", "60")
    assert first.wait(timeout=60) == 0, first.communicate()
    assert second.wait(timeout=60) == 0, second.communicate()
    assert documents(folder) == 50


@pytest.mark.slow
def test_readers_racing_rewrites_see_one_whole_version(workspace):
    """A query racing `remove` rewrites once read "inconsistent ... rebuild"."""
    folder = build(workspace, 400)
    remover = start(workspace, "remove", *[f"idx:{i}" for i in range(1, 41)], "--index", "idx",
                    "--wait", "30")  # the chain below may take the lock first
    removers = [remover]
    # 12 single removes one after another, each a full rewrite and swap of the folder
    script = " && ".join(
        f"{sys.executable} {REPO_CLI} remove idx:{i} --index idx --wait 30" for i in range(41, 53))
    import subprocess

    from faults_support import environment

    chain = subprocess.Popen(["bash", "-c", script], cwd=workspace,
                             env=environment(workspace), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    removers.append(chain)
    seen = set()
    opened_count = 0
    while any(p.poll() is None for p in removers):
        opened = SearchIndex.open(folder)  # must never raise
        try:
            seen.add(opened.manifest.documents)
            assert opened.store.count_chunks() == opened.manifest.count == opened.index.ntotal
        finally:
            opened.close()
        opened_count += 1
    assert all(p.returncode == 0 for p in removers), [p.communicate() for p in removers]
    assert documents(folder) == 348 and opened_count > 0 and len(seen) >= 1


REPO_CLI = __import__("faults_support").FAKE_CLI


def test_a_held_lock_refuses_every_writer_and_readers_still_read(workspace):
    """The write lock held by "another process" (an flock on its own open file, as a second
    process holds it): build, --append, remove and --wait all refuse and change nothing."""
    import fcntl
    import os

    from faults_support import cli, folder_bytes

    from semsearch.index.lock import write_lock_path

    assert cli("index", write_corpus(workspace / "idx.txt", 10), "--out", "idx").exit_code == 0
    folder = workspace / "idx"
    before = folder_bytes(folder)
    handle = os.open(write_lock_path(folder), os.O_RDWR)
    fcntl.flock(handle, fcntl.LOCK_EX)
    os.pwrite(handle, b"4242\n", 0)
    try:
        more = write_corpus(workspace / "more.txt", 3, "more")
        for args in (["index", more, "--out", "idx"], ["index", more, "--out", "idx", "--append"],
                     ["remove", "idx:1", "--index", "idx"],
                     ["index", more, "--out", "idx", "--append", "--wait", "0.3"]):
            result = cli(*args)
            assert result.exit_code == 1 and "(pid 4242)" in result.output, result.output
        assert cli("query", "doc 1", "--index", "idx").exit_code == 0
        assert folder_bytes(folder) == before
    finally:
        os.close(handle)
    assert cli("remove", "idx:1", "--index", "idx").exit_code == 0
