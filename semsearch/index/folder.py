"""Where index folders live and the steps that replace one: a temporary sibling is written, then
swapped in under the swap lock, so a crash at any point leaves the previous index whole and a
reader sees either the old version or the new one. `semsearch.index.writer.IndexWriter` runs
these steps in order; nothing else calls them.

Layout:  indexes/<name>/{manifest.json, index.faiss, documents.sqlite[, vectors.f32]}
         indexes/.semsearch-latest   the folder `semsearch query` opens when not told (a hidden
                                     name: a corpus called LATEST.txt gets an index of its own)
         indexes/.<name>.semsearch-lock / .semsearch-swap   the locks (semsearch/index/lock.py)
The base folder is ./indexes, or $SEMSEARCH_INDEXES.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from semsearch.errors import IndexError_
from semsearch.index.lock import swapping
from semsearch.write_errors import write_failed

MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
STORE_FILE = "documents.sqlite"
VECTORS_FILE = "vectors.f32"
LATEST = ".semsearch-latest"
OLD_LATEST = "LATEST"  # the pointer's name before it was hidden; still read
# what an index folder may hold (SQLite's side files included): a folder with anything else in
# it is not replaced, whatever its manifest says
INDEX_FILES = frozenset(
    {MANIFEST, INDEX_FILE, STORE_FILE, VECTORS_FILE, "new.f32",
     STORE_FILE + "-journal", STORE_FILE + "-wal", STORE_FILE + "-shm"}
)
# the lexical (BM25) index: a subfolder of these files only (bm25s' arrays and settings, and the
# row map, sorted vocabulary and term counts semsearch adds)
LEXICAL_SUBFOLDER = "lexical"
LEXICAL_FILES = frozenset(
    {"data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "params.index.json",
     "vocab.index.json", "nonoccurrence_array.index.npy", "rows.npy", "vocab_tokens.npy",
     "vocab_ids.npy", "terms.indptr.npy", "terms.ids.npy", "terms.counts.npy",
     "terms.lengths.npy"}
)
# prefixes of a writer's temporary siblings: .<name>.tmp-XXXX (being written) and
# .<name>.old-XXXX (the previous version, between the two renames of a swap)
TMP_INFIX, OLD_INFIX = ".tmp-", ".old-"


def indexes_dir() -> Path:
    """The base folder for named indexes: $SEMSEARCH_INDEXES, else ./indexes."""
    return Path(os.environ.get("SEMSEARCH_INDEXES") or "indexes")


def default_index_dir(corpus: Path) -> Path:
    """Where `semsearch index CORPUS` writes when given no --out: indexes/<corpus stem>
    (leading dots dropped, so it never lands on a hidden internal name).

    >>> default_index_dir(Path("corpora/docs.txt.gz")).name
    'docs'
    >>> default_index_dir(Path(".semsearch-latest.txt")).name
    'semsearch-latest'
    """
    name = Path(corpus).name
    for suffix in (".gz", ".txt", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".text"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return indexes_dir() / (name.lstrip(".") or "index")


def resolve_index_dir(index: str | Path | None) -> Path:
    """The folder to open: a path, a name under the indexes folder, or (None) the latest."""
    if index is not None:
        path = Path(index)
        if path.exists() or path.is_absolute() or len(path.parts) > 1:
            return path
        return indexes_dir() / path
    pointer = indexes_dir() / LATEST
    if not pointer.is_file():
        old = indexes_dir() / OLD_LATEST
        if not old.is_file():
            raise IndexError_(
                f"no index yet ({pointer} not found); build one with `semsearch index CORPUS` "
                "or pass --index DIR"
            )
        pointer = old
    try:
        target = Path(pointer.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError) as error:
        raise IndexError_(
            f"cannot read {pointer} ({error}); pass --index DIR, or build an index again"
        ) from None
    return target if target.is_absolute() else indexes_dir() / target


def mark_latest(folder: Path) -> None:
    """Point the latest-index pointer at this folder (relative when under the indexes folder).
    A failed write leaves the old pointer and says the index itself is whole."""
    base = indexes_dir()
    folder = Path(folder)
    temporary = base / f"{LATEST}.{os.getpid()}.tmp"
    try:
        base.mkdir(parents=True, exist_ok=True)
        try:
            target = str(folder.resolve().relative_to(base.resolve()))
        except ValueError:
            target = str(folder.resolve())
        temporary.write_text(target + "\n", encoding="utf-8")
        os.replace(temporary, base / LATEST)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        failed = write_failed(error, base / LATEST, (
            f"the index {folder} itself is written whole: search it with --index {folder}"))
        if failed is not None:
            raise failed from None
        raise


def is_index_folder(folder: Path) -> bool:
    """Whether `folder` is provably a semsearch index: a manifest with the index format marker
    and an integer version, and nothing in it but the files an index holds."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return False
    names = {entry.name for entry in folder.iterdir()}
    if MANIFEST not in names or not names <= INDEX_FILES | {LEXICAL_SUBFOLDER}:
        return False
    if any(not (folder / name).is_file() or (folder / name).is_symlink()
           for name in names - {LEXICAL_SUBFOLDER}):
        return False
    if LEXICAL_SUBFOLDER in names:
        lexical = folder / LEXICAL_SUBFOLDER
        if not lexical.is_dir() or lexical.is_symlink():
            return False
        inside = list(lexical.iterdir())
        if any(p.name not in LEXICAL_FILES or not p.is_file() or p.is_symlink() for p in inside):
            return False
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    from semsearch.index.manifest import FORMAT

    return (
        isinstance(data, dict)
        and data.get("format") == FORMAT
        and isinstance(data.get("format_version"), int)
        and not isinstance(data.get("format_version"), bool)
    )


