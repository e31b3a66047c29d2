"""FAISS in and out: create an index from a recipe, train, add with ids, search, remove, save.

Every index is addressed by int64 row ids chosen by the caller (IVF indexes store them natively;
the others are wrapped in an IndexIDMap), so ids survive appends and removals.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from semsearch.errors import IndexError_
from semsearch.index.recipe import HNSW_EF_CONSTRUCTION, IndexRecipe
from semsearch.limits import INT32_MAX, MAX_EF_SEARCH, MAX_NPROBE


def create_index(recipe: IndexRecipe, dim: int) -> faiss.Index:
    """An empty inner-product index for the recipe, able to take caller-chosen ids."""
    index = faiss.index_factory(dim, recipe.factory, faiss.METRIC_INNER_PRODUCT)
    hnsw = _find_hnsw(index)
    if hnsw is not None:
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ):
        # polysemous training reorders codes for Hamming pre-filtering, which we never use;
        # it is most of the training time
        faiss.downcast_index(ivf).do_polysemous_training = False
    if ivf is None and not isinstance(index, faiss.IndexIDMap):
        index = faiss.IndexIDMap(index)
    return index


def train_index(index: faiss.Index, sample: np.ndarray) -> None:
    """Train the index (k-means for IVF, codebooks for PQ) on a sample of the vectors."""
    if not index.is_trained:
        index.train(_check(sample, index.d))


def add_vectors(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add (n, d) normalised float32 vectors under the given int64 ids."""
    index.add_with_ids(_check(vectors, index.d), np.ascontiguousarray(ids, dtype=np.int64))


def search_vectors(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    nprobe: int | None = None,
    ef_search: int | None = None,
    selector: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product: returns (scores, ids), each (n_queries, k); id -1 pads a row when
    fewer than k vectors were found. `selector`: only these ids (sorted int64) are candidates."""
    for name, value, limit in (("k", k, INT32_MAX), ("nprobe", nprobe, MAX_NPROBE),
                               ("efSearch", ef_search, MAX_EF_SEARCH)):
        if value is not None and not 1 <= int(value) <= limit:
            raise IndexError_(f"{name} must be between 1 and {limit:,}, not {value}")
    if selector is not None:
        return _search_selected(index, queries, k, nprobe, ef_search, selector)
    parameters = faiss.ParameterSpace()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and nprobe is not None:
        ivf.nprobe = max(1, min(int(nprobe), ivf.nlist))
    hnsw = _find_hnsw(index)
    if hnsw is not None and ef_search is not None:
        # the graph search needs at least k candidates; faiss takes max(efSearch, k) itself
        parameters.set_index_parameter(index, "efSearch", max(1, int(ef_search)))
    scores, ids = index.search(_check(queries, index.d), max(1, k))
    return scores, ids


def _search_selected(index, queries, k, nprobe, ef_search, selector):
    """Search through faiss's search parameters with an ID selector (faiss >= 1.7.3)."""
    ids = np.ascontiguousarray(selector, dtype=np.int64)
    chosen = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
    ivf = faiss.try_extract_index_ivf(index)
    hnsw = _find_hnsw(index)
    if ivf is not None:
        parameters = faiss.SearchParametersIVF(sel=chosen)
        parameters.nprobe = max(1, min(int(nprobe or ivf.nprobe), ivf.nlist))
    elif hnsw is not None:
        parameters = faiss.SearchParametersHNSW(sel=chosen)
        parameters.efSearch = max(1, int(ef_search or hnsw.hnsw.efSearch), k)
    else:
        parameters = faiss.SearchParameters(sel=chosen)
    scores, found = index.search(_check(queries, index.d), max(1, k), params=parameters)
    return scores, found


def faiss_ivf(index: faiss.Index):
    """The IVF stage of an index, or None."""
    return faiss.try_extract_index_ivf(index)


def supports_removal(index: faiss.Index) -> bool:
    """Whether vectors can be deleted in place (flat and IVF can; HNSW graphs cannot)."""
    return _find_hnsw(index) is None


def remove_vectors(index: faiss.Index, ids: np.ndarray) -> int:
    """Delete the vectors with these ids; returns how many went."""
    if not supports_removal(index):
        raise IndexError_(
            f"this {describe(index)} index cannot delete vectors; rebuild without those "
            "documents, or build with --type flat or --type ivf to allow `semsearch remove`"
        )
    return int(index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))


def write_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def read_index(path: Path) -> faiss.Index:
    """Load an index file, as IndexError_ when it is missing or unreadable."""
    if not Path(path).is_file():
        raise IndexError_(f"index file {path} is missing; rebuild with `semsearch index CORPUS`")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[-1][:100]
        raise IndexError_(
            f"index file {path} is corrupt ({detail}); rebuild with `semsearch index CORPUS`"
        ) from None


def describe(index: faiss.Index) -> str:
    """The class name of the innermost index, e.g. IndexHNSWFlat."""
    inner = _unwrap(index)
    return type(faiss.downcast_index(inner)).__name__


def _unwrap(index: faiss.Index) -> faiss.Index:
    index = faiss.downcast_index(index)
    while isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
        index = faiss.downcast_index(index.index)
    return index


def _find_hnsw(index: faiss.Index):
    inner = _unwrap(index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def _check(vectors: np.ndarray, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise IndexError_(
            f"vectors of shape {vectors.shape} do not match the index dimension {dim}; "
            "rebuild the index with the model you query it with"
        )
    return vectors
