"""Who may write an index folder, and when readers may look: OS file locks beside the folder.

Two lock files sit next to `indexes/<name>` (never inside it: the folder itself is swapped):

  .<name>.semsearch-lock   held exclusively for a whole write (build, --append, remove): a
                           second writer waits up to --wait seconds, then refuses; the holder's
                           pid is written in it for the message
  .<name>.semsearch-swap   held exclusively only for the two renames that swap a new version in,
                           and shared by a reader while it opens the folder's files, so a reader
                           sees the old version or the new one, never a mix or a missing folder

`fcntl.flock` locks belong to an open file and the kernel drops them when the process dies (kill
-9 included), so a lock is never stale, and a writer that holds the write lock knows every
temporary folder of that index belongs to a dead process. Standard library rather than
`filelock`/`portalocker`: readers need a *shared* lock, which `filelock` does not offer, and
flock is all `portalocker` wraps on POSIX. On a system without fcntl (Windows) the locks are
no-ops and concurrent writers are not detected.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from semsearch.errors import IndexError_

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

WRITE_LOCK_SUFFIX = ".semsearch-lock"
SWAP_LOCK_SUFFIX = ".semsearch-swap"
# a write lock asked for with --wait is polled at this interval
POLL_SECONDS = 0.1
# --wait accepts at most a day: any larger number is a typo, and time.monotonic adds it as a float
MAX_WAIT_SECONDS = 86_400

_held: dict[str, tuple[int, int]] = {}  # write locks this process holds: path -> (fd, depth)


def write_lock_path(folder: Path) -> Path:
    folder = Path(folder)
    return folder.parent / f".{folder.name}{WRITE_LOCK_SUFFIX}"


def swap_lock_path(folder: Path) -> Path:
    folder = Path(folder)
    return folder.parent / f".{folder.name}{SWAP_LOCK_SUFFIX}"


def holds_write_lock(folder: Path) -> bool:
    """Whether this process holds the write lock of `folder`."""
    return _key(folder) in _held


@contextmanager
def index_writer(folder: Path, wait: float = 0) -> Iterator[None]:
    """Hold the exclusive write lock of an index folder: wait up to `wait` seconds for another
    writer to finish, else raise IndexError_ naming it. Re-entrant within a process."""
    folder = Path(folder)
    key = _key(folder)
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = write_lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        from semsearch.write_errors import write_failed

        failed = write_failed(error, path, "the index is untouched")
        if failed is not None and error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise failed from None
        raise IndexError_(
            f"cannot create the lock file {path} ({error.strerror}); write the index somewhere "
            "writable with --out"
        ) from None
    try:
        _acquire(fd, folder, path, wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = (fd, 1)
        # a writer about to swap needs the swap lock file to exist before it swaps (a reader
        # that finds none knows no locking writer ever swapped this folder while it read)
        _touch(swap_lock_path(folder))
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, folder: Path, path: Path, wait: float) -> None:
    deadline = time.monotonic() + max(0.0, min(float(wait), MAX_WAIT_SECONDS))
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
    holder = _holder(path)
    waited = f" after waiting {wait:g}s" if wait else ""
    raise IndexError_(
        f"index {folder} is being written by another semsearch process{holder}{waited}; "
        "nothing was changed: run again when it has finished, or pass --wait SECONDS to queue"
    )


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextmanager
def swapping(folder: Path) -> Iterator[None]:
    """Hold the swap lock exclusively (a writer, around its renames)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = swap_lock_path(folder)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # readers hold it for milliseconds
        yield
    finally:
        os.close(fd)


@contextmanager
def reading(folder: Path) -> Iterator[bool]:
    """Hold the swap lock shared while opening a folder's files; yields whether a lock is held.
    A reader never creates the file: when it is absent (no locking writer has written this
    folder, or the folder is read-only), yields False and the caller checks for a change."""
    if fcntl is None:  # pragma: no cover
        yield False
        return
    try:
        fd = os.open(swap_lock_path(folder), os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield True
    finally:
        os.close(fd)


def _touch(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o666))
    except OSError:
        pass


def _key(folder: Path) -> str:
    return str(Path(os.path.abspath(folder)))
