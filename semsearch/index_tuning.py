"""Tuning an index's nprobe / efSearch on encoded corpus spans: the encoder side of
semsearch.index.tuning, shared by the local build, --append and the Ray engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from semsearch.build_stages import Stages
from semsearch.embedder import Embedder
from semsearch.errors import ConfigError
from semsearch.index import (
    DocumentStore,
    IndexRecipe,
    IndexWriter,
    VectorFile,
    add_rows,
    create_index,
    train_index,
    training_sample,
)
from semsearch.index.tuning import (
    NO_ROW,
    TUNE_QUERIES,
    QueryVectors,
    retune,
    span_texts,
    stored_vectors,
    tunable,
    tune_recipe,
)


def write_tuned_index(
    recipe: IndexRecipe,
    vectors: VectorFile,
    count: int,
    target_recall: float,
    writer: IndexWriter,
    progress: Callable[[int], None] | None = None,
    queries: Callable[[], QueryVectors | None] | None = None,
    stages: Stages | None = None,
) -> tuple[object, IndexRecipe, int]:
    """Build the recipe's index over rows 0..count of `vectors`, tune its nprobe / efSearch to
    `target_recall` (0: keep the defaults) on the vectors `queries()` gives (None, or no
    `queries`: stored vectors), and hand it to the folder's writer; the vector file goes
    unless the recipe re-ranks with it. Returns (index, tuned recipe, trained on). `stages`
    times training, adding, tuning and writing."""
    stages = stages or Stages()
    index, trained_on = build_faiss(recipe, vectors, count, progress, stages)
    with stages("faiss write"):
        writer.write_index(index)
    recipe = tune_index(index, recipe, vectors, count, target_recall, queries, stages)
    if not recipe.rerank:
        vectors.path.unlink()
    return index, recipe, trained_on


def build_faiss(recipe: IndexRecipe, vectors: VectorFile, count: int,
                progress: Callable[[int], None] | None = None, stages: Stages | None = None
                ) -> tuple[object, int]:
    """The recipe's index trained on a sample of rows 0..count of `vectors` and filled with
    them (ids = rows); returns (index, vectors trained on). FAISS's errors as one line."""
    stages = stages or Stages()
    with _faiss_errors(recipe, count):
        index = create_index(recipe, vectors.dim)
        trained_on = 0
        if not index.is_trained:
            with stages("faiss train") as note:
                sample = training_sample(vectors, 0, count, recipe.train_size or count)
                train_index(index, sample)
                trained_on = len(sample)
                note.append(f"{recipe.factory} on {trained_on:,} vectors")
                del sample
        with stages("faiss add", clock=progress is None) as note:  # a bar of its own
            add_rows(index, vectors, 0, count, progress)
            note.append(f"{count:,} vectors")
    return index, trained_on


def tune_index(index, recipe: IndexRecipe, vectors: VectorFile, count: int,
               target_recall: float, queries: Callable[[], QueryVectors | None] | None = None,
               stages: Stages | None = None) -> IndexRecipe:
    """`tune_to_target`, timed as the tuning stage, FAISS's errors as one line."""
    stages = stages or Stages()
    with _faiss_errors(recipe, count), stages("tuning") as note:
        recipe = tune_to_target(index, recipe, vectors, count, target_recall, queries)
        if recipe.recall is not None:
            note.append(f"nprobe {recipe.nprobe}, recall@10 {recipe.recall}"
                        if recipe.nprobe is not None else f"recall@10 {recipe.recall}")
    return recipe


@contextmanager
def _faiss_errors(recipe: IndexRecipe, count: int) -> Iterator[None]:
    """FAISS's C++ exceptions as ConfigError: never a traceback."""
    try:
        yield
    except RuntimeError as error:
        detail = " ".join(str(error).split())[-160:]
        raise ConfigError(
            f"FAISS could not build {recipe.factory!r} for {count:,} vectors ({detail}); "
            "choose another --type, or --type auto"
        ) from None


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


def retune_after_append(index, recipe: IndexRecipe, store: DocumentStore, kept: VectorFile,
                        target_recall: float, embedder: Embedder):
    """IVF lists trained on the original corpus drift as documents are appended: re-measure
    recall@10 on spans cut from a sample of all the chunks and raise nprobe / efSearch when it fell below the
    target. Returns (recipe, (setting, old, new, recall before, after)), or None for an exact
    index or --target-recall 0."""
    target = recipe.target_recall if recipe.target_recall is not None else target_recall
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


