"""A write that fails part way, at every file operation it makes: an injected OSError (no
space left) at the n-th file operation of an index build, a rebuild, an append, a remove, a
model import, a sentence-transformers export and `embed`'s output, for every n (each n is
asserted reached); and a real file-size limit (`ulimit -f`) on a subprocess. Each leaves the
previous version whole and readable, removes its partial files, and says in one line what
failed and what to free.

File operations counted: open() for writing, os.open with a write flag, os.replace / rename /
mkdir / rmdir / fsync, shutil.copyfile, FAISS's write_index (which fails as FAISS does, with a
RuntimeError naming the file) and SQLite commits (as SQLite does, "database or disk is full")."""

from __future__ import annotations

import builtins
import errno
import os
import shutil
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from faults_support import (
    assert_clean_failure,
    cli,
    folder_bytes,
    run,
    workspace,  # noqa: F401 - a fixture
    write_corpus,
)

from semsearch.index import SearchIndex

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class FailAt:
    """Counts file operations; the n-th raises as a full disk would (n=0: none fails)."""

    def __init__(self, n: int = 0) -> None:
        self.n, self.count, self.fired = n, 0, None

    def step(self, what: str, make_error) -> None:
        self.count += 1
        if self.count == self.n:
            self.fired = what
            raise make_error()


def _no_space(path="") -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path) or None)


