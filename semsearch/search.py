"""Where the encoder meets the index: embed a corpus into an index folder, and query it.

The one module that knows both sides. The encoder is reached only through the `Embedder`
protocol (anything with encode, count_tokens, dim, name, fingerprint, max_seq_len), so the
index commands can be driven by a trained `SentenceEncoder` (or, in tests, any object with the
`Embedder` interface).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from semsearch.corpora import ChunkConfig, CorpusReader, Document, ReaderOptions, chunk_documents
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
from semsearch.index.folder import INDEX_FILE, MANIFEST, STORE_FILE, VECTORS_FILE
from semsearch.index.manifest import now
from semsearch.index.store import text_hash
from semsearch.index.tuning import TARGET_RECALL, tune_recipe

# chunks embedded and written at a time; bounds memory whatever the corpus size
WINDOW_BATCHES = 32


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
                  backend: str | None = None, threads: int | None = None) -> Embedder:
    """The trained encoder at `model` (None: the newest under models/) on `device` (None: auto)
    in `precision` (fp32, or int8: CPU only), run by `backend`: "onnx" (ONNX Runtime, CPU),
    "torch", or None: onnx on a CPU when onnxruntime is installed, torch otherwise and on a GPU.

    For a few texts on the CPU in fp32 (`texts` <= NUMPY_MAX_TEXTS, as for a query) with no
    backend named, torch is never imported (its import is most of a query's wall time): the
    model's exported ONNX graph when it is there and current (faster than numpy for one text,
    see docs/results-issue17.md), else the numpy forward pass; both give the torch vectors."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS[1:])}")
    if (backend is None and precision == "fp32" and device in (None, "cpu")
            and texts is not None and texts <= NUMPY_MAX_TEXTS):
        return _light_embedder(model, threads)
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


def _light_embedder(model: str | Path | None, threads: int | None) -> Embedder:
    """The torch-free encoder for a few texts: ONNX Runtime on an exported, current graph, else
    numpy (which needs no export)."""
    from semsearch.encoder.onnx_encoder import OnnxEncoder, available, onnx_path
    from semsearch.encoder.store import resolve_model
    from semsearch.errors import ModelError

    folder = resolve_model(model)
    if available() and onnx_path(folder, "fp32").is_file():
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


@dataclass(frozen=True)
class IndexOptions:
    """How `semsearch index` builds: the CLI's --type, --max-memory, --batch-size, reader flags."""

    type: str = "auto"  # flat, hnsw, ivf, ivfpq, auto, or a FAISS factory string
    max_memory: int | None = None  # bytes the index may hold in RAM (auto, ivfpq); None: half RAM
    # tune nprobe / efSearch to reach this recall@10 on a corpus sample (0: recipe default)
    target_recall: float = TARGET_RECALL
    batch_size: int = 64  # texts a forward pass
    overlap: float = 0.2  # fraction of the window repeated between chunks of a long document
    reader: ReaderOptions = field(default_factory=ReaderOptions)


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

    def to_dict(self) -> dict:
        return {
            "index": str(self.folder),
            "factory": self.recipe.get("factory"),
            "recipe": self.recipe,
            "documents_added": self.documents_added,
            "chunks_added": self.chunks_added,
            "duplicates_skipped": self.duplicates_skipped,
            "lines_skipped": len(self.lines_skipped),
            "documents": self.documents_total,
            "vectors": self.vectors_total,
            "seconds": round(self.seconds, 3),
            "appended": self.appended,
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
) -> IndexReport:
    """Embed a corpus file and write (or, with append, extend) the index folder `out`.

    Documents are read, cut into chunks that fit the encoder window, stored in SQLite, and
    embedded a window of chunks at a time (sorted by length to waste less padding), streaming
    vectors to a file on disk; the FAISS index is then trained on a sample and filled from that
    file. Everything happens in a temporary sibling folder that replaces `out` only at the end.
    `progress`: None shows bars when stderr is a terminal.
    """
    import time

    started = time.perf_counter()
    reader = CorpusReader(corpus, options.reader)
    chunking = ChunkConfig(max_tokens=embedder.max_seq_len, overlap=options.overlap)
    report = (
        _append(reader, embedder, Path(out), options, chunking, progress)
        if append
        else _build(reader, embedder, Path(out), options, chunking, progress)
    )
    report.seconds = time.perf_counter() - started
    if report.chunks_added or not append:
        mark_latest(Path(out))
    return report


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
                    recipe, vectors, stats.chunks, options.target_recall, staging, bar.update
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
                corpora=[_corpus_entry(reader, stats, embedder)],
                precision=_precision(embedder),
                trained_on=trained_on,
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
    )


