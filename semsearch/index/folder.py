"""Where index folders live and how they are replaced: write a temporary sibling, then rename,
so a crash at any point leaves the previous index whole.

Layout:  indexes/<name>/{manifest.json, index.faiss, documents.sqlite[, vectors.f32]}
         indexes/LATEST  - the folder `semsearch query` opens when not told (name or path)
The base folder is ./indexes, or $SEMSEARCH_INDEXES.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from semsearch.errors import IndexError_

MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
STORE_FILE = "documents.sqlite"
VECTORS_FILE = "vectors.f32"
LATEST = "LATEST"


def indexes_dir() -> Path:
    """The base folder for named indexes: $SEMSEARCH_INDEXES, else ./indexes."""
    return Path(os.environ.get("SEMSEARCH_INDEXES") or "indexes")


def default_index_dir(corpus: Path) -> Path:
    """Where `semsearch index CORPUS` writes when given no --out: indexes/<corpus stem>.

    >>> default_index_dir(Path("corpora/docs.txt.gz")).name
    'docs'
    """
    name = Path(corpus).name
    for suffix in (".gz", ".txt", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".text"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return indexes_dir() / name


def resolve_index_dir(index: str | Path | None) -> Path:
    """The folder to open: a path, a name under the indexes folder, or (None) the latest."""
    if index is not None:
        path = Path(index)
        if path.exists() or path.is_absolute() or len(path.parts) > 1:
            return path
        return indexes_dir() / path
    pointer = indexes_dir() / LATEST
    if not pointer.is_file():
        raise IndexError_(
            f"no index yet ({pointer} not found); build one with `semsearch index CORPUS` "
            "or pass --index DIR"
        )
    target = Path(pointer.read_text(encoding="utf-8").strip())
    return target if target.is_absolute() else indexes_dir() / target


def mark_latest(folder: Path) -> None:
    """Point LATEST at this folder (relative when it is under the indexes folder)."""
    base = indexes_dir()
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(folder)
    try:
        target = str(folder.resolve().relative_to(base.resolve()))
    except ValueError:
        target = str(folder.resolve())
    temporary = base / f".{LATEST}.{os.getpid()}"
    temporary.write_text(target + "\n", encoding="utf-8")
    os.replace(temporary, base / LATEST)


def check_replaceable(folder: Path) -> None:
    """Refuse to overwrite a folder that is not an index (never delete someone's data)."""
    folder = Path(folder)
    if folder.exists() and (
        not folder.is_dir() or (any(folder.iterdir()) and not (folder / MANIFEST).is_file())
    ):
        raise IndexError_(
            f"{folder} exists and is not a semsearch index folder; choose another --out"
        )


def check_not_interrupted(folder: Path) -> None:
    """Explain a folder lost between the two renames of a replacement."""
    folder = Path(folder)
    if folder.exists():
        return
    leftovers = sorted(folder.parent.glob(f".{folder.name}.old-*"))
    if leftovers:
        raise IndexError_(
            f"index folder {folder} is missing but {leftovers[-1]} holds the previous version "
            f"from an interrupted write; restore it with `mv {leftovers[-1]} {folder}`"
        )


@contextmanager
def staged_folder(folder: Path, copy_from: Path | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of `folder` (a copy of `copy_from` if given); on normal exit it
    replaces `folder`, on an exception it is deleted and `folder` is untouched."""
    folder = Path(folder)
    check_replaceable(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the index is an ordinary folder
    try:
        if copy_from is not None:
            for item in Path(copy_from).iterdir():
                if item.is_file():
                    shutil.copy2(item, staging / item.name)
                elif item.is_dir():  # the lexical index
                    shutil.copytree(item, staging / item.name)
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, folder)


def replace_folder(staging: Path, folder: Path) -> None:
    """Move `staging` to `folder`; an existing `folder` is renamed aside first, then deleted."""
    if not folder.exists():
        os.rename(staging, folder)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    os.rmdir(aside)
    os.rename(folder, aside)
    os.rename(
        staging, folder
    )  # a crash just before this line is what check_not_interrupted reports
    shutil.rmtree(aside, ignore_errors=True)
