"""A build that can be resumed (`semsearch index --resume`): its progress recorded in its staging
folder as it goes, so a build killed at any stage (Ctrl-C, kill -9, a full disk) continues
where it stopped, without encoding again what it finished.

What is recorded, and where (the staging folder, which the index folder replaces at the end):

- every CHECKPOINT_DOCUMENTS documents of the streaming pass: the store's rows and a
  `build_state` row (documents read, chunks written, the stats so far) in one SQLite commit, and
  the BM25 term counts gathered since the last checkpoint as a segment file under .build/; the
  vectors of the recorded chunks are in vectors.f32 already (a rerun writes any past them again);
- once the pass is done, the FAISS index (index.faiss, written before it is tuned) and the BM25
  part, each noted in the state when written.

The state names the build it belongs to (`build_key`: the corpus file's path, size and time,
the model's fingerprint, the settings), and a resumed build takes only a staging folder whose
state names the same build. A finished build drops the state and .build/ before the swap.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from semsearch.corpora import ChunkConfig
from semsearch.embed_chunks import EmbedStats
from semsearch.index import DocumentStore, IndexWriter
from semsearch.index.folder import STORE_FILE
from semsearch.index.lexical_terms import TermCounts

# documents between two checkpoints of the streaming pass (a few seconds of work at most)
CHECKPOINT_DOCUMENTS = 65_536
BUILD_DIR = ".build"  # the term-count segments, in the staging folder
STATE_FORMAT = 1


def build_key(corpus: Path, embedder, options, chunking: ChunkConfig) -> dict:
    """What makes two builds the same build: the corpus file as it is now, the model, and every
    setting that changes what is written."""
    stat = Path(corpus).stat()
    return {
        "format": STATE_FORMAT,
        "corpus": str(Path(corpus).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "model": embedder.fingerprint if embedder is not None else None,
        "precision": getattr(embedder, "precision", "fp32") if embedder is not None else None,
        "reader": repr(options.reader), "chunking": chunking.to_dict(), "type": options.type,
        "max_memory": options.max_memory, "target_recall": options.target_recall,
    }


def resumable(staging: Path, key: dict) -> bool:
    """Whether a dead writer's staging folder holds progress of the build `key` names."""
    path = Path(staging) / STORE_FILE
    if not path.is_file():
        return False
    try:
        store = DocumentStore(path, read_only=True)
    except Exception:  # noqa: BLE001 - a damaged leftover is not resumable, nothing more
        return False
    try:
        state = store.read_build_state()
    finally:
        store.close()
    return state is not None and state.get("key") == key


class Progress:
    """The recorded progress of one build in its staging folder (see the module doc)."""

    def __init__(self, writer: IndexWriter, store: DocumentStore, key: dict,
                 every: int | None = None) -> None:
        self.writer, self.store, self.key = writer, store, key
        self.every = every or CHECKPOINT_DOCUMENTS
        self.state: dict = {"key": key, "segments": 0}
        self.terms = TermCounts.empty()
        self._mark = self.terms.mark()
        self._last = 0  # documents read at the last checkpoint

    @property
    def folder(self) -> Path:
        return self.writer.path / BUILD_DIR

    def restore(self) -> EmbedStats | None:
        """Take up the progress recorded in a resumed staging folder: the stats of the pass so
        far (None: nothing recorded), with the term counts of the documents it stored."""
        state = self.store.read_build_state()
        if state is None or state.get("key") != self.key:
            return None
        self.state = state
        for number in range(int(state.get("segments", 0))):
            with np.load(self.folder / f"terms-{number:05d}.npz", allow_pickle=False) as segment:
                self.terms.add_segment(segment)
        self._mark = self.terms.mark()
        stats = EmbedStats(**state["stats"])
        stats.cut = [tuple(item) for item in stats.cut]
        self._last = stats.documents_read
        return stats

    def on_window(self, stats: EmbedStats) -> None:
        """After each window of the pass: a checkpoint once `every` more documents were read."""
        if stats.documents_read - self._last >= self.every:
            self.save(stats)

    def save(self, stats: EmbedStats, **done) -> None:
        """Record the stats (and any finished stage in `done`) with the rows they describe."""
        self.folder.mkdir(exist_ok=True)
        if self.terms.mark() != self._mark:
            number = int(self.state.get("segments", 0))
            np.savez(self.folder / f"terms-{number:05d}.npz", **self.terms.segment(self._mark))
            self.state["segments"] = number + 1
            self._mark = self.terms.mark()
        self.state["stats"] = {"documents": stats.documents, "chunks": stats.chunks,
                               "duplicates": stats.duplicates, "cut": stats.cut,
                               "seconds": stats.seconds, "documents_read": stats.documents_read}
        self.state.update(done)
        self.store.write_build_state(self.state)
        self.store.commit()
        self._last = stats.documents_read
        if stats.documents_read >= self.every:  # worth keeping: a failure leaves it to --resume
            self.writer.keep = True

    def finish(self) -> None:
        """The build is whole: no progress record stays in the index folder."""
        self.store.drop_build_state()
        shutil.rmtree(self.folder, ignore_errors=True)
