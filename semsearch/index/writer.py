"""One write of an index folder, owned whole by one object: lock, stage, receive, swap, point.

Every writer of an index folder (build, --append, remove, --add-lexical, the Ray engine) goes
through `IndexWriter`, the way SQLite's pager owns a commit: callers hand it the parts and say
commit; they never take the lock, stage, swap or move the latest pointer themselves.

    with IndexWriter(out, wait=5, fresh=True) as writer:  # locked; dead writers' leftovers gone
        writer.stage()                             # an empty sibling (copy=True: a copy of `out`)
        store = writer.documents()                 # documents.sqlite in the staging folder
        vectors = writer.vectors(dim)              # vectors.f32 there
        writer.write_index(index)
        manifest.lexical = writer.write_lexical(store)
        writer.write_manifest(manifest)
        writer.commit(latest=True)                 # swap in; `semsearch query` opens it next

Leaving the block without `commit` (an exception, Ctrl-C or SIGTERM raised as one, or a write
that found nothing to add) deletes the staging folder and leaves `out` as it was; the lock is
released either way. A kill -9 leaves a staging folder (or, between the two renames of the
swap, the previous version aside), which the next writer's `__enter__` cleans up or restores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from semsearch.errors import IndexError_
from semsearch.index.faiss_index import read_index as read_faiss_index
from semsearch.index.faiss_index import remove_vectors, supports_removal
from semsearch.index.faiss_index import write_index as write_faiss_index
from semsearch.index.folder import (
    INDEX_FILE,
    MANIFEST,
    STORE_FILE,
    TMP_INFIX,
    VECTORS_FILE,
    check_replaceable,
    clean_stale,
    mark_latest,
    replace_folder,
)
from semsearch.index.lexical import LEXICAL_DIR, LexicalConfig, join_chunks
from semsearch.index.lexical_terms import TermCounts, build_lexical, write_lexical_files
from semsearch.index.lock import index_writer
from semsearch.index.manifest import Manifest, now
from semsearch.index.store import DocumentStore
from semsearch.index.vector_file import VectorFile
from semsearch.write_errors import write_failed


class IndexWriter:
    """The write transaction of the index folder `folder` (see the module doc).

    `wait`: seconds to wait for another writer's lock (0: refuse at once). `fresh`: the write
    builds the folder anew, so a path that is not an index (a file, a folder of other things)
    is refused on entry, before the lock file is written beside it."""

    def __init__(self, folder: Path, wait: float = 0, fresh: bool = False,
                 resume: Callable[[Path], bool] | None = None) -> None:
        self.folder = Path(folder)
        self.wait = wait
        self.fresh = fresh
        self.path: Path | None = None  # the staging folder, once staged
        self.stale_removed: list[Path] = []  # leftovers of dead writers removed on entry
        self.committed = False
        # `resume`: whether a dead writer's staging folder holds work this write continues (the
        # newest that does is taken as this write's staging folder, `resumed` True)
        self.resume = resume
        self.resumed = False
        # leave the staging folder behind when the write fails (it holds finished work that a
        # resumed write continues from); a write that ends without commit, unfailed, removes it
        self.keep = False
        self._stack = ExitStack()

    def __enter__(self) -> IndexWriter:
        if self.fresh:
            check_replaceable(self.folder)  # refuse before anything is written beside it
        self._stack.enter_context(index_writer(self.folder, self.wait))
        try:
            if self.resume is not None:
                self.path = self._resumable()
                self.resumed = self.path is not None
            self.stale_removed = clean_stale(self.folder, keep=self.path)
        except BaseException:
            self._stack.close()
            raise
        return self

    def _resumable(self) -> Path | None:
        """The newest staging folder of a dead writer that `resume` accepts (under the lock:
        no live writer has one)."""
        parent = self.folder.parent
        if not parent.is_dir():
            return None
        staged = [p for p in parent.glob(f".{self.folder.name}{TMP_INFIX}*")
                  if p.is_dir() and not p.is_symlink()]
        for candidate in sorted(staged, key=lambda p: p.stat().st_mtime, reverse=True):
            if self.resume(candidate):
                return candidate
        return None

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if self.path is not None and not self.committed and not (self.keep and exc):
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._stack.close()  # releases the write lock
        # a write that failed part way (full disk, file-size limit) as one line: what to free
        failed = write_failed(exc, self.folder, "the previous version is untouched") \
            if exc is not None else None
        if failed is not None:
            raise failed from None

    def stage(self, copy: bool = False, link: bool = False,
              linked: Collection[str] = ()) -> Path:
        """Make the staging folder, a temporary sibling of the index folder (a copy of its
        files with `copy`); returns its path. Files this writer only ever replaces whole (the
        FAISS index, the lexical folder's) and those named in `linked` (files the caller will
        not write) are hard links, not copies: at a million documents the copy of the vector
        file alone was 1.5 GB. With `link` every file but the manifest is a hard link (for a
        write that changes only the manifest)."""
        if self.path is not None:
            raise IndexError_(f"the write of {self.folder} is staged already")
        check_replaceable(self.folder)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}{TMP_INFIX}",
                                        dir=self.folder.parent))
        self.path = staging  # from here on, leaving without commit removes it
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the index is an ordinary folder
        if copy:
            def place(source, target):
                name = Path(source).name
                if (link and name != MANIFEST) or name in linked or name in REPLACED_WHOLE:
                    return _link_or_copy(source, target)
                return shutil.copy2(source, target)

            for item in self.folder.iterdir():
                if item.is_file():
                    place(item, staging / item.name)
                elif item.is_dir() and not item.is_symlink():  # the lexical index, rewritten whole
                    shutil.copytree(item, staging / item.name, copy_function=_link_or_copy)
        return staging

    def _staged(self) -> Path:
        if self.path is None:
            raise IndexError_(f"the write of {self.folder} is not staged; call stage() first")
        return self.path

    def documents(self, existing: bool = False, bulk: bool = False) -> DocumentStore:
        """The staging folder's document store: new, or (`existing`) the copied one;
        `bulk`: its lookup indexes made only by `make_indexes` (a fresh build's load)."""
        path = self._staged() / STORE_FILE
        return (DocumentStore.open_existing(path, bulk=bulk) if existing
                else DocumentStore(path, bulk=bulk))

    def vectors(self, dim: int, name: str = VECTORS_FILE) -> VectorFile:
        """A vector file of `dim` columns in the staging folder (vectors.f32, or `name`)."""
        return VectorFile(self._staged() / name, dim)

    def read_index(self):
        """The FAISS index of the staged copy (an append adds to it)."""
        return read_faiss_index(self._staged() / INDEX_FILE)

    def write_index(self, index) -> None:
        """Write the FAISS index into the staging folder (under another name first, then
        renamed: the name may be a hard link to the live version's file)."""
        target = self._staged() / INDEX_FILE
        temporary = target.with_name(f".{INDEX_FILE}.tmp")
        write_faiss_index(index, temporary)
        os.replace(temporary, target)

    def write_lexical(self, store: DocumentStore, config: LexicalConfig | None = None) -> dict:
        """(Re)build the staging folder's lexical part from `store`; the manifest's entry."""
        return write_lexical(self._staged(), store, config)

    def write_lexical_terms(self, terms: TermCounts, config: LexicalConfig) -> dict:
        """(Re)write the staging folder's lexical part from term counts gathered as the
        documents went by (no store read, no tokenising); the manifest's entry."""
        shutil.rmtree(self._staged() / LEXICAL_DIR, ignore_errors=True)
        count = write_lexical_files(self._staged(), terms, config)
        return {**config.to_dict(), "documents": count}

    def write_manifest(self, manifest: Manifest) -> None:
        """Write the manifest into the staging folder (last: it describes the other files)."""
        manifest.write(self._staged() / MANIFEST)

    def commit(self, latest: bool = False) -> None:
        """Swap the staging folder in for the index folder (readers see the old version or the
        new, whole); with `latest`, make it the folder `semsearch query` opens by default."""
        staging = self._staged()
        if self.committed:
            raise IndexError_(f"the write of {self.folder} is committed already")
        check_replaceable(self.folder)  # nothing else may have appeared there meanwhile
        replace_folder(staging, self.folder)
        self.committed = True
        if latest:
            mark_latest(self.folder)

    @staticmethod
    def check(folder: Path) -> None:
        """Refuse at once a path a fresh write may not replace (for a writer with long work
        to do before it takes the lock)."""
        check_replaceable(Path(folder))


# files a writer replaces whole (written under another name, then renamed), never writes into:
# a staged copy may hard-link them (the lexical folder's files are likewise rewritten whole)
REPLACED_WHOLE = frozenset({INDEX_FILE})


def _link_or_copy(source, target) -> None:
    """A hard link to `source` at `target` (a copy where the filesystem has none)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_lexical(folder: Path, store: DocumentStore, config: LexicalConfig | None = None) -> dict:
    """(Re)build the lexical part of a (staging) folder from its store's documents; returns
    the manifest's `lexical` entry."""
    config = config or LexicalConfig()
    shutil.rmtree(Path(folder) / LEXICAL_DIR, ignore_errors=True)
    documents = ((row, join_chunks(chunks)) for row, chunks in store.iter_documents())
    count = build_lexical(folder, documents, config)
    return {**config.to_dict(), "documents": count}


def add_lexical(folder: Path) -> int:
    """Give an index folder built before semsearch had a lexical side its BM25 index, from the
    chunks it stores (no re-embedding); returns the chunks indexed."""
    from semsearch.index.search_index import SearchIndex

    SearchIndex.open(folder).close()  # a missing or damaged folder says how to fix it
    with IndexWriter(folder) as writer:
        writer.stage(copy=True)
        store = writer.documents(existing=True)
        try:
            manifest = Manifest.read(writer.path / MANIFEST)
            manifest.lexical = writer.write_lexical(store)
            manifest.updated = now()
            writer.write_manifest(manifest)
        finally:
            store.close()
        writer.commit()
    return manifest.lexical["documents"]


def set_rescore(folder: Path, recorded: dict | None, wait: float = 0) -> Manifest:
    """Record (or, with None, clear) the index's default second phase in its manifest: one
    atomic write under the write lock, the other files hard-linked into the staged version."""
    from semsearch.index.search_index import SearchIndex

    folder = Path(folder)
    SearchIndex.open(folder).close()  # a missing or damaged folder says how to fix it
    with IndexWriter(folder, wait) as writer:
        writer.stage(copy=True, link=True)
        manifest = Manifest.read(writer.path / MANIFEST)
        manifest.rescore = recorded
        manifest.updated = now()
        writer.write_manifest(manifest)
        writer.commit()
    return manifest


def remove_documents(folder: Path, doc_ids: Iterable[str], wait: float = 0) -> tuple[int, int]:
    """Delete documents (all their chunks) by id, rewriting the folder atomically under its
    write lock (waiting up to `wait` seconds for another writer); returns (documents removed,
    vectors removed). Unknown ids and HNSW indexes raise IndexError_."""
    from semsearch.index.search_index import SearchIndex

    folder = Path(folder)
    doc_ids = list(dict.fromkeys(doc_ids))
    with IndexWriter(folder, wait) as writer:
        current = SearchIndex.open(folder)
        try:
            if current.index is not None and not supports_removal(current.index):
                raise IndexError_(
                    f"the index in {folder} ({current.recipe.factory}) cannot delete vectors: "
                    "HNSW graphs do not support removal; rebuild without those documents, or "
                    "rebuild with --type flat or --type ivf to allow `semsearch remove`"
                )
            rows = current.store.rows_of(doc_ids)
        finally:
            current.close()
        missing = [doc_id for doc_id in doc_ids if doc_id not in rows]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise IndexError_(
                f"no document with id {shown} in {folder}; nothing removed (ids are shown by "
                "`semsearch query`)"
            )
        # the vectors of the documents removed stay in vectors.f32 (no row is reused): the
        # file is shared with the live version, not copied
        staged = SearchIndex.open(writer.stage(copy=True, linked=(VECTORS_FILE,)),
                                  read_only=False)
        try:
            all_rows = np.array([row for found in rows.values() for row in found], dtype=np.int64)
            removed = remove_vectors(staged.index, all_rows) if staged.index is not None else 0
            staged.store.remove_documents(rows)
            staged.store.commit()
            manifest = staged.manifest
            if manifest.lexical is not None:
                config = LexicalConfig.from_dict(manifest.lexical)
                terms = TermCounts.load(writer.path / LEXICAL_DIR)
                # the saved term counts less the removed documents' (an index built before the
                # counts were kept: rebuilt from the store)
                manifest.lexical = (
                    writer.write_lexical_terms(terms.without_rows(all_rows), config)
                    if terms is not None else writer.write_lexical(staged.store, config))
            if staged.index is not None:
                manifest.count = int(staged.index.ntotal)
                writer.write_index(staged.index)
            manifest.documents = staged.store.count_documents()
            manifest.updated = now()
            writer.write_manifest(manifest)
        finally:
            staged.close()
        writer.commit()
    return len(rows), removed