@contextmanager
def failing_writes(fail: FailAt, root: Path):
    """Patch the file operations under `root` (reads and other folders pass untouched)."""
    import faiss

    real = {"open": builtins.open, "os_open": os.open, "replace": os.replace,
            "rename": os.rename, "mkdir": os.mkdir, "rmdir": os.rmdir, "fsync": os.fsync,
            "copyfile": shutil.copyfile, "write_index": faiss.write_index,
            "connect": sqlite3.connect}
    root = str(root)

    def ours(path) -> bool:
        return isinstance(path, str | os.PathLike) and os.path.abspath(os.fspath(path)).startswith(root)

    def open_(file, mode="r", *args, **kwargs):
        if ours(file) and any(flag in mode for flag in "wax+"):
            fail.step(f"open {file}", lambda: _no_space(file))
        return real["open"](file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if ours(path) and flags & WRITE_FLAGS:
            fail.step(f"os.open {path}", lambda: _no_space(path))
        return real["os_open"](path, flags, *args, **kwargs)

    def two_paths(name):
        def call(source, target, *args, **kwargs):
            if ours(target):
                fail.step(f"{name} {target}", lambda: _no_space(target))
            return real[name](source, target, *args, **kwargs)
        return call

    def one_path(name):
        def call(path, *args, **kwargs):
            if ours(path):
                fail.step(f"{name} {path}", lambda: _no_space(path))
            return real[name](path, *args, **kwargs)
        return call

    def fsync(fd):
        fail.step("fsync", _no_space)
        return real["fsync"](fd)

    def write_index(index, path):
        if ours(path):
            fail.step(f"faiss.write_index {path}", lambda: RuntimeError(
                f"Error in void faiss::write_index: 'ret == (size * 4)' failed: write error in "
                f"{path}: 0 != 256 (No space left on device)"))
        return real["write_index"](index, path)

    class Connection:
        """sqlite3's connection, its commits counted (SQLite writes the file at commit)."""

        def __init__(self, inner) -> None:
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def commit(self):
            fail.step("sqlite commit", lambda: sqlite3.OperationalError("database or disk is full"))
            return self._inner.commit()

        def __enter__(self):
            return self._inner.__enter__()

        def __exit__(self, *exc):
            return self._inner.__exit__(*exc)

    def connect(database, *args, **kwargs):
        inner = real["connect"](database, *args, **kwargs)
        return Connection(inner) if ours(str(database).removeprefix("file:")) else inner

    patches = {(builtins, "open"): open_, (os, "open"): os_open, (os, "replace"): two_paths("replace"),
               (os, "rename"): two_paths("rename"), (os, "mkdir"): one_path("mkdir"),
               (os, "rmdir"): one_path("rmdir"), (os, "fsync"): fsync,
               (shutil, "copyfile"): two_paths("copyfile"), (faiss, "write_index"): write_index,
               (sqlite3, "connect"): connect}
    saved = {key: getattr(*key) for key in patches}
    try:
        for (module, name), replacement in patches.items():
            setattr(module, name, replacement)
        yield fail
    finally:
        for (module, name), original in saved.items():
            setattr(module, name, original)


def snapshot(folder: Path) -> set[str]:
    """Every path under `folder`, to find what a failed write left behind."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def every_n(workspace: Path, command: list[str], check_before, check_after, root: Path):
    """Run `command` once cleanly to count its file operations, then once failing at each n."""
    counted = FailAt()
    state = check_before()
    with failing_writes(counted, root):
        result = cli(*command)
    assert result.exit_code == 0, result.output
    total = counted.count
    assert total > 0
    check_after()  # the clean run's result
    outcomes, messages = {}, set()
    for n in range(1, total + 1):
        state = check_before()
        before = snapshot(workspace)
        fail = FailAt(n)
        with failing_writes(fail, root):
            result = cli(*command)
        assert fail.fired, f"operation {n} of {total} was never reached"
        strays = {path for path in snapshot(workspace) - before
                  if any(mark in path for mark in (".tmp", ".old-", ".partial"))}
        if fail.fired.startswith("rmdir") and result.exit_code == 0:
            # deleting the replaced version failed after the swap: its `.NAME.old-*` copy
            # stays until the next writer's clean_stale removes it (the write itself succeeded)
            strays = {path for path in strays if ".old-" not in path}
        assert not strays, (fail.fired, strays)
        if result.exit_code == 0:  # the failed operation was a clean-up's, which may fail
            outcomes[n] = f"succeeded ({fail.fired.split()[0]})"
            check_after()
            continue
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert "Traceback" not in result.output and len(errors) == 1, (fail.fired, result.output)
        assert "free space on the disk" in errors[0], (fail.fired, errors[0])
        messages.add(errors[0].split(":")[1].strip()[:40])
        if "written whole" in errors[0]:  # only the latest-index pointer failed, after the swap
            check_after()
            outcomes[n] = "index written, pointer not"
            continue
        check_before(compare_to=state)
        left = snapshot(workspace) - before
        assert not left, (fail.fired, left)
        outcomes[n] = "refused"
    print(f"{' '.join(map(str, command))}: {total} operations; {sorted(set(outcomes.values()))}")
    return total, outcomes


def index_state(folder: Path):
    def check(compare_to=None):
        files = folder_bytes(folder) if folder.exists() else None
        if compare_to is not None:
            assert files == compare_to, "the previous version changed"
            if files is not None:
                opened = SearchIndex.open(folder)
                opened.close()
        return files
    return check


def test_a_build_over_nothing_fails_cleanly_at_every_file_operation(workspace):
    corpus = write_corpus(workspace / "docs.txt", 12)
    target = workspace / "idx"

    def after():
        shutil.rmtree(target, ignore_errors=True)  # next run builds over nothing again
        (workspace / "indexes").exists() and shutil.rmtree(workspace / "indexes")
    total, outcomes = every_n(workspace, ["index", corpus, "--out", "idx"], index_state(target),
                              after, workspace)
    assert "refused" in outcomes.values()
    print(f"build: {total} operations, {sorted(set(outcomes.values()))}")


@pytest.mark.parametrize("command", [
    ["index", "more.txt", "--out", "idx"],                # a rebuild replacing the old folder
    ["index", "more.txt", "--out", "idx", "--append"],
    ["remove", "doc 3", "--index", "idx"],
])
def test_rewrites_of_an_index_fail_cleanly_at_every_file_operation(workspace, command):
    write_corpus(workspace / "docs.txt", 12)
    write_corpus(workspace / "more.txt", 5, prefix="more")
    assert cli("index", workspace / "docs.txt", "--out", "idx").exit_code == 0
    if command[0] == "remove":
        command = ["remove", "docs:3", "--index", "idx"]
    target = workspace / "idx"
    pristine = workspace / "pristine"
    shutil.copytree(target, pristine)

    def after():
        shutil.rmtree(target)
        shutil.copytree(pristine, target)
    total, outcomes = every_n(workspace, command, index_state(target), after, target.parent)
    assert "refused" in outcomes.values()
    print(f"{command[:2]}: {total} operations")


def file_state(*paths: Path):
    def check(compare_to=None):
        files = {path.name: path.read_bytes() for path in paths if path.exists()}
        if compare_to is not None:
            assert files == compare_to, "the previous output changed"
        return files
    return check


def test_embed_output_fails_cleanly_at_every_file_operation(workspace):
    write_corpus(workspace / "docs.txt", 12)
    out = workspace / "out"
    out.mkdir()
    assert cli("embed", "docs.txt", "--out", "out/v.npy").exit_code == 0
    total, outcomes = every_n(workspace, ["embed", "docs.txt", "--out", "out/v.npy",
                                          "--overwrite"] if _has_overwrite() else
                              ["embed", "docs.txt", "--out", "out/v.npy"],
                              file_state(out / "v.npy", out / "v.ids.txt"), lambda: None, out)
    assert "refused" in outcomes.values()


def _has_overwrite() -> bool:
    from semsearch.cli.embed import embed

    return any(option.name == "overwrite" for option in embed.params)


@pytest.fixture
def bert_model(tmp_path) -> Path:
    """A small random BERT model as sentence-transformers writes one (what import-model reads)."""
    pytest.importorskip("sentence_transformers")
    sys.path.insert(0, str(Path(__file__).parents[1] / "encoder"))
    try:
        from test_st_export import random_model
    finally:
        sys.path.pop(0)
    model = random_model(tmp_path / "semsearch-bert", prenorm=False)
    result = cli("export", model, "--format", "sentence-transformers", "--out", tmp_path / "st")
    assert result.exit_code == 0, result.output
    return tmp_path / "st"


def test_a_model_import_fails_cleanly_at_every_file_operation(tmp_path, bert_model):
    models = tmp_path / "models"
    models.mkdir()
    target = models / "imported"
    assert cli("import-model", bert_model, "--out", target).exit_code == 0
    state = index_state_of_model(target)
    total, outcomes = every_n(tmp_path, ["import-model", bert_model, "--out", target,
                                         "--overwrite"], state, lambda: None, models)
    assert "refused" in outcomes.values()


def test_an_export_fails_cleanly_at_every_file_operation(tmp_path, bert_model):
    exports = tmp_path / "exports"
    exports.mkdir()
    source = tmp_path / "semsearch-bert"
    target = exports / "st"
    assert cli("export", source, "--format", "sentence-transformers", "--out", target).exit_code == 0
    total, outcomes = every_n(tmp_path, ["export", source, "--format", "sentence-transformers",
                                         "--out", target, "--overwrite"],
                              index_state_of_model(target), lambda: None, exports)
    assert "refused" in outcomes.values()


def index_state_of_model(folder: Path):
    def check(compare_to=None):
        files = folder_bytes(folder) if folder.exists() else None
        if compare_to is not None:
            assert files == compare_to, "the previous model changed"
        return files
    return check


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as Linux enforces it")
@pytest.mark.parametrize("append", [False, True], ids=["rebuild", "append"])
def test_a_real_file_size_limit_leaves_the_old_index_and_says_what_to_free(workspace, append):
    """`ulimit -f` on a real subprocess: FAISS, SQLite and numpy writes fail in C (EFBIG)."""
    import resource
    import signal

    write_corpus(workspace / "docs.txt", 40)
    write_corpus(workspace / "more.txt", 4000, prefix="more words to make the files larger")
    code, _, err = run(workspace, "index", "docs.txt", "--out", "idx")
    assert code == 0, err
    before = folder_bytes(workspace / "idx")
    names = set(os.listdir(workspace))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    from faults_support import start

    process = start(workspace, "index", "more.txt", "--out", "idx",
                    *(["--append"] if append else []), preexec_fn=limit)
    _, err = process.communicate(timeout=120)
    assert_clean_failure(process.returncode, err, "free space on the disk", "ulimit -f")
    assert len([line for line in err.splitlines() if line.startswith("Error:")]) == 1, err
    assert folder_bytes(workspace / "idx") == before
    assert set(os.listdir(workspace)) == names  # the staging folder is gone
    SearchIndex.open(workspace / "idx").close()
