"""`semsearch index --resume`: a build killed (kill -9, Ctrl-C) after some of its checkpoints
leaves the previous index answering and its finished part on disk; the same command with
--resume encodes only the rest and writes the folder an uninterrupted build writes."""

from __future__ import annotations

import signal
import sqlite3
import time

import numpy as np
import pytest
from faults_support import run, start, workspace, write_corpus  # noqa: F401 - a fixture

from semsearch.index import SearchIndex
from semsearch.index.folder import is_index_folder

CHECKPOINT = "100"  # documents between checkpoints (a build's default is 65,536)


def leftovers(workspace, name="idx"):
    return sorted(p for p in workspace.iterdir() if p.is_dir() and p.name.startswith(f".{name}."))


def encoded(log) -> int:
    return sum(int(line) for line in log.read_text().split()) if log.exists() else 0


def contents(folder):
    """What an index folder holds, in comparable form: rows, vectors, BM25 scores."""
    with sqlite3.connect(folder / "documents.sqlite") as connection:
        rows = connection.execute("SELECT row, doc_id, chunk, text FROM chunks ORDER BY row"
                                  ).fetchall()
        tables = {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    opened = SearchIndex.open(folder)
    try:
        vectors = (opened.index.index.reconstruct_n(0, opened.index.ntotal)
                   if opened.index is not None else None)
        bm25 = {name: np.asarray(opened.lexical.scores[name]) for name in ("data", "indptr")}
        return rows, tables, vectors, bm25, opened.manifest.documents
    finally:
        opened.close()


def same(a, b):
    assert a[0] == b[0] and a[1] == b[1] and a[4] == b[4]
    if a[2] is not None:
        np.testing.assert_array_equal(a[2], b[2])
    for name in a[3]:
        np.testing.assert_array_equal(a[3][name], b[3][name])


@pytest.mark.parametrize("lexical_only", [False, True], ids=["vectors", "lexical-only"])
def test_kill_9_then_resume_encodes_only_the_rest(workspace, lexical_only):
    old = write_corpus(workspace / "old.txt", 20, "old")
    extra = ["--lexical-only"] if lexical_only else []
    assert run(workspace, "index", old, "--out", "idx", "--type", "flat", *extra)[0] == 0
    corpus = write_corpus(workspace / "big.txt", 700)
    args = ["index", corpus, "--out", "idx", "--type", "flat", "--batch-size", "2", *extra]
    log = workspace / "encoded.log"
    code, _, err = run(workspace, *args, FAKE_KILL_AT="checkpoint", FAKE_KILL_CHECKPOINT="3",
                       FAKE_CHECKPOINT_DOCUMENTS=CHECKPOINT, FAKE_ENCODE_LOG=str(log))
    assert code == -signal.SIGKILL, err
    before = encoded(log)
    assert (lexical_only and before == 0) or before >= 300
    # the previous version answers; the dead build's folder waits for --resume
    opened = SearchIndex.open(workspace / "idx")
    assert opened.manifest.documents == 20
    opened.close()
    assert len(leftovers(workspace)) == 1
    log.unlink(missing_ok=True)
    code, _, err = run(workspace, *args, "--resume", FAKE_CHECKPOINT_DOCUMENTS=CHECKPOINT,
                       FAKE_ENCODE_LOG=str(log))
    assert code == 0, err
    assert "resuming" in err and leftovers(workspace) == []
    assert is_index_folder(workspace / "idx")
    if not lexical_only:  # only what the dead build had not finished was encoded again
        assert 0 < encoded(log) <= 700 - 300 + 64  # (a window past the last checkpoint, at most)
    resumed = contents(workspace / "idx")
    assert resumed[1] == {"documents", "chunks"}  # no progress record in a finished store
    code, _, err = run(workspace, *args[:2], "--out", "fresh", *args[4:],
                       FAKE_CHECKPOINT_DOCUMENTS=CHECKPOINT)
    assert code == 0, err
    same(resumed, contents(workspace / "fresh"))


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_keeps_the_finished_part_and_says_how_to_go_on(workspace):
    corpus = write_corpus(workspace / "big.txt", 600)
    log = workspace / "encoded.log"
    process = start(workspace, "index", corpus, "--out", "idx", "--type", "flat",
                    "--batch-size", "2", FAKE_CHECKPOINT_DOCUMENTS=CHECKPOINT,
                    FAKE_ENCODE_DELAY="0.05", FAKE_ENCODE_LOG=str(log),
                    preexec_fn=_default_sigint)
    deadline = time.monotonic() + 60
    while encoded(log) < 300:  # past a few checkpoints
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "interrupted" in err and "Traceback" not in err
    assert "--resume continues it" in err and len(leftovers(workspace)) == 1
    assert not (workspace / "idx").exists()
    # a build without --resume starts again, and the leftover goes
    code, _, err = run(workspace, "index", corpus, "--out", "idx", "--type", "flat")
    assert code == 0, err
    assert leftovers(workspace) == []


def test_resume_takes_only_the_same_build(workspace):
    corpus = write_corpus(workspace / "big.txt", 400)
    args = ["index", corpus, "--out", "idx", "--type", "flat", "--batch-size", "2"]
    code, _, _ = run(workspace, *args, FAKE_KILL_AT="checkpoint", FAKE_KILL_CHECKPOINT="2",
                     FAKE_CHECKPOINT_DOCUMENTS=CHECKPOINT)
    assert code == -signal.SIGKILL
    write_corpus(corpus, 401)  # the corpus changed: its progress is not this build's
    code, _, err = run(workspace, *args, "--resume", FAKE_CHECKPOINT_DOCUMENTS=CHECKPOINT)
    assert code == 0, err
    assert "no interrupted build" in err and leftovers(workspace) == []
    opened = SearchIndex.open(workspace / "idx")
    assert opened.manifest.documents == 401
    opened.close()
