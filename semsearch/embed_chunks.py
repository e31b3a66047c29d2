"""A corpus streamed into rows: each document into the store, its chunks' vectors into the
vector file, a bounded window at a time (the local build and --append; the Ray engine embeds its
shards with `embed_texts`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from semsearch.corpora import ChunkConfig, CorpusReader, Document, chunk_documents
from semsearch.embedder import Embedder
from semsearch.errors import IndexError_
from semsearch.index import DocumentStore, VectorFile
from semsearch.index.store import text_hash

# chunks embedded and written at a time; bounds memory whatever the corpus size
WINDOW_BATCHES = 32
# characters of documents held at a time before they are embedded and written
WINDOW_CHARS = 8 * 1024 * 1024


@dataclass
class EmbedStats:
    """What embedding a corpus did: documents and chunks added, duplicates skipped, cuts."""


    documents: int = 0
    chunks: int = 0
    duplicates: int = 0
    cut: list[tuple[int, str]] = field(default_factory=list)  # (line, why) of capped documents


def embed_documents(
    reader: CorpusReader,
    embedder: Embedder,
    store: DocumentStore,
    vectors: VectorFile,
    first_row: int,
    chunking: ChunkConfig,
    batch_size: int,
    skip_duplicates: bool,
    progress: bool | None,
    row_offset: int = 0,
) -> EmbedStats:
    """Store and embed every document; chunk vectors go to `vectors` rows first_row, ...
    (their FAISS ids are row + row_offset). Documents are taken a window at a time, a window
    closing at `batch_size * WINDOW_BATCHES` documents or WINDOW_CHARS characters, so memory
    stays bounded whatever the lengths of the documents."""
    stats = EmbedStats()
    window = max(1, batch_size) * WINDOW_BATCHES
    pending: list[Document] = []
    pending_chars = 0
    with progress_bar(progress, reader.size, f"embedding {reader.path.name}", "B") as bar:
        last = 0

        def flush() -> None:
            nonlocal last, pending_chars
            embed_window(
                pending, embedder, store, vectors, first_row, chunking, batch_size,
                skip_duplicates, stats, row_offset, reader,
            )
            pending.clear()
            pending_chars = 0
            bar.update(reader.position - last)
            last = reader.position
            bar.set_postfix(docs=stats.documents, refresh=False)

        for document in reader:
            if len(document.text) > chunking.max_chars:  # never held past what can be indexed
                document = replace(document, text=document.text[: chunking.max_chars])
                stats.cut.append((document.line, f"document {document.id} cut at "
                                  f"{chunking.max_chunks:,} chunks (--max-chunks; text past "
                                  f"{chunking.max_chars:,} characters is not read)"))
            pending.append(document)
            pending_chars += len(document.text)
            if len(pending) >= window or pending_chars >= WINDOW_CHARS:
                flush()
        flush()
    return stats


def embed_window(
    documents: Sequence[Document],
    embedder: Embedder,
    store: DocumentStore,
    vectors: VectorFile,
    first_row: int,
    chunking: ChunkConfig,
    batch_size: int,
    skip_duplicates: bool,
    stats: EmbedStats,
    row_offset: int,
    reader: CorpusReader,
) -> None:
    if not documents:
        return
    if skip_duplicates:  # --append: leave out texts already stored (or repeated in this window)
        kept, seen = [], set()
        for document in documents:
            digest = text_hash(document.text)
            if digest in seen or store.has_text(document.text):
                stats.duplicates += 1
            else:
                seen.add(digest)
                kept.append(document)
        documents = kept
    cut: list[int] = []
    chunked = chunk_documents([d.text for d in documents], embedder.count_tokens, chunking, cut)
    for position in cut:
        document = documents[position]
        if not any(line == document.line for line, _ in stats.cut):
            stats.cut.append((document.line, f"document {document.id} cut at "
                              f"{chunking.max_chunks:,} chunks (--max-chunks)"))
    texts: list[str] = []
    added = 0
    for document, chunks in zip(documents, chunked, strict=True):
        if store.has_document(document.id):
            # a repeated id: the first document keeps it (--errors strict stops here instead)
            reader.bad_line(document.line, f"document id {document.id!r} appears again (the "
                             "first one is kept; ids must be unique: check --id-field)")
            continue
        row = first_row + stats.chunks + len(texts)
        store.add_document(document.id, document.text, chunks, row + row_offset, document.metadata)
        texts.extend(chunks)
        added += 1
    # embed a window of chunks at a time (a window of documents can hold many more chunks)
    window = max(1, batch_size) * WINDOW_BATCHES
    for begin in range(0, len(texts), window):
        part = texts[begin : begin + window]
        vectors.write_rows(first_row + stats.chunks + begin,
                           embed_texts(embedder, part, batch_size))
    stats.documents += added
    stats.chunks += len(texts)


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