def write_tuned_index(
    recipe: IndexRecipe,
    vectors: VectorFile,
    count: int,
    target_recall: float,
    staging: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[object, IndexRecipe, int]:
    """Build the recipe's index over rows 0..count of `vectors`, tune its nprobe / efSearch to
    `target_recall` (0: keep the defaults), and write it into the staging folder; the vector
    file goes unless the recipe re-ranks with it. Returns (index, tuned recipe, trained on)."""
    index, trained_on = build_index(recipe, vectors, count, progress)
    if target_recall:
        recipe, tuning = tune_recipe(index, recipe, vectors, count, target_recall)
        if tuning is not None:
            recipe = replace(recipe, reason=f"{recipe.reason}; tuned {tuning.describe()}")
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
                write_index(index, staging / INDEX_FILE)
                if not recipe.rerank:
                    vectors.path.unlink()
                store.commit()
                manifest.count = int(index.ntotal)
                manifest.documents = store.count_documents()
                manifest.next_row = start + stats.chunks
                manifest.corpora.append(_corpus_entry(reader, stats, embedder))
                manifest.updated = now()
                manifest.write(staging / MANIFEST)
            finally:
                store.close()
    except _NothingNew:
        stats = _Stats(duplicates=stats.duplicates)
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
    )


@dataclass
class _Stats:
    documents: int = 0
    chunks: int = 0
    duplicates: int = 0


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
    (their FAISS ids are row + row_offset)."""
    stats = _Stats()
    window = max(1, batch_size) * WINDOW_BATCHES
    pending: list[Document] = []
    with _bar(progress, reader.size, f"embedding {reader.path.name}", "B") as bar:
        last = 0

        def flush() -> None:
            nonlocal last
            _embed_window(
                pending,
                embedder,
                store,
                vectors,
                first_row,
                chunking,
                batch_size,
                skip_duplicates,
                stats,
                row_offset,
            )
            pending.clear()
            bar.update(reader.position - last)
            last = reader.position
            bar.set_postfix(docs=stats.documents, refresh=False)

        for document in reader:
            pending.append(document)
            if len(pending) >= window:
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
    texts: list[str] = []
    for document, chunks in zip(
        documents,
        chunk_documents([d.text for d in documents], embedder.count_tokens, chunking),
        strict=True,
    ):
        row = first_row + stats.chunks + len(texts)
        store.add_document(document.id, document.text, chunks, row + row_offset, document.metadata)
        texts.extend(chunks)
    if not texts:
        return
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together
    embedded = embedder.encode([texts[i] for i in order], batch_size=batch_size, progress=False)
    embedded = np.asarray(embedded, dtype=np.float32)
    if embedded.shape != (len(texts), embedder.dim):
        raise IndexError_(
            f"the encoder returned vectors of shape {embedded.shape} for {len(texts)} texts of "
            f"dimension {embedder.dim}; the model folder may be damaged"
        )
    in_row_order = np.empty_like(embedded)
    in_row_order[order] = embedded
    # the hand-off promises unit vectors; normalising again costs nothing and guards the maths
    in_row_order /= np.maximum(np.linalg.norm(in_row_order, axis=1, keepdims=True), 1e-12)
    vectors.write_rows(first_row + stats.chunks, in_row_order)
    stats.documents += len(documents)
    stats.chunks += len(texts)


def _precision(embedder: Embedder) -> str:
    """fp32 or int8: how the vectors were computed (an embedder without the attribute is fp32)."""
    return getattr(embedder, "precision", "fp32")


def _corpus_entry(reader: CorpusReader, stats: _Stats, embedder: Embedder) -> dict:
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
    """Refuse an encoder other than the one the index was built with, saying how to fix it."""
    if embedder.fingerprint == manifest.model_fingerprint and embedder.dim == manifest.dim:
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


def read_queries(lines: Iterable[str]) -> list[str]:
    """The non-blank lines, stripped: one query a line.

    >>> read_queries(["ocean tides\\n", "  \\n", " rust "])
    ['ocean tides', 'rust']
    """
    return [line.strip() for line in lines if line.strip()]


def search(
    index: SearchIndex,
    embedder: Embedder,
    queries: Sequence[str],
    k: int,
    nprobe: int | None = None,
    ef_search: int | None = None,
    batch_size: int = 64,
) -> list[list[Hit]]:
    """The top-k documents for each query text, checking the encoder against the index first."""
    check_model(index.manifest, embedder, index.folder)
    if not queries or any(not query.strip() for query in queries):
        raise DataError('empty query; give some text, e.g. semsearch query "ocean tides" -k 5')
    vectors = np.asarray(embedder.encode(list(queries), batch_size=batch_size), dtype=np.float32)
    return index.search(vectors, k, nprobe=nprobe, ef_search=ef_search)
