"""The indexing half of the pipeline: embed a corpus into an index folder (build, --append).

Documents are read, cut into chunks that fit the encoder's window, and embedded a window at a
time; the rows (documents, vectors, the FAISS index, the lexical part, the manifest) are handed
to the folder's `IndexWriter`, which owns the write: lock, staging, swap, latest pointer.
The encoder is reached only through the `Embedder` protocol (semsearch.embedder). The querying
half is semsearch.querying.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semsearch.build_resume import Progress, build_key, resumable
from semsearch.build_stages import Stages
from semsearch.corpora import (
    ChunkConfig,
    CorpusReader,
    ReaderOptions,
    detect_format,
)
from semsearch.corpora.chunking import MAX_CHUNKS
from semsearch.embed_chunks import EmbedStats, RowTargets, embed_documents, progress_bar
from semsearch.embedder import Embedder, check_model
from semsearch.encoder.store import sha256_file
from semsearch.errors import ConfigError, DataError, IndexError_
from semsearch.index import (
    IndexRecipe,
    IndexWriter,
    Manifest,
    SearchIndex,
    add_rows,
    choose_recipe,
)
from semsearch.index.fusion import FusionConfig, read_model_fusion
from semsearch.index.lexical import LEXICAL_DIR, LexicalConfig
from semsearch.index.lexical_terms import TermCounts
from semsearch.index.lock import MAX_WAIT_SECONDS
from semsearch.index.manifest import now
from semsearch.index.recipe import lexical_only_recipe
from semsearch.index.tuning import TARGET_RECALL
from semsearch.index_tuning import build_faiss, retune_after_append, tune_index, tuning_queries

# the window an index without vectors gives a document (its chunking's max_tokens): a document
# is one chunk whatever its length, up to max_chunks windows of this many tokens' characters
DOCUMENT_TOKENS = 512
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
    # processes that prepare windows of documents (chunk, count BM25 terms, and encode with an
    # encoder that runs on one core); None: one a core where processes can be forked
    workers: int | None = None
    # continue an interrupted build of the same corpus, model and settings from what it
    # finished (semsearch.build_resume); without one to continue, build from the start
    resume: bool = False
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
    stages: dict = field(default_factory=dict)  # Stages.to_dict(): wall seconds a stage

    @property
    def lexical_only(self) -> bool:
        """Whether the index holds BM25 and the store alone (--lexical-only, or appended to one)."""
        from semsearch.index.recipe import records_vectors

        return not records_vectors(self.recipe)

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
            **self.stages,
        }


def index_corpus(
    corpus: Path,
    embedder: Embedder | None,
    out: Path,
    options: IndexOptions = IndexOptions(),
    append: bool = False,
    progress: bool | None = None,
    latest: bool = True,
    log: Callable[[str], None] | None = None,
) -> IndexReport:
    """Embed a corpus file and write (or, with append, extend) the index folder `out`.

    Documents are read, cut into chunks that fit the encoder window, stored in SQLite, and
    embedded a window of chunks at a time (sorted by length to waste less padding), streaming
    vectors to a file on disk, while their BM25 term counts are gathered; the FAISS index is
    then trained on a sample and filled from that file. `embedder` None builds (or extends) an
    index without vectors: the store and BM25 alone, each document one chunk, no model. The
    folder's `IndexWriter` stages everything in a temporary sibling that replaces `out` only at
    the end. `progress`: None shows bars when stderr is a terminal. `latest`: record the folder
    as the default index for `semsearch query` (indexes/.semsearch-latest). `log` gets one line
    a stage with its time.
    """
    import time

    started = time.perf_counter()
    _check_options(options)
    out = Path(out)
    chunking = ChunkConfig(
        max_tokens=embedder.max_seq_len if embedder is not None else DOCUMENT_TOKENS,
        overlap=options.overlap, max_chunks=options.max_chunks
    )
    reader_options = options.reader
    if (reader_options.format or detect_format(Path(corpus))) == "txt":
        # a text line past what max_chunks chunks can hold is read no further
        limit = min(reader_options.max_line_bytes, max(1 << 20, chunking.max_chars))
        reader_options = replace(reader_options, max_line_bytes=limit)
    reader = CorpusReader(corpus, reader_options)
    stages = Stages(log, progress)
    key = build_key(reader.path, embedder, options, chunking)
    resume = (lambda staging: resumable(staging, key)) if options.resume and not append else None
    with IndexWriter(out, options.wait, fresh=not append, resume=resume) as writer:
        if options.resume and not append and not writer.resumed and log is not None:
            log(f"--resume: no interrupted build of {reader.path} into {out} with these "
                "settings; building it from the start")
        report = (
            _append(writer, reader, embedder, options, chunking, progress, latest, stages)
            if append
            else _build(writer, reader, embedder, options, chunking, progress, latest, stages,
                        key, log)
        )
        report.stale_removed = len(writer.stale_removed)
    report.stages = stages.to_dict()
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
           latest: bool, stages: Stages, key: dict, log) -> IndexReport:
    if not writer.resumed:
        writer.stage()
    store = writer.documents(existing=writer.resumed, bulk=True)
    vectors = writer.vectors(embedder.dim) if embedder is not None else None
    made = Progress(writer, store, key)
    try:
        done = made.restore()
        if done is not None and log is not None:
            log(f"resuming {writer.path}: {done.documents_read:,} documents read, "
                f"{done.chunks:,} chunks written" + (
                    ", the pass finished" if made.state.get("pass_done") else ""))
        if done is not None:
            if vectors is not None and vectors.path.exists():  # a rerun writes the rest again
                os.truncate(vectors.path, done.chunks * 4 * vectors.dim)
        if done is None or not made.state.get("pass_done"):
            stats = _embed_pass(reader, embedder, RowTargets(store, vectors, terms=made.terms),
                                options, chunking, progress, stages, skip_duplicates=False,
                                resume=done, on_window=made.on_window)
            if stats.chunks == 0:
                skipped = (f" ({len(reader.skipped)} unreadable lines skipped)"
                           if reader.skipped else "")
                raise DataError(
                    f"corpus {reader.path} has no documents{skipped}; give a file with one "
                    "document a line (blank lines are skipped)"
                )
            made.save(stats, pass_done=True, lines_skipped=reader.skipped, lines_cut=reader.cut)
        else:
            stats = done
            reader.skipped[:] = [tuple(item) for item in made.state.get("lines_skipped", [])]
            reader.cut[:] = [tuple(item) for item in made.state.get("lines_cut", [])]
        if embedder is None:
            index, recipe, trained_on = None, lexical_only_recipe(), 0
        else:
            index, recipe, trained_on = _faiss_stages(writer, store, embedder, vectors, options,
                                                      stats, progress, stages, made)
        if "lexical" in made.state:
            lexical = made.state["lexical"]
        else:
            with stages("bm25") as note:
                lexical = writer.write_lexical_terms(made.terms, LexicalConfig())
                note.append(f"{len(made.terms):,} documents, {len(made.terms.vocabulary):,} "
                            "terms")
            made.save(stats, lexical=lexical)
        with stages("store indexes"):
            store.make_indexes()
        with stages("commit"):
            manifest = new_manifest(embedder, index, store, recipe, chunking,
                                    corpus_entry(reader, stats, embedder), stats.chunks,
                                    trained_on, lexical)
            manifest.rescore = options.rescore
            if vectors is not None and not recipe.rerank:
                vectors.path.unlink()
            made.finish()
            store.commit()
            writer.write_manifest(manifest)
    except BaseException:
        if writer.keep and log is not None:
            log(f"the finished part of this build is kept in {writer.path}: the same command "
                "with --resume continues it")
        raise
    finally:
        store.close()
    with stages("swap"):
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


def _faiss_stages(writer, store, embedder, vectors, options, stats, progress, stages: Stages,
                  made: Progress):
    """Train and fill the FAISS index (or take the one a resumed build wrote), then tune it;
    returns (index, tuned recipe, vectors trained on)."""
    if "faiss" in made.state:
        index = writer.read_index()
        recipe = IndexRecipe.from_dict(made.state["faiss"]["recipe"])
        trained_on = made.state["faiss"]["trained_on"]
    else:
        recipe = choose_recipe(options.type, stats.chunks, embedder.dim, options.max_memory)
        with progress_bar(progress, stats.chunks, "adding", "vec") as bar:
            index, trained_on = build_faiss(recipe, vectors, stats.chunks, bar.update, stages)
        with stages("faiss write"):
            writer.write_index(index)
        made.save(stats, faiss={"recipe": recipe.to_dict(), "trained_on": trained_on})
    recipe = tune_index(index, recipe, vectors, stats.chunks, options.target_recall,
                        lambda: tuning_queries(store, embedder,
                                               np.arange(stats.chunks, dtype=np.int64)),
                        stages)
    return index, recipe, trained_on


def _embed_pass(reader, embedder, targets: RowTargets, options, chunking, progress,
                stages: Stages, skip_duplicates: bool, **more) -> EmbedStats:
    """The streaming pass over the corpus, timed as one stage with its parts."""
    with stages("read, chunk, encode, store", clock=False) as note:  # it has its bar
        stats = embed_documents(reader, embedder, targets, chunking, options.batch_size,
                                skip_duplicates, progress, workers=options.workers, **more)
        note.append(f"{stats.documents:,} documents, {stats.chunks:,} chunks")
    for part, seconds in stats.seconds.items():
        stages.parts[part] = stages.parts.get(part, 0.0) + seconds
    return stats


def _append(writer: IndexWriter, reader, embedder, options, chunking, progress,
            latest: bool, stages: Stages) -> IndexReport:
    out = writer.folder
    if not out.exists():
        raise IndexError_(
            f"no index at {out} to append to; build it first with `semsearch index CORPUS "
            f"--out {out}`"
        )
    current = SearchIndex.open(out)
    manifest, recipe = current.manifest, current.recipe
    current.close()
    if not manifest.has_vectors:
        if embedder is not None:
            raise IndexError_(
                f"index {out} has no vectors (built with --lexical-only), so it is appended to "
                "without a model; leave out --model, or rebuild it with one: `semsearch index "
                f"CORPUS --model DIR --out {out}`")
    elif embedder is None:
        raise IndexError_(f"index {out} holds vectors of model {manifest.model_name}; append to "
                          f"it with that model (`--model {manifest.model_path}`), not "
                          "--lexical-only")
    else:
        check_model(manifest, embedder, out)
    start = manifest.next_row
    recall_change = None
    with stages("copy"):
        writer.stage(copy=True)
    store = writer.documents()
    kept = vectors = None
    first_row = 0
    if embedder is not None:
        # ivfpq keeps every vector on disk (row = id) to re-rank; others need only the new ones
        kept = writer.vectors(embedder.dim)
        vectors = kept if recipe.rerank else writer.vectors(embedder.dim, "new.f32")
        first_row = start if recipe.rerank else 0
    config = LexicalConfig.from_dict(manifest.lexical) if manifest.lexical is not None else None
    terms = (TermCounts.load(writer.path / LEXICAL_DIR) if config is not None else None)
    try:
        stats = _embed_pass(
            reader, embedder,
            RowTargets(store, vectors, first_row, start - first_row, terms,
                       config or LexicalConfig()),
            options, chunking, progress, stages, skip_duplicates=True)
        if stats.chunks:
            if embedder is not None:
                with stages("faiss add"):
                    index = writer.read_index()
                    add_rows(index, vectors, first_row, first_row + stats.chunks,
                             id_offset=start - first_row)
                with stages("tuning"):
                    tuned = retune_after_append(index, recipe, store, kept,
                                                options.target_recall, embedder)
                if tuned is not None:
                    recipe, recall_change = tuned
                    manifest.recipe = recipe.to_dict()
                with stages("faiss write"):
                    writer.write_index(index)
                if not recipe.rerank:
                    vectors.path.unlink()
                manifest.count = int(index.ntotal)
            store.commit()
            if config is not None:
                with stages("bm25"):
                    # from the saved term counts and the new documents' (an index built before
                    # the counts were kept: from every stored document)
                    manifest.lexical = (writer.write_lexical_terms(terms, config)
                                        if terms is not None
                                        else writer.write_lexical(store, config))
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
        with stages("swap"):
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


def new_manifest(embedder: Embedder | None, index, store, recipe, chunking: ChunkConfig,
                 corpus: dict, next_row: int, trained_on: int, lexical: dict,
                 **engine) -> Manifest:
    """The manifest of a freshly built index folder (local or Ray, `engine` naming the latter's
    fields), its lexical part written already (`lexical`: the manifest's entry). `embedder`
    None: an index without vectors (--lexical-only)."""
    if embedder is None:
        model = {"model_name": "", "model_fingerprint": "", "model_path": "", "dim": 0,
                 "count": 0, "chunking": {"unit": "document"}, "precision": "fp32",
                 "fusion": None}
    else:
        model = {"model_name": embedder.name, "model_fingerprint": embedder.fingerprint,
                 "model_path": str(getattr(embedder, "path", embedder.name)),
                 "dim": embedder.dim, "count": int(index.ntotal), "chunking": chunking.to_dict(),
                 "precision": _precision(embedder), "fusion": model_fusion(embedder).to_dict()}
    return Manifest(
        **model,
        documents=store.count_documents(),
        next_row=next_row,
        recipe=recipe.to_dict(),
        corpora=[corpus],
        trained_on=trained_on,
        lexical=lexical,
        created=now(),
        updated=now(),
        **engine,
    )


def _precision(embedder: Embedder) -> str:
    """fp32 or int8: how the vectors were computed (an embedder without the attribute is fp32)."""
    return getattr(embedder, "precision", "fp32")


def corpus_entry(reader: CorpusReader, stats: EmbedStats, embedder: Embedder | None) -> dict:
    """The manifest's record of one corpus added to an index (local and Ray builds alike)."""
    return {
        "path": str(reader.path),
        "sha256": sha256_file(reader.path),
        "format": reader.format,
        "documents": stats.documents,
        "chunks": stats.chunks,
        "duplicates_skipped": stats.duplicates,
        "lines_skipped": len(reader.skipped),
        "precision": _precision(embedder) if embedder is not None else "fp32",
        "added": now(),
    }


def model_fusion(embedder: Embedder) -> FusionConfig:
    """The fusion calibrated for this model (fusion.json in its folder), else the default."""
    folder = getattr(embedder, "path", None)
    return read_model_fusion(folder, embedder.fingerprint) if folder else FusionConfig()

