"""Build a FAISS index from the vectors in a VectorFile: train on a sample, add in blocks."""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from semsearch.index.faiss_index import add_vectors, create_index, train_index
from semsearch.index.recipe import IndexRecipe
from semsearch.index.vector_file import VectorFile

# vectors read from disk and added at a time: 65536 x 384 floats = 96 MiB
ADD_BLOCK = 65_536


def training_sample(
    vectors: VectorFile, start: int, stop: int, size: int, seed: int = 0
) -> np.ndarray:
    """`size` rows drawn without replacement from rows start..stop (all of them if fewer)."""
    count = stop - start
    if size >= count:
        return vectors.read(start, stop)
    rows = np.sort(np.random.default_rng(seed).choice(count, size, replace=False)) + start
    return vectors.take(rows)


def build_index(
    recipe: IndexRecipe,
    vectors: VectorFile,
    count: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[faiss.Index, int]:
    """A trained index holding rows 0..count of `vectors` under ids 0..count; returns
    (index, number of vectors it was trained on)."""
    index = create_index(recipe, vectors.dim)
    trained_on = 0
    if not index.is_trained:
        sample = training_sample(vectors, 0, count, recipe.train_size or count)
        train_index(index, sample)
        trained_on = len(sample)
    add_rows(index, vectors, 0, count, progress)
    return index, trained_on


def add_rows(
    index: faiss.Index,
    vectors: VectorFile,
    start: int,
    stop: int,
    progress: Callable[[int], None] | None = None,
    id_offset: int = 0,
) -> None:
    """Add rows start..stop of `vectors` to `index` under ids row + id_offset."""
    for block in range(start, stop, ADD_BLOCK):
        end = min(stop, block + ADD_BLOCK)
        ids = np.arange(block, end, dtype=np.int64) + id_offset
        add_vectors(index, vectors.read(block, end), ids)
        if progress is not None:
            progress(end - block)
