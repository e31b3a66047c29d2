"""The indexing half of the pipeline: embed a corpus into an index folder (build, --append).

Documents are read, cut into chunks that fit the encoder's window, and embedded a window at a
time; the rows (documents, vectors, the FAISS index, the lexical part, the manifest) are handed
to the folder's `IndexWriter`, which owns the write: lock, staging, swap, latest pointer.
The encoder is reached only through the `Embedder` protocol (semsearch.embedder). The querying
half is semsearch.querying.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semsearch.corpora import (
    ChunkConfig,
    CorpusReader,
    ReaderOptions,
    detect_format,
)
from semsearch.corpora.chunking import MAX_CHUNKS
from semsearch.embed_chunks import EmbedStats, embed_documents, progress_bar
from semsearch.embedder import Embedder, check_model
from semsearch.encoder.store import sha256_file
from semsearch.errors import ConfigError, DataError, IndexError_
from semsearch.index import (
    IndexWriter,
    Manifest,
    SearchIndex,
    add_rows,
    choose_recipe,
)
from semsearch.index.fusion import FusionConfig, read_model_fusion
from semsearch.index.lexical import LexicalConfig
from semsearch.index.lock import MAX_WAIT_SECONDS
from semsearch.index.manifest import now
from semsearch.index.tuning import TARGET_RECALL
from semsearch.index_tuning import retune_after_append, tuning_queries, write_tuned_index

# the largest --batch-size and --max-chunks taken (beyond them memory, not speed, grows)
MAX_BATCH_SIZE = 65_536
MAX_CHUNKS_LIMIT = 1_000_000


@dataclass(frozen=True)
class IndexOptions:
    """How `semsearch index` builds: the CLI's --type, --max-memory, --batch-size, reader flags."""

    type: str = "auto"  # flat, hnsw, ivf, ivfpq, auto, or a FAISS factory string
    max_memory: int | None = None  # bytes the index may hold in RAM (auto, ivfpq); None: half RAM
    # tune nprobe / efSearch to reach this recall@10 on corpus spans (0: recipe default)
    target_recall: float = TARGET_RECALL
    batch_size: int = 64  # texts a forward pass
    overlap: float = 0.2  # fraction of the window repeated between chunks of a long document
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    # chunks kept of one document (the rest is not indexed, and the cut is reported)
    max_chunks: int = MAX_CHUNKS
    # seconds to wait for another process writing the same index folder (0: refuse at once)
    wait: float = 0
    # the default second phase to record in the manifest (semsearch.rescoring.describe_model)
    rescore: dict | None = None


@dataclass
class IndexReport:
    """What `index_corpus` did, for the CLI to print."""

    folder: Path
    recipe: dict
    documents_added: int = 0
    chunks_added: int = 0
    duplicates_skipped: int = 0
    lines_skipped: list[tuple[int, str]] = field(default_factory=list)
    documents_total: int = 0
    vectors_total: int = 0
    seconds: float = 0.0
    appended: bool = False
    # (line, what happened) of documents cut short: a text line past the byte limit, or a
    # document past max_chunks chunks
    documents_cut: list[tuple[int, str]] = field(default_factory=list)
    stale_removed: int = 0  # temporary folders of dead writers removed before writing
    # --append on an approximate index: (setting, old value, new value, recall before, after)
    recall_change: tuple[str, int | None, int | None, float, float] | None = None

    def to_dict(self) -> dict:
        return {
            "index": str(self.folder),
            "factory": self.recipe.get("factory"),
            "recipe": self.recipe,
            "documents_added": self.documents_added,
            "chunks_added": self.chunks_added,
            "duplicates_skipped": self.duplicates_skipped,
            "lines_skipped": len(self.lines_skipped),
            "documents_cut": len(self.documents_cut),
            "documents": self.documents_total,
            "vectors": self.vectors_total,
            "seconds": round(self.seconds, 3),
            "appended": self.appended,
            "recall_change": dict(
                zip(("setting", "old", "new", "recall_before", "recall_after"),
                    self.recall_change, strict=True)
            ) if self.recall_change else None,
        }


def index_corpus(
    corpus: Path,
    embedder: Embedder,
    out: Path,
    options: IndexOptions = IndexOptions(),
    append: bool = False,
    progress: bool | None = None,
    latest: bool = True,
) -> IndexReport:
    """Embed a corpus file and write (or, with append, extend) the index folder `out`.

    Documents are read, cut into chunks that fit the encoder window, stored in SQLite, and
    embedded a window of chunks at a time (sorted by length to waste less padding), streaming
    vectors to a file on disk; the FAISS index is then trained on a sample and filled from that
    file. The folder's `IndexWriter` stages everything in a temporary sibling that replaces
    `out` only at the end. `progress`: None shows bars when stderr is a terminal. `latest`:
    record the folder as the default index for `semsearch query` (indexes/.semsearch-latest).
    """
    import time

    started = time.perf_counter()
    _check_options(options)
    out = Path(out)
    chunking = ChunkConfig(
        max_tokens=embedder.max_seq_len, overlap=options.overlap, max_chunks=options.max_chunks
    )
    reader_options = options.reader
    if (reader_options.format or detect_format(Path(corpus))) == "txt":
        # a text line past what max_chunks chunks can hold is read no further
        limit = min(reader_options.max_line_bytes, max(1 << 20, chunking.max_chars))
        reader_options = replace(reader_options, max_line_bytes=limit)
    reader = CorpusReader(corpus, reader_options)
    with IndexWriter(out, options.wait, fresh=not append) as writer:
        report = (
            _append(writer, reader, embedder, options, chunking, progress, latest)
            if append
            else _build(writer, reader, embedder, options, chunking, progress, latest)
        )
        report.stale_removed = len(writer.stale_removed)
    cut_lines = {line for line, _ in reader.cut}  # one report a document, the first cut
    report.documents_cut = sorted(
        reader.cut + [(line, why) for line, why in report.documents_cut if line not in cut_lines]
    )
    report.seconds = time.perf_counter() - started
    return report


def _check_options(options: IndexOptions) -> None:
    """Bounds of the numbers the CLI and the API take (FAISS reads some as 32-bit ints)."""
    if not isinstance(options.target_recall, (int, float)) or not (
        math.isfinite(options.target_recall) and 0 <= options.target_recall <= 1
    ):
        raise ConfigError(f"target recall must be between 0 and 1, not {options.target_recall}")
    if not 1 <= options.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch size must be between 1 and {MAX_BATCH_SIZE}, not "
                          f"{options.batch_size}")
    if not 1 <= options.max_chunks <= MAX_CHUNKS_LIMIT:
        raise ConfigError(f"max chunks must be between 1 and {MAX_CHUNKS_LIMIT:,}, not "
                          f"{options.max_chunks}")
    if not (math.isfinite(options.overlap) and 0 <= options.overlap < 1):
        raise ConfigError(f"overlap must be at least 0 and below 1, not {options.overlap}")
    if not (math.isfinite(options.wait) and 0 <= options.wait <= MAX_WAIT_SECONDS):
        raise ConfigError(f"--wait must be between 0 and {MAX_WAIT_SECONDS} seconds, not "
                          f"{options.wait}")


def _build(writer: IndexWriter, reader, embedder, options, chunking, progress,
           latest: bool) -> IndexReport:
    writer.stage()
    store = writer.documents()
    vectors = writer.vectors(embedder.dim)
    try:
        stats = embed_documents(
            reader, embedder, store, vectors, 0, chunking, options.batch_size, False, progress
        )
        if stats.chunks == 0:
            skipped = f" ({len(reader.skipped)} unreadable lines skipped)" if reader.skipped else ""
            raise DataError(
                f"corpus {reader.path} has no documents{skipped}; give a file with one "
                "document a line (blank lines are skipped)"
            )
        recipe = choose_recipe(options.type, stats.chunks, embedder.dim, options.max_memory)
        with progress_bar(progress, stats.chunks, "adding", "vec") as bar:
            index, recipe, trained_on = write_tuned_index(
                recipe, vectors, stats.chunks, options.target_recall, writer, bar.update,
                queries=lambda: tuning_queries(store, embedder,
                                               np.arange(stats.chunks, dtype=np.int64)),
            )
        manifest = new_manifest(embedder, index, store, writer, recipe, chunking,
                                corpus_entry(reader, stats, embedder), stats.chunks, trained_on)
        manifest.rescore = options.rescore
        store.commit()
        writer.write_manifest(manifest)
    finally:
        store.close()
    writer.commit(latest=latest)
    return IndexReport(
        writer.folder,
        recipe.to_dict(),
        stats.documents,
        stats.chunks,
        stats.duplicates,
        reader.skipped,
        manifest.documents,
        manifest.count,
        documents_cut=stats.cut,
    )


def _append(writer: IndexWriter, reader, embedder, options, chunking, progress,
            latest: bool) -> IndexReport:
    out = writer.folder
    if not out.exists():
        raise IndexError_(
            f"no index at {out} to append to; build it first with `semsearch index CORPUS "
            f"--out {out}`"
        )
    current = SearchIndex.open(out)
    manifest, recipe = current.manifest, current.recipe
    current.close()
    check_model(manifest, embedder, out)
    start = manifest.next_row
    recall_change = None
    writer.stage(copy=True)
    store = writer.documents()
    # ivfpq keeps every vector on disk (row = id) to re-rank; others need only the new ones
    kept = writer.vectors(embedder.dim)
    vectors = kept if recipe.rerank else writer.vectors(embedder.dim, "new.f32")
    first_row = start if recipe.rerank else 0
    try:
        stats = embed_documents(
            reader, embedder, store, vectors, first_row, chunking, options.batch_size, True,
            progress, row_offset=start - first_row,
        )
        if stats.chunks:
            index = writer.read_index()
            add_rows(index, vectors, first_row, first_row + stats.chunks,
                     id_offset=start - first_row)
            tuned = retune_after_append(index, recipe, store, kept, options.target_recall,
                                        embedder)
            if tuned is not None:
                recipe, recall_change = tuned
                manifest.recipe = recipe.to_dict()
            writer.write_index(index)
            if not recipe.rerank:
                vectors.path.unlink()
            store.commit()
            if manifest.lexical is not None:  # BM25 has no incremental update: rebuild
                manifest.lexical = writer.write_lexical(
                    store, LexicalConfig.from_dict(manifest.lexical))
            manifest.count = int(index.ntotal)
            manifest.documents = store.count_documents()
            manifest.next_row = start + stats.chunks
            manifest.corpora.append(corpus_entry(reader, stats, embedder))
            if options.rescore is not None:
                manifest.rescore = options.rescore
            manifest.updated = now()
            writer.write_manifest(manifest)
    finally:
        store.close()
    if stats.chunks:  # nothing new: the staged copy is dropped and the folder left as it was
        writer.commit(latest=latest)
    else:
        stats = EmbedStats(duplicates=stats.duplicates, cut=stats.cut)
    return IndexReport(
        out,
        manifest.recipe,
        stats.documents,
        stats.chunks,
        stats.duplicates,
        reader.skipped,
        manifest.documents,
        manifest.count,
        appended=True,
        documents_cut=stats.cut,
        recall_change=recall_change,
    )


def new_manifest(embedder: Embedder, index, store, writer, recipe, chunking: ChunkConfig,
                 corpus: dict, next_row: int, trained_on: int, **engine) -> Manifest:
    """The manifest of a freshly built index folder (local or Ray, `engine` naming the latter's
    fields); writes its lexical part through `writer` on the way."""
    return Manifest(
        model_name=embedder.name,
        model_fingerprint=embedder.fingerprint,
        model_path=str(getattr(embedder, "path", embedder.name)),
        dim=embedder.dim,
        count=int(index.ntotal),
        documents=store.count_documents(),
        next_row=next_row,
        recipe=recipe.to_dict(),
        chunking=chunking.to_dict(),
        corpora=[corpus],
        precision=_precision(embedder),
        trained_on=trained_on,
        lexical=writer.write_lexical(store),
        fusion=model_fusion(embedder).to_dict(),
        created=now(),
        updated=now(),
        **engine,
    )


def _precision(embedder: Embedder) -> str:
    """fp32 or int8: how the vectors were computed (an embedder without the attribute is fp32)."""
    return getattr(embedder, "precision", "fp32")


def corpus_entry(reader: CorpusReader, stats: EmbedStats, embedder: Embedder) -> dict:
    """The manifest's record of one corpus added to an index (local and Ray builds alike)."""
    return {
        "path": str(reader.path),
        "sha256": sha256_file(reader.path),
        "format": reader.format,
        "documents": stats.documents,
        "chunks": stats.chunks,
        "duplicates_skipped": stats.duplicates,
        "lines_skipped": len(reader.skipped),
        "precision": _precision(embedder),
        "added": now(),
    }


def model_fusion(embedder: Embedder) -> FusionConfig:
    """The fusion calibrated for this model (fusion.json in its folder), else the default."""
    folder = getattr(embedder, "path", None)
    return read_model_fusion(folder, embedder.fingerprint) if folder else FusionConfig()

