"""A corpus streamed into rows: each document into the store, its chunks' vectors into the
vector file and its BM25 term counts into a `TermCounts`, a bounded window at a time (the local
build and --append; the Ray engine embeds its shards with `embed_texts`).

A window is made ready (cut into chunks, its BM25 tokens counted, and, for an encoder that runs
on one core, encoded) by `prepare_window`; on a multi-core machine that runs in worker processes
while this process reads the next windows and writes the finished ones, in corpus order:

    reader -> windows -> [worker: chunk, count BM25 terms, encode] -> store, vectors, terms

An encoder that uses every core itself (torch, ONNX Runtime) encodes here, in this process,
while the workers prepare the windows after it.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from semsearch.corpora import ChunkConfig, CorpusReader, Document, chunk_documents
from semsearch.embedder import Embedder
from semsearch.errors import DataError, IndexError_
from semsearch.index import DocumentStore, VectorFile
from semsearch.index.lexical import LexicalConfig, join_chunks
from semsearch.index.lexical_terms import TermCounts, Tokenized, tokenize_counts
from semsearch.index.store import text_hash

# chunks embedded and written at a time; bounds memory whatever the corpus size
WINDOW_BATCHES = 32
# characters of documents held at a time before they are embedded and written
WINDOW_CHARS = 8 * 1024 * 1024
# documents a window holds at most when the encoder runs in workers (it encodes a whole window
# at once; the texts and vectors of a window of 8K short documents are a few MB)
WORKER_WINDOW = 8192


@dataclass
class EmbedStats:
    """What embedding a corpus did: documents and chunks added, duplicates skipped, cuts, and
    the seconds each part took (the workers' parts summed over the workers)."""

    documents: int = 0
    chunks: int = 0
    duplicates: int = 0
    cut: list[tuple[int, str]] = field(default_factory=list)  # (line, why) of capped documents
    seconds: dict[str, float] = field(default_factory=dict)
    documents_read: int = 0  # documents taken from the reader (kept, repeated or duplicate)

    def time(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds


@dataclass
class RowTargets:
    """Where a window's rows go: the store always; chunk vectors to `vectors` (None: an index
    without vectors), file row first_row + i holding FAISS id first_row + i + row_offset; BM25
    term counts to `terms` (None: the lexical part is built from the store later)."""

    store: DocumentStore
    vectors: VectorFile | None = None
    first_row: int = 0
    row_offset: int = 0
    terms: TermCounts | None = None
    lexical: LexicalConfig = field(default_factory=LexicalConfig)


@dataclass(frozen=True)
class _Work:
    """What a worker needs to prepare windows (inherited by forking, never pickled)."""

    embedder: Embedder | None
    chunking: ChunkConfig
    lexical: LexicalConfig | None
    encode: bool  # the worker encodes the chunks (an encoder that runs on one core)
    batch_size: int


@dataclass
class Prepared:
    """One window made ready: each document's chunks (None: the document's text is its one
    chunk), their vectors (when the worker encoded), the BM25 term counts of the documents, the
    positions of documents cut short, and the seconds each part took."""

    chunks: list[list[str] | None]
    vectors: np.ndarray | None
    tokens: Tokenized | None
    cut: list[int]
    seconds: dict[str, float]


_WORK: _Work | None = None  # set in the parent just before the workers are forked


def prepare_window(texts: list[str], work: _Work | None = None) -> Prepared:
    """Chunk the texts, count their BM25 terms and (work.encode) encode their chunks."""
    work = work or _WORK
    assert work is not None
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    cut: list[int] = []
    if work.embedder is None:
        chunked: list[list[str]] = [[text] for text in texts]
    else:
        chunked = chunk_documents(texts, work.embedder.count_tokens, work.chunking, cut)
    seconds["chunk"] = time.perf_counter() - started
    vectors = None
    if work.encode and work.embedder is not None:
        started = time.perf_counter()
        vectors = embed_texts(work.embedder, [c for chunks in chunked for c in chunks],
                              work.batch_size)
        seconds["encode"] = time.perf_counter() - started
    tokens = None
    if work.lexical is not None:
        started = time.perf_counter()
        whole = [text if len(chunks) == 1 and chunks[0] == text else join_chunks(chunks)
                 for text, chunks in zip(texts, chunked, strict=True)]
        tokens = tokenize_counts(whole, work.lexical)
        seconds["lexical"] = time.perf_counter() - started
    # a document that is its own single chunk is not sent back (the caller has its text)
    compact = [None if len(chunks) == 1 and chunks[0] == text else chunks
               for text, chunks in zip(texts, chunked, strict=True)]
    return Prepared(compact, vectors, tokens, cut, seconds)


def worker_count() -> int:
    """Worker processes a build prepares windows in: one a core this process may use, none on a
    single core or where processes cannot be forked ($SEMSEARCH_BUILD_WORKERS overrides)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    named = os.environ.get("SEMSEARCH_BUILD_WORKERS")
    if named is not None and named.strip().isdigit():
        return int(named)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores if (cores or 1) > 1 else 0


class _Workers:
    """Forked worker processes preparing windows, at most `processes` + 1 windows in flight,
    their results taken in the order submitted. Started on the second window (a corpus of one
    window is prepared in this process, with no fork)."""

    def __init__(self, work: _Work, processes: int) -> None:
        self.work, self.processes = work, processes
        self.pool = None
        self.pending: deque = deque()  # (payload, AsyncResult or Prepared)
        self.first: tuple[list[str], object] | None = None  # held until a second window comes

    def _start(self) -> None:
        import multiprocessing

        global _WORK
        _WORK = self.work
        # the children tokenise on one thread each; telling HF tokenizers so before the fork
        # spares each child its "parallelism already used" warning (restored here after)
        before = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        try:
            self.pool = multiprocessing.get_context("fork").Pool(
                self.processes, initializer=_quiet_worker)
        finally:
            if before is None:
                del os.environ["TOKENIZERS_PARALLELISM"]
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = before

    def submit(self, texts: list[str], payload) -> None:
        if self.pool is None and self.processes:
            if self.first is None and not self.pending:
                self.first = (texts, payload)
                return
            self._start()
            if self.first is not None:
                held, self.first = self.first, None
                self.pending.append((held[1], self.pool.apply_async(prepare_window, (held[0],))))
        if self.pool is None:
            self.pending.append((payload, prepare_window(texts, self.work)))
        else:
            self.pending.append((payload, self.pool.apply_async(prepare_window, (texts,))))

    def full(self) -> bool:
        return len(self.pending) > (self.processes if self.pool is not None else 0)

    def __bool__(self) -> bool:
        return bool(self.pending) or self.first is not None

    def take(self) -> tuple[object, Prepared]:
        if not self.pending and self.first is not None:  # the corpus was one window
            (texts, payload), self.first = self.first, None
            return payload, prepare_window(texts, self.work)
        payload, result = self.pending.popleft()
        return payload, (result if isinstance(result, Prepared) else result.get())

    def close(self, failed: bool) -> None:
        global _WORK
        if self.pool is not None:
            if failed:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
            self.pool = None
        _WORK = None


def _quiet_worker() -> None:
    """A worker leaves Ctrl-C to its parent (which stops the pool), and ends quietly when the
    parent stops it (SIGTERM: the parent's handler, inherited through the fork, would raise in
    the worker and print a traceback)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def embed_documents(
    reader: CorpusReader,
    embedder: Embedder | None,
    targets: RowTargets,
    chunking: ChunkConfig,
    batch_size: int,
    skip_duplicates: bool,
    progress: bool | None,
    workers: int | None = None,
    resume: EmbedStats | None = None,
    on_window: Callable[[EmbedStats], None] | None = None,
) -> EmbedStats:
    """Store every document of `reader` and write its chunks' vectors and BM25 term counts to
    `targets` (see RowTargets; `embedder` None: no vectors, each document one chunk). Documents
    are taken a window at a time (closing at `batch_size * WINDOW_BATCHES` documents, or
    WORKER_WINDOW where workers encode, or WINDOW_CHARS characters), so memory stays bounded
    whatever the corpus. `workers`: processes that prepare windows (None: `worker_count()`).
    `resume`: the stats of the documents already stored (a resumed build): its
    `documents_read` documents are skipped and the rows go on after its chunks.
    `on_window`: called with the running stats after each window is written."""
    stats = resume or EmbedStats()
    skip = stats.documents_read
    processes = worker_count() if workers is None else workers
    in_workers = bool(embedder is not None and getattr(embedder, "single_threaded", False))
    work = _Work(embedder, chunking, targets.lexical if targets.terms is not None else None,
                 in_workers, batch_size)
    window = WORKER_WINDOW if in_workers else max(1, batch_size) * WINDOW_BATCHES
    pool = _Workers(work, processes)
    failed = True
    with progress_bar(progress, reader.size, f"embedding {reader.path.name}", "B") as bar:
        last = 0

        def finish_one() -> None:
            nonlocal last
            started = time.perf_counter()
            (documents, position, read), prepared = pool.take()
            stats.time("wait", time.perf_counter() - started)
            for part, seconds in prepared.seconds.items():
                stats.time(part, seconds)
            _write_window(documents, prepared, embedder, targets, chunking, batch_size, stats,
                          reader)
            stats.documents_read = read
            bar.update(position - last)
            last = position
            bar.set_postfix(docs=stats.documents, refresh=False)
            if on_window is not None:
                on_window(stats)

        def submit(documents: list[Document]) -> None:
            if skip_duplicates:
                documents = _new_texts(documents, targets.store, stats)
            pool.submit([d.text for d in documents], (documents, reader.position, read))
            while pool.full():
                finish_one()

        try:
            pending: list[Document] = []
            pending_chars = 0
            read = 0  # documents taken from the reader (written once their window is)
            started = time.perf_counter()
            for document in reader:
                read += 1
                if read <= skip:
                    continue
                if len(document.text) > chunking.max_chars:  # never held past what is indexed
                    document = replace(document, text=document.text[: chunking.max_chars])
                    stats.cut.append((document.line, f"document {document.id} cut at "
                                      f"{chunking.max_chunks:,} chunks (--max-chunks; text past "
                                      f"{chunking.max_chars:,} characters is not read)"))
                pending.append(document)
                pending_chars += len(document.text)
                if len(pending) >= window or pending_chars >= WINDOW_CHARS:
                    stats.time("read", time.perf_counter() - started)
                    submit(pending)
                    pending, pending_chars = [], 0
                    started = time.perf_counter()
            stats.time("read", time.perf_counter() - started)
            if pending:
                submit(pending)
            while pool:
                finish_one()
            failed = False
        finally:
            pool.close(failed)
    return stats


def _new_texts(documents: list[Document], store: DocumentStore, stats: EmbedStats
               ) -> list[Document]:
    """--append: the documents whose text is neither stored nor repeated in this window."""
    kept, seen = [], set()
    for document in documents:
        digest = text_hash(document.text)
        if digest in seen or store.has_text(document.text):
            stats.duplicates += 1
        else:
            seen.add(digest)
            kept.append(document)
    return kept


def _write_window(
    documents: Sequence[Document],
    prepared: Prepared,
    embedder: Embedder | None,
    targets: RowTargets,
    chunking: ChunkConfig,
    batch_size: int,
    stats: EmbedStats,
    reader: CorpusReader,
) -> None:
    """Store a prepared window's documents (a repeated id: the first document keeps it), write
    their vectors (encoding them here when the worker did not) and add their term counts."""
    if not documents:
        return
    for position in prepared.cut:
        document = documents[position]
        if not any(line == document.line for line, _ in stats.cut):
            stats.cut.append((document.line, f"document {document.id} cut at "
                              f"{chunking.max_chunks:,} chunks (--max-chunks)"))
    chunked = [chunks if chunks is not None else [document.text]
               for document, chunks in zip(documents, prepared.chunks, strict=True)]
    started = time.perf_counter()
    kept = list(range(len(documents)))
    try:
        _store(documents, chunked, kept, targets, stats)
    except DataError:  # a repeated id: find it (strict: stop there), keep the first
        kept = []
        seen: set[str] = set()
        for position, document in enumerate(documents):
            if document.id in seen or targets.store.has_document(document.id):
                reader.bad_line(document.line, f"document id {document.id!r} appears again (the "
                                "first one is kept; ids must be unique: check --id-field)")
                continue
            seen.add(document.id)
            kept.append(position)
        _store(documents, chunked, kept, targets, stats)
    stats.time("store", time.perf_counter() - started)
    first = targets.first_row + stats.chunks
    chunk_texts = [c for position in kept for c in chunked[position]]
    if targets.vectors is not None and embedder is not None and chunk_texts:
        started = time.perf_counter()
        if prepared.vectors is not None:
            vectors = prepared.vectors
            if len(kept) < len(documents):
                sizes = np.array([len(chunks) for chunks in chunked])
                vectors = vectors[np.repeat(np.isin(np.arange(len(documents)), kept), sizes)]
            targets.vectors.write_rows(first, vectors)
        else:  # a window of chunks at a time (a window of documents can hold many more)
            step = max(1, batch_size) * WINDOW_BATCHES
            for begin in range(0, len(chunk_texts), step):
                part = chunk_texts[begin: begin + step]
                targets.vectors.write_rows(first + begin, embed_texts(embedder, part, batch_size))
        stats.time("write" if prepared.vectors is not None else "encode",
                   time.perf_counter() - started)
    if targets.terms is not None and prepared.tokens is not None:
        started = time.perf_counter()
        rows = np.cumsum([0] + [len(chunked[p]) for p in kept[:-1]], dtype=np.int64) + (
            first + targets.row_offset)
        tokens = prepared.tokens
        if len(kept) < len(documents):
            tokens = take_documents(tokens, kept)
        targets.terms.add(rows, tokens)
        stats.time("terms", time.perf_counter() - started)
    stats.documents += len(kept)
    stats.chunks += len(chunk_texts)


def _store(documents, chunked, kept, targets: RowTargets, stats: EmbedStats) -> None:
    row = targets.first_row + stats.chunks + targets.row_offset
    batch = []
    for position in kept:
        document, chunks = documents[position], chunked[position]
        batch.append((document.id, document.text, chunks, row, document.metadata))
        row += len(chunks)
    targets.store.add_documents(batch)


def take_documents(tokens: Tokenized, positions: Sequence[int]) -> Tokenized:
    """The term counts of some documents of a batch, in the order given."""
    positions = np.asarray(positions, dtype=np.int64)
    starts, ends = tokens.indptr[positions], tokens.indptr[positions + 1]
    sizes = ends - starts
    pairs = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)]) if len(
        positions) else np.zeros(0, np.int64)
    indptr = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    return Tokenized(tokens.words, tokens.lengths[positions], indptr,
                     tokens.terms[pairs.astype(np.int64)], tokens.counts[pairs.astype(np.int64)])


class progress_bar:
    """A tqdm bar on stderr (or a no-op), usable as a context manager."""

    def __init__(self, enabled: bool | None, total: int, description: str, unit: str) -> None:
        from tqdm import tqdm

        self.tqdm = tqdm(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=True,
            file=sys.stderr,
            disable=(None if enabled is None else not enabled),
            leave=False,
        )

    def __enter__(self):
        return self.tqdm

    def __exit__(self, *exc) -> None:
        self.tqdm.close()


def embed_texts(embedder: Embedder, texts: list[str], batch_size: int) -> np.ndarray:
    """(n, dim) unit float32 vectors of `texts` in their order, encoded sorted by length so that
    similar lengths share a batch (less padding)."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    embedded = np.asarray(embedder.encode([texts[i] for i in order], batch_size=batch_size,
                                          progress=False), dtype=np.float32)
    if embedded.shape != (len(texts), embedder.dim):
        raise IndexError_(f"the encoder returned vectors of shape {embedded.shape} for "
                          f"{len(texts)} texts of dimension {embedder.dim}; the model folder "
                          "may be damaged")
    vectors = np.empty_like(embedded)
    vectors[order] = embedded
    # the hand-off promises unit vectors; normalising again costs nothing, guards the maths
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors
