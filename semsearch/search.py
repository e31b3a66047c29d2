"""Where the encoder meets the index: embed a corpus into an index folder, and query it.

The one module that knows both sides. The encoder is reached only through the `Embedder`
protocol (anything with encode, count_tokens, dim, name, fingerprint, max_seq_len), so the
index commands can be driven by a trained `SentenceEncoder` (or, in tests, any object with the
`Embedder` interface).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from semsearch.corpora import (
    ChunkConfig,
    CorpusReader,
    Document,
    ReaderOptions,
    chunk_documents,
    detect_format,
)
from semsearch.corpora.chunking import MAX_CHUNKS
from semsearch.encoder.store import sha256_file
from semsearch.errors import ConfigError, DataError, IndexError_
from semsearch.index import (
    DocumentStore,
    Hit,
    IndexRecipe,
    Manifest,
    SearchIndex,
    VectorFile,
    add_rows,
    build_index,
    choose_recipe,
    mark_latest,
    read_index,
    staged_folder,
    write_index,
)
from semsearch.index.folder import (
    INDEX_FILE,
    MANIFEST,
    STORE_FILE,
    VECTORS_FILE,
    check_replaceable,
    clean_stale,
)
from semsearch.index.fusion import FusionConfig, fuse, read_model_fusion
from semsearch.index.lexical import LexicalConfig
from semsearch.index.lock import MAX_WAIT_SECONDS, index_writer
from semsearch.index.manifest import now
from semsearch.index.search_index import write_lexical
from semsearch.index.store import text_hash
from semsearch.index.tuning import (
    NO_ROW,
    TARGET_RECALL,
    TUNE_QUERIES,
    QueryVectors,
    retune,
    span_texts,
    stored_vectors,
    tunable,
    tune_recipe,
)

# chunks embedded and written at a time; bounds memory whatever the corpus size
WINDOW_BATCHES = 32
# the largest --batch-size and --max-chunks taken (beyond them memory, not speed, grows)
MAX_BATCH_SIZE = 65_536
MAX_CHUNKS_LIMIT = 1_000_000
# characters of documents held at a time before they are embedded and written
WINDOW_CHARS = 8 * 1024 * 1024


class Embedder(Protocol):
    """What the index needs from an encoder (SentenceEncoder satisfies it)."""

    name: str
    dim: int
    fingerprint: str  # identifies the weights; an index refuses queries from other weights
    max_seq_len: int  # tokens a text may have, including the 2 special tokens

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...


def load_embedder(model: str | Path | None, device: str | None = None,
                  texts: int | None = None, precision: str = "fp32",
                  backend: str | None = None, threads: int | None = None,
                  one_shot: bool = False) -> Embedder:
    """The trained encoder at `model` (None: the newest under models/) on `device` (None: auto)
    in `precision` (fp32, or int8: CPU only), run by `backend`: "onnx" (ONNX Runtime, CPU),
    "torch", or None: onnx on a CPU when onnxruntime is installed, torch otherwise and on a GPU.

    For a few texts on the CPU in fp32 (`texts` <= NUMPY_MAX_TEXTS, as for a query) with no
    backend named, torch is never imported (its import is most of a query's wall time): the
    model's exported ONNX graph when it is there and current (faster than numpy a text once
    loaded), else the numpy forward pass; both give the torch vectors. `one_shot`: the process
    encodes these few texts and exits (a `semsearch query` from the shell), so start-up counts,
    and there numpy is the faster for up to ONE_SHOT_NUMPY_TEXTS texts (no ONNX Runtime import
    or session; docs/results.md, issue 17)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS[1:])}")
    if (backend is None and precision == "fp32" and device in (None, "cpu")
            and texts is not None and texts <= NUMPY_MAX_TEXTS):
        return _light_embedder(model, threads,
                               prefer_numpy=one_shot and texts <= ONE_SHOT_NUMPY_TEXTS)
    if backend is None:
        backend = "onnx" if _onnx_fits(device) else "torch"
    if backend == "onnx":
        if device not in (None, "auto", "cpu"):
            raise ConfigError(f"--backend onnx runs on the CPU, not on {device}; pass "
                              "--device cpu or --backend torch")
        from semsearch.encoder.onnx_encoder import OnnxEncoder

        return OnnxEncoder.load(model, precision=precision, threads=threads)
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    return SentenceEncoder.load(model, device=device, precision=precision)


# None: choose (onnx on a CPU when installed, else torch)
BACKENDS = (None, "torch", "onnx")


def _light_embedder(model: str | Path | None, threads: int | None,
                    prefer_numpy: bool = False) -> Embedder:
    """The torch-free encoder for a few texts: ONNX Runtime on an exported, current graph, else
    (or with `prefer_numpy`) numpy, which needs no export."""
    from semsearch.encoder.onnx_encoder import OnnxEncoder, available, onnx_path
    from semsearch.encoder.store import resolve_model
    from semsearch.errors import ModelError

    folder = resolve_model(model)
    if not prefer_numpy and available() and onnx_path(folder, "fp32").is_file():
        try:
            return OnnxEncoder.load(folder, threads=threads, export=False)
        except ModelError:  # stale: the next `index` or `export` refreshes it
            pass
    from semsearch.encoder.numpy_encoder import NumpyEncoder

    return NumpyEncoder.load(folder)


def _onnx_fits(device: str | None) -> bool:
    """Whether the automatic backend is ONNX Runtime: it is installed and the work runs on the
    CPU (named, or auto with no GPU that torch can use)."""
    from semsearch.encoder.onnx_encoder import available

    if not available() or device not in (None, "auto", "cpu"):
        return False
    if device == "cpu":
        return True
    from semsearch.encoder.device import pick_device

    return pick_device("auto").type == "cpu"


NUMPY_MAX_TEXTS = 1000
# texts a one-shot process encodes on numpy even where an ONNX graph is exported: loading the
# encoder and encoding one query in a fresh process took 0.095 s on numpy against 0.17 s on ORT
# (quick), 0.29 s against 0.42 s (all-MiniLM-L6-v2), while a further query, warm, costs numpy
# 3-7 ms more (5.0 against 2.1 ms, 11.2 against 4.6 ms): numpy stays ahead to about 20 texts
ONE_SHOT_NUMPY_TEXTS = 16


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


class _NothingNew(Exception):
    """Raised inside the staging folder to discard it when an append adds nothing."""


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
    file. Everything happens in a temporary sibling folder that replaces `out` only at the end.
    `progress`: None shows bars when stderr is a terminal. `latest`: record the folder as the
    default index for `semsearch query` (indexes/LATEST).
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
    if not append:
        check_replaceable(out)  # refuse before anything (a lock file) is written beside it
    with index_writer(out, options.wait):
        stale = clean_stale(out)
        report = (
            _append(reader, embedder, out, options, chunking, progress)
            if append
            else _build(reader, embedder, out, options, chunking, progress)
        )
        report.stale_removed = len(stale)
        if latest and (report.chunks_added or not append):
            mark_latest(out)
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


def _build(reader, embedder, out, options, chunking, progress) -> IndexReport:
    with staged_folder(out) as staging:
        store = DocumentStore(staging / STORE_FILE)
        vectors = VectorFile(staging / VECTORS_FILE, embedder.dim)
        try:
            stats = _embed_documents(
                reader, embedder, store, vectors, 0, chunking, options.batch_size, False, progress
            )
            if stats.chunks == 0:
                skipped = (
                    f" ({len(reader.skipped)} unreadable lines skipped)" if reader.skipped else ""
                )
                raise DataError(
                    f"corpus {reader.path} has no documents{skipped}; give a file with one "
                    "document a line (blank lines are skipped)"
                )
            recipe = choose_recipe(options.type, stats.chunks, embedder.dim, options.max_memory)
            with _bar(progress, stats.chunks, "adding", "vec") as bar:
                index, recipe, trained_on = write_tuned_index(
                    recipe, vectors, stats.chunks, options.target_recall, staging, bar.update,
                    queries=lambda: tuning_queries(store, embedder,
                                                   np.arange(stats.chunks, dtype=np.int64)),
                )
            manifest = Manifest(
                model_name=embedder.name,
                model_fingerprint=embedder.fingerprint,
                model_path=str(getattr(embedder, "path", embedder.name)),
                dim=embedder.dim,
                count=int(index.ntotal),
                documents=store.count_documents(),
                next_row=stats.chunks,
                recipe=recipe.to_dict(),
                chunking=chunking.to_dict(),
                corpora=[corpus_entry(reader, stats, embedder)],
                precision=_precision(embedder),
                trained_on=trained_on,
                lexical=write_lexical(staging, store),
                fusion=model_fusion(embedder).to_dict(),
                created=now(),
                updated=now(),
            )
            store.commit()
            manifest.write(staging / MANIFEST)
        finally:
            store.close()
    return IndexReport(
        out,
        recipe.to_dict(),
        stats.documents,
        stats.chunks,
        stats.duplicates,
        reader.skipped,
        manifest.documents,
        manifest.count,
        documents_cut=stats.cut,
    )


def write_tuned_index(
    recipe: IndexRecipe,
    vectors: VectorFile,
    count: int,
    target_recall: float,
    staging: Path,
    progress: Callable[[int], None] | None = None,
    queries: Callable[[], QueryVectors | None] | None = None,
) -> tuple[object, IndexRecipe, int]:
    """Build the recipe's index over rows 0..count of `vectors`, tune its nprobe / efSearch to
    `target_recall` (0: keep the defaults) on the vectors `queries()` gives (None, or no
    `queries`: stored vectors), and write it into the staging folder; the vector file goes
    unless the recipe re-ranks with it. Returns (index, tuned recipe, trained on)."""
    try:
        index, trained_on = build_index(recipe, vectors, count, progress)
        recipe = tune_to_target(index, recipe, vectors, count, target_recall, queries)
    except RuntimeError as error:  # FAISS's C++ exceptions: never a traceback
        detail = " ".join(str(error).split())[-160:]
        raise ConfigError(
            f"FAISS could not build {recipe.factory!r} for {count:,} vectors ({detail}); "
            "choose another --type, or --type auto"
        ) from None
    write_index(index, staging / INDEX_FILE)
    if not recipe.rerank:
        vectors.path.unlink()
    return index, recipe, trained_on


def _append(reader, embedder, out, options, chunking, progress) -> IndexReport:
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
    try:
        with staged_folder(out, copy_from=out) as staging:
            store = DocumentStore(staging / STORE_FILE)
            # ivfpq keeps every vector on disk (row = id) to re-rank; others need only the new ones
            kept = VectorFile(staging / VECTORS_FILE, embedder.dim)
            vectors = kept if recipe.rerank else VectorFile(staging / "new.f32", embedder.dim)
            first_row = start if recipe.rerank else 0
            try:
                stats = _embed_documents(
                    reader,
                    embedder,
                    store,
                    vectors,
                    first_row,
                    chunking,
                    options.batch_size,
                    True,
                    progress,
                    row_offset=start - first_row,
                )
                if stats.chunks == 0:
                    raise _NothingNew
                index = read_index(staging / INDEX_FILE)
                add_rows(
                    index, vectors, first_row, first_row + stats.chunks, id_offset=start - first_row
                )
                tuned = _retune_after_append(index, recipe, store, kept, options, embedder)
                if tuned is not None:
                    recipe, recall_change = tuned
                    manifest.recipe = recipe.to_dict()
                write_index(index, staging / INDEX_FILE)
                if not recipe.rerank:
                    vectors.path.unlink()
                store.commit()
                if manifest.lexical is not None:  # BM25 has no incremental update: rebuild
                    manifest.lexical = write_lexical(
                        staging, store, LexicalConfig.from_dict(manifest.lexical)
                    )
                manifest.count = int(index.ntotal)
                manifest.documents = store.count_documents()
                manifest.next_row = start + stats.chunks
                manifest.corpora.append(corpus_entry(reader, stats, embedder))
                manifest.updated = now()
                manifest.write(staging / MANIFEST)
            finally:
                store.close()
    except _NothingNew:
        stats = _Stats(duplicates=stats.duplicates, cut=stats.cut)
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


def tune_to_target(index, recipe: IndexRecipe, vectors: VectorFile, count: int,
                   target_recall: float,
                   queries: Callable[[], QueryVectors | None] | None = None) -> IndexRecipe:
    """The recipe with nprobe / efSearch tuned to `target_recall` (0: unchanged) on the vectors
    `queries()` gives (None, or no `queries`: stored vectors), and the tuning recorded in its
    reason, recall and target; the local and the Ray build both end with it."""
    if not target_recall:
        return recipe
    if not tunable(index, count):  # nothing to tune: encode no spans for it
        return recipe
    sample = queries() if queries is not None else None
    recipe, tuning = tune_recipe(index, recipe, vectors, count, target_recall,
                                 query_vectors=sample)
    if tuning is None:
        return recipe
    return replace(recipe, reason=f"{recipe.reason}; tuned {tuning.describe()}",
                   recall=tuning.recall, target_recall=target_recall)


def tuning_queries(store: DocumentStore, embedder: Embedder, rows: np.ndarray,
                   count: int = TUNE_QUERIES, seed: int = 0) -> QueryVectors | None:
    """Short spans cut from a seeded sample of the chunks at `rows`, encoded: the queries
    nprobe / efSearch are tuned on (query-shaped, unlike the stored vectors; see
    semsearch.index.tuning). None when there is no text to cut from."""
    if not len(rows):
        return None
    picked = np.sort(np.random.default_rng(seed).choice(rows, min(count, len(rows)),
                                                        replace=False))
    found = store.chunks([int(row) for row in picked])
    chunks = [found[row] for row in sorted(found)]
    spans = span_texts([chunk.text for chunk in chunks], seed)
    kept = [(span, chunk) for span, chunk in zip(spans, chunks, strict=True) if span]
    if not kept:
        return None
    vectors = np.asarray(embedder.encode([span for span, _ in kept], batch_size=64),
                         dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    own = [chunk.row if span == " ".join(chunk.text.split()) else NO_ROW
           for span, chunk in kept]
    return QueryVectors(vectors, np.asarray(own, dtype=np.int64))


def _retune_after_append(index, recipe: IndexRecipe, store: DocumentStore, kept: VectorFile,
                         options: IndexOptions, embedder: Embedder):
    """IVF lists trained on the original corpus drift as documents are appended: re-measure
    recall@10 on spans cut from a sample of all the chunks and raise nprobe / efSearch when it fell below the
    target. Returns (recipe, (setting, old, new, recall before, after)), or None for an exact
    index or --target-recall 0."""
    target = recipe.target_recall if recipe.target_recall is not None else options.target_recall
    if recipe.exact or not target or (recipe.nprobe is None and recipe.ef_search is None):
        return None
    rows = np.fromiter((row for (row,) in store.connection.execute(
        "SELECT row FROM chunks ORDER BY row")), dtype=np.int64)
    try:
        stored = stored_vectors(index, kept if recipe.rerank else None, rows)
    except ValueError:
        return None
    setting = "nprobe" if recipe.nprobe is not None else "ef_search"
    tuned, before, after = retune(index, recipe, stored, kept if recipe.rerank else None, target,
                                  query_vectors=tuning_queries(store, embedder, rows))
    return tuned, (setting, getattr(recipe, setting), getattr(tuned, setting), before, after)


@dataclass
class _Stats:
    documents: int = 0
    chunks: int = 0
    duplicates: int = 0
    cut: list[tuple[int, str]] = field(default_factory=list)  # (line, why) of capped documents


def _embed_documents(
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
) -> _Stats:
    """Store and embed every document; chunk vectors go to `vectors` rows first_row, ...
    (their FAISS ids are row + row_offset). Documents are taken a window at a time, a window
    closing at `batch_size * WINDOW_BATCHES` documents or WINDOW_CHARS characters, so memory
    stays bounded whatever the lengths of the documents."""
    stats = _Stats()
    window = max(1, batch_size) * WINDOW_BATCHES
    pending: list[Document] = []
    pending_chars = 0
    with _bar(progress, reader.size, f"embedding {reader.path.name}", "B") as bar:
        last = 0

        def flush() -> None:
            nonlocal last, pending_chars
            _embed_window(
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


def _embed_window(
    documents: Sequence[Document],
    embedder: Embedder,
    store: DocumentStore,
    vectors: VectorFile,
    first_row: int,
    chunking: ChunkConfig,
    batch_size: int,
    skip_duplicates: bool,
    stats: _Stats,
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
        order = sorted(range(len(part)), key=lambda i: len(part[i]))  # like lengths batch together
        embedded = embedder.encode([part[i] for i in order], batch_size=batch_size, progress=False)
        embedded = np.asarray(embedded, dtype=np.float32)
        if embedded.shape != (len(part), embedder.dim):
            raise IndexError_(
                f"the encoder returned vectors of shape {embedded.shape} for {len(part)} texts "
                f"of dimension {embedder.dim}; the model folder may be damaged"
            )
        in_row_order = np.empty_like(embedded)
        in_row_order[order] = embedded
        # the hand-off promises unit vectors; normalising again costs nothing, guards the maths
        in_row_order /= np.maximum(np.linalg.norm(in_row_order, axis=1, keepdims=True), 1e-12)
        vectors.write_rows(first_row + stats.chunks + begin, in_row_order)
    stats.documents += added
    stats.chunks += len(texts)


def _precision(embedder: Embedder) -> str:
    """fp32 or int8: how the vectors were computed (an embedder without the attribute is fp32)."""
    return getattr(embedder, "precision", "fp32")


def corpus_entry(reader: CorpusReader, stats: _Stats, embedder: Embedder) -> dict:
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


class _bar:
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


def check_model(manifest: Manifest, embedder: Embedder, folder: Path) -> None:
    """Refuse an encoder other than the one the index was built with, saying how to fix it.

    An index built before the fingerprint covered the tokenizer and config recorded the
    weights' fingerprint alone: it matches an encoder with the same weights (a changed tokenizer
    or config cannot be told apart for it; `semsearch check` says so and suggests a rebuild)."""
    if embedder.dim == manifest.dim and manifest.model_fingerprint in (
        embedder.fingerprint, getattr(embedder, "weights_fingerprint", None)
    ):
        return
    given = getattr(embedder, "path", embedder.name)
    raise IndexError_(
        f"index {folder} was built with model {manifest.model_name} (fingerprint "
        f"{manifest.model_fingerprint}) but model {embedder.name} (fingerprint "
        f"{embedder.fingerprint}) was given; pass --model {manifest.model_path}, or rebuild with "
        f"`semsearch index CORPUS --model {given} --out {folder}`"
    )


def model_for_index(manifest: Manifest, model: str | Path | None) -> str | Path | None:
    """The model to embed queries with: the one asked for, else the one the index was built with
    (when its folder is still there), else None (the newest model)."""
    if model is not None:
        return model
    built_with = Path(manifest.model_path)
    return built_with if built_with.is_dir() else None


class QueryEncoding:
    """The query encoder loaded, and the queries encoded, in a thread while the caller opens the
    index: a one-shot query's two start-up costs overlap. Reading the FAISS index, hashing the
    weights and numpy's products all run with the GIL released (docs/results.md, issue 17).

        encoding = QueryEncoding(folder, model, queries)   # starts the thread
        index = SearchIndex.open(folder)
        embedder, vectors = encoding.result(index)         # joins it

    The model is the one the folder's manifest names (or `model`); `result` checks it against
    the manifest the index was opened with and loads again if the folder was swapped meanwhile.
    Errors (a missing or broken model) are raised by `result`, in the caller's thread."""

    def __init__(self, folder: Path, model: str | Path | None, queries: Sequence[str],
                 device: str | None = None) -> None:
        self.queries, self.model, self.device = list(queries), model, device
        self._thread: threading.Thread | None = None
        self._outcome: tuple[Embedder, np.ndarray] | BaseException | None = None
        try:
            manifest = Manifest.read(Path(folder) / MANIFEST)
        except Exception:  # noqa: BLE001 - opening the index reports a missing or bad folder
            return
        self._model = model_for_index(manifest, model)
        self._thread = threading.Thread(target=self._run, name="semsearch-query-encoder",
                                        daemon=True)
        self._thread.start()

    def _load(self, model: str | Path | None) -> Embedder:
        return load_embedder(model, device=self.device, texts=len(self.queries), one_shot=True)

    def _run(self) -> None:
        try:
            embedder = self._load(self._model)
            vectors = np.asarray(embedder.encode(self.queries), dtype=np.float32)
            self._outcome = (embedder, vectors)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self._outcome = error

    def result(self, index: SearchIndex) -> tuple[Embedder, np.ndarray | None]:
        """The encoder for the opened `index`, and the queries' vectors (None: not encoded
        yet, as when the folder changed model while it was opened)."""
        wanted = model_for_index(index.manifest, self.model)
        if self._thread is not None:
            self._thread.join()
            if wanted == self._model:
                if isinstance(self._outcome, BaseException):
                    raise self._outcome
                return self._outcome
        return self._load(wanted), None


def read_queries(lines: Iterable[str]) -> list[str]:
    """The non-blank lines, stripped: one query a line.

    >>> read_queries(["ocean tides\\n", "  \\n", " rust "])
    ['ocean tides', 'rust']
    """
    return [line.strip() for line in lines if line.strip()]


MODES = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class SearchOptions:
    """How `search` ranks: `semsearch query`'s --mode, --fusion, --dense-weight, --where, ..."""

    mode: str | None = None  # hybrid, dense or lexical; None: hybrid where the index can
    fusion: str | None = None  # rrf or weighted; None: the index's (from the model's calibration)
    dense_weight: float | None = None  # weighted fusion's dense share; None: the index's
    depth: int | None = None  # candidates each side gives fusion; None: the index's (100)
    where: tuple[tuple[str, str], ...] = ()  # metadata FIELD = VALUE, all must hold
    nprobe: int | None = None
    ef_search: int | None = None


def resolve_mode(index: SearchIndex, mode: str | None) -> str:
    """The mode a search runs in: the one asked for, checked against what the index holds."""
    if mode is None:
        return "hybrid" if index.lexical is not None else "dense"
    if mode not in MODES:
        raise DataError(f"search mode {mode!r} is unknown; use one of {', '.join(MODES)}")
    if mode != "dense" and index.lexical is None:
        raise IndexError_(
            f"index {index.folder} has no lexical part (built before semsearch had one), so it "
            f"cannot search in {mode} mode; add it with `semsearch index --add-lexical --out "
            f"{index.folder}`, or use --mode dense"
        )
    return mode


def fusion_for(index: SearchIndex, options: SearchOptions) -> FusionConfig:
    """The index's fusion settings with the query's overrides applied."""
    base = FusionConfig.from_dict(index.manifest.fusion)
    return FusionConfig(
        method=options.fusion or base.method,
        dense_weight=base.dense_weight if options.dense_weight is None else options.dense_weight,
        depth=options.depth or base.depth,
        calibrated=base.calibrated and options.fusion is None and options.dense_weight is None,
    )
def report_truncated(embedder: Embedder, queries: Sequence[str]) -> int:
    """Say once on stderr how many queries are longer than the encoder's window (their end is
    not searched for); returns that number."""
    window = embedder.max_seq_len
    longer = [count for count in embedder.count_tokens(list(queries)) if count > window]
    if longer:
        which = "the query is" if len(queries) == 1 else f"{len(longer)} of {len(queries)} queries are"
        print(
            f"note: {which} longer than the model's window of {window} tokens (up to "
            f"{max(longer)}); only the first {window} tokens are searched for",
            file=sys.stderr,
        )
    return len(longer)


def search(
    index: SearchIndex,
    embedder: Embedder | None,
    queries: Sequence[str],
    k: int,
    nprobe: int | None = None,
    ef_search: int | None = None,
    batch_size: int = 64,
    options: SearchOptions | None = None,
    mode: str | None = None,
    fusion: str | None = None,
    dense_weight: float | None = None,
    depth: int | None = None,
    where: dict | Sequence[tuple[str, str]] | None = None,
    vectors: np.ndarray | None = None,
) -> list[list[Hit]]:
    """The top-k documents for each query text, checking the encoder against the index first.

    Dense mode ranks by cosine; lexical by BM25 (needs no encoder: `embedder` may be None);
    hybrid fuses the top `depth` documents of each side (see semsearch.index.fusion). Each hit
    carries the score and rank it had on each side beside the one it is ranked by. The
    keywords mode ... where override the fields of `options` (`where` as {field: value} or
    (field, value) pairs). `vectors`: the queries already encoded by `embedder` (as
    `QueryEncoding` does), else they are encoded here."""
    options = options or SearchOptions()
    overrides = {name: value for name, value in (
        ("mode", mode), ("fusion", fusion), ("dense_weight", dense_weight), ("depth", depth),
    ) if value is not None}
    if where:
        pairs = where.items() if isinstance(where, dict) else where
        overrides["where"] = tuple((str(f), _filter_text(v)) for f, v in pairs)
    options = replace(options, **overrides)
    nprobe = options.nprobe if nprobe is None else nprobe
    ef_search = options.ef_search if ef_search is None else ef_search
    if not queries or any(not query.strip() for query in queries):
        raise DataError('empty query; give some text, e.g. semsearch query "ocean tides" -k 5')
    mode = resolve_mode(index, options.mode)
    allowed = index.store.rows_where(options.where) if options.where else None
    if mode == "lexical":
        # a query with no searchable words (only stopwords or punctuation) matches nothing: no
        # hits, whether it comes alone or in a batch (`semsearch query` says why)
        results = index.search_lexical(queries, k, allowed)
        return [[replace(hit, lexical_score=hit.score, lexical_rank=hit.rank) for hit in hits]
                for hits in results]
    if embedder is None:
        raise DataError(f"{mode} search needs the model; give --model")
    check_model(index.manifest, embedder, index.folder)
    if vectors is None:
        vectors = embedder.encode(list(queries), batch_size=batch_size)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(queries), embedder.dim):
        raise ValueError(f"vectors of shape {vectors.shape} for {len(queries)} queries of "
                         f"dimension {embedder.dim}")
    if mode == "dense":
        results = index.search(vectors, k, nprobe=nprobe, ef_search=ef_search,
                               allowed_rows=allowed)
        return [[replace(hit, dense_score=hit.score, dense_rank=hit.rank) for hit in hits]
                for hits in results]
    fusion = fusion_for(index, options)
    depth = max(k, fusion.depth)
    # each side's candidates as ids and scores; the text and metadata of the fused top k only
    dense = index.search(vectors, depth, nprobe=nprobe, ef_search=ef_search, allowed_rows=allowed,
                         fill=False)
    lexical = index.search_lexical(queries, depth, allowed, fill=False)
    return [
        index.fill(fuse_hits(dense_hits, lexical_hits, fusion, k))
        for dense_hits, lexical_hits in zip(dense, lexical, strict=True)
    ]


def _filter_text(value) -> str:
    """A filter value as the text it is compared as (JSON true / false are stored as 1 / 0).

    >>> [_filter_text(v) for v in ("en", 2015, True)]
    ['en', '2015', '1']
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def fuse_hits(dense: list[Hit], lexical: list[Hit], fusion: FusionConfig, k: int) -> list[Hit]:
    """One query's fused top-k, each hit with both sides' scores and ranks; the chunk shown is
    the dense side's best where the document has one there."""
    by_id = {hit.id: hit for hit in lexical}
    by_id.update({hit.id: hit for hit in dense})
    fused = fuse([(h.id, h.score) for h in dense], [(h.id, h.score) for h in lexical],
                 fusion.method, fusion.dense_weight)
    return [
        replace(
            by_id[f.doc_id],
            rank=rank,
            score=float(f.score),
            dense_score=f.dense_score,
            dense_rank=f.dense_rank,
            lexical_score=f.lexical_score,
            lexical_rank=f.lexical_rank,
        )
        for rank, f in enumerate(fused[:k], start=1)
    ]


def model_fusion(embedder: Embedder) -> FusionConfig:
    """The fusion calibrated for this model (fusion.json in its folder), else the default."""
    folder = getattr(embedder, "path", None)
    return read_model_fusion(folder, embedder.fingerprint) if folder else FusionConfig()