def check_replaceable(folder: Path) -> None:
    """Refuse to replace anything but an empty folder or a semsearch index (never delete
    someone's data): a file, a link, or a folder holding anything else stays as it is."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise IndexError_(
            f"{folder} exists and is not a folder; choose another --out (nothing was changed)"
        )
    if any(folder.iterdir()) and not is_index_folder(folder):
        raise IndexError_(
            f"{folder} exists and is not a semsearch index folder (only a folder holding "
            "nothing but a semsearch index is replaced); choose another --out "
            "(nothing was changed)"
        )


def check_not_interrupted(folder: Path) -> None:
    """Explain a folder lost between the two renames of a replacement by a writer that died."""
    folder = Path(folder)
    if folder.exists():
        return
    leftovers = sorted(folder.parent.glob(f".{folder.name}{OLD_INFIX}*"))
    if leftovers:
        raise IndexError_(
            f"index folder {folder} is missing but {leftovers[-1]} holds the previous version "
            f"from an interrupted write; the next write to {folder} restores it, or restore it "
            f"now with `mv {leftovers[-1]} {folder}`"
        )


def clean_stale(folder: Path, keep: Path | None = None) -> list[Path]:
    """Under the write lock: remove the temporary siblings dead writers left (every one, since
    a live writer would hold the lock, but `keep`: the one a resumed build continues),
    restoring the previous version first when a writer died between the two renames. Returns
    what was removed."""
    folder = Path(folder)
    parent = folder.parent
    if not parent.is_dir():
        return []
    removed = []
    olds = sorted(parent.glob(f".{folder.name}{OLD_INFIX}*"), key=lambda p: p.stat().st_mtime)
    if olds and not folder.exists() and is_index_folder(olds[-1]):
        with swapping(folder):
            os.rename(olds.pop(), folder)
    for stale in olds + sorted(parent.glob(f".{folder.name}{TMP_INFIX}*")):
        if stale.is_dir() and not stale.is_symlink() and stale != keep:
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def replace_folder(staging: Path, folder: Path) -> None:
    """Move `staging` to `folder` under the swap lock (readers wait the two renames out); an
    existing `folder` is renamed aside first, then deleted once readers may look again."""
    aside = None
    with swapping(folder), _signals_held():
        if folder.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}{OLD_INFIX}", dir=folder.parent))
            try:
                os.rmdir(aside)
            except BaseException:
                shutil.rmtree(aside, ignore_errors=True)
                raise
            os.rename(folder, aside)
        try:
            os.rename(staging, folder)  # a kill -9 just before this is what clean_stale repairs
        except BaseException:
            if aside is not None:
                os.rename(aside, folder)  # a failed rename: the old version goes back at once
            raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Delay Ctrl-C and SIGTERM across the two renames (delivered right after them)."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not (
        threading.main_thread()
    ):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
