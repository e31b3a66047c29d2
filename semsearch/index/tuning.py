"""Tune an approximate index's search setting to a recall target on the corpus itself
(autofaiss-style): the fewest IVF lists a query visits (nprobe), or the shortest HNSW candidate
list (efSearch), whose recall@k against exact search reaches the target.

The queries, where the caller can encode text (`semsearch index`), are short runs of words cut
from the corpus's own chunks and encoded (`span_texts`): real questions sit farther from the
corpus than its own vectors do, and on 704K Wikipedia sentences recall tuned on the vectors
(0.95) came out at 0.91 for real MLQuestions questions, while spans track the questions'
recall (docs/results.md, Search: the tuner's queries). Without an encoder (`semsearch check`), a
seeded sample of the stored vectors, each one's own row left out of both its exact and its approximate
neighbours, so finding itself earns no credit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np

from semsearch.index.faiss_index import _find_hnsw
from semsearch.index.recipe import IndexRecipe
from semsearch.index.vector_file import VectorFile

# the recall@10 a default index should give; autofaiss's and this project's target
TARGET_RECALL = 0.95
# sample queries: enough to read recall to about +-0.01, cheap next to building the index
TUNE_QUERIES = 1000
# words in a tuning query cut from a chunk: short, as users' queries are
SPAN_WORDS = (3, 8)
# rows read from disk per block of the exact search (65536 x 384 floats = 96 MiB)
EXACT_BLOCK = 65_536
HNSW_EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


@dataclass(frozen=True)
class QueryVectors:
    """Queries to tune on: unit `vectors`, and for each the row to leave out of its answers
    (`own`; NO_ROW for none): a span that is its whole chunk would find itself, as a stored
    vector would, and earns nothing for it; a shorter span counts its chunk like any other."""

    vectors: np.ndarray
    own: np.ndarray


NO_ROW = -2  # not a row id, nor FAISS's -1 padding


@dataclass(frozen=True)
class Tuning:
    """What tuning chose and what it measured."""

    setting: str  # "nprobe" or "ef_search"
    value: int
    recall: float  # recall@k of `value` on the sample
    target: float
    k: int
    queries: int
    source: str = "corpus vectors"  # or "corpus spans": what the queries were

    def describe(self) -> str:
        reached = "" if self.recall >= self.target else f" (short of the {self.target} target)"
        return (f"{self.setting}={self.value}: recall@{self.k} {self.recall:.3f} on "
                f"{self.queries:,} {self.source}{reached}")


def span_texts(texts: list[str], seed: int = 0, words: tuple[int, int] = SPAN_WORDS
               ) -> list[str]:
    """A run of words[0]..words[1] words cut at a seeded random place from each text (all of
    a shorter text): query-shaped text from the corpus alone.

    >>> span_texts(["one two three four five six seven eight nine ten"], seed=1)
    ['two three four five six seven eight']
    """
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        found = text.split()
        size = min(len(found), int(rng.integers(words[0], words[1] + 1)))
        start = int(rng.integers(0, len(found) - size + 1))
        out.append(" ".join(found[start:start + size]))
    return out


def tunable(index: faiss.Index, count: int, k: int = 10) -> bool:
    """Whether `tune_recipe` has a setting to tune: an IVF or HNSW index over more than k + 1
    vectors (so a caller can skip making the queries when it has not)."""
    return count > k + 1 and (faiss.try_extract_index_ivf(index) is not None
                              or _find_hnsw(index) is not None)


def tune_recipe(
    index: faiss.Index,
    recipe: IndexRecipe,
    vectors: VectorFile,
    count: int,
    target: float = TARGET_RECALL,
    k: int = 10,
    queries: int = TUNE_QUERIES,
    seed: int = 0,
    query_vectors: QueryVectors | None = None,
) -> tuple[IndexRecipe, Tuning | None]:
    """The recipe with its nprobe / efSearch set to the cheapest value reaching `target`
    recall@k (the largest tried when none does); unchanged, with None, for exact indexes,
    factory strings with neither setting, or a corpus of at most k + 1 vectors.
    `query_vectors`: the queries to tune on (encoded corpus spans); None: stored vectors."""
    if not tunable(index, count, k):
        return recipe, None
    ivf = faiss.try_extract_index_ivf(index)
    stored = file_vectors(vectors, np.arange(count, dtype=np.int64))
    probe = RecallProbe(stored, k, queries, seed, query_vectors)
    if ivf is not None:
        setting, steps = "nprobe", nprobe_steps(ivf.nlist)
    else:
        setting, steps = "ef_search", HNSW_EF_STEPS
    for value in steps:  # cheapest first; ends on the largest when none reaches the target
        trial = replace(recipe, **{setting: value})
        recall = probe.recall(index, trial, vectors)
        if recall >= target:
            break
    tuning = Tuning(setting, value, round(recall, 4), target, k, len(probe.sample),
                    probe.source)
    return replace(recipe, **{setting: value}), tuning


def _drop_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Each row's ids without its own row id, cut to k (padded with -1)."""
    out = np.full((len(found), k), -1, dtype=np.int64)
    for i, (ids, own) in enumerate(zip(found, rows, strict=True)):
        kept = ids[ids != own][:k]
        out[i, : len(kept)] = kept
    return out


def nprobe_steps(limit: int) -> list[int]:
    """nprobe values to try, cheapest first: powers of two and the quarter steps between them
    (1.25x, 1.5x, 1.75x), then `limit`. The finer steps matter at scale: on 704K Wikipedia
    vectors in 1,024 lists recall@10 was 0.922 at nprobe 128 and 0.967 at 192, and the time
    grows with nprobe.

    >>> nprobe_steps(64)
    [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64]
    """
    steps, step = [], 1
    while step < limit:
        steps += [step] + [step * quarters // 4 for quarters in (5, 6, 7)]
        step *= 2
    return sorted({value for value in steps if value < limit}) + [limit]


@dataclass(frozen=True)
class StoredVectors:
    """The live vectors of an index: `ids` (sorted FAISS ids), `read(start, stop)` giving the
    vectors of ids[start:stop] and `take(positions)` those of ids[positions]. `exact` is False
    when they had to be decoded from compressed codes (the truth is then that of the codes)."""

    ids: np.ndarray
    read: object  # Callable[[int, int], np.ndarray]
    take: object  # Callable[[np.ndarray], np.ndarray]
    exact: bool = True


def stored_vectors(index: faiss.Index, vectors: VectorFile | None, ids: np.ndarray) -> StoredVectors:
    """The vectors of `ids` (the live rows, from the document store): from the float32 file kept
    for re-ranking when it covers them, else reconstructed from the index itself."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if vectors is not None and len(ids) and len(vectors) > int(ids[-1]):
        return file_vectors(vectors, ids)
    inner = faiss.downcast_index(index)
    if isinstance(inner, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        stored = faiss.downcast_index(inner.index).reconstruct_n(0, inner.ntotal)
        by_id = stored[np.argsort(faiss.vector_to_array(inner.id_map))]
        return StoredVectors(ids, lambda start, stop: by_id[start:stop],
                             lambda positions: by_id[positions])
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is None:
        raise ValueError(f"cannot read the vectors back from a {type(inner).__name__}")
    exact = isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
    by_id = _ivf_vectors(ivf, ids)
    return StoredVectors(ids, lambda start, stop: by_id[start:stop],
                         lambda positions: by_id[positions], exact)


def file_vectors(vectors: VectorFile, ids: np.ndarray) -> StoredVectors:
    """Rows `ids` of a vector file (contiguous ids are read in blocks, others mapped)."""
    if len(ids) and ids[0] == 0 and ids[-1] == len(ids) - 1:  # every row, as at build time
        return StoredVectors(ids, lambda start, stop: vectors.read(start, stop),
                             lambda positions: vectors.take(positions))
    return StoredVectors(ids, lambda start, stop: vectors.take(ids[start:stop]),
                         lambda positions: vectors.take(ids[positions]))


def _ivf_vectors(ivf, ids: np.ndarray) -> np.ndarray:
    """Vectors of `ids` (sorted) read out of an IVF index: the raw floats of IVF-Flat lists,
    else decoded one by one through a temporary id -> code map."""
    ivf = faiss.downcast_index(ivf)
    if isinstance(ivf, faiss.IndexIVFFlat):
        lists, found, codes = ivf.invlists, [], []
        for number in range(ivf.nlist):
            size = lists.list_size(number)
            if size:
                found.append(faiss.rev_swig_ptr(lists.get_ids(number), size).copy())
                raw = faiss.rev_swig_ptr(lists.get_codes(number), size * lists.code_size)
                codes.append(np.frombuffer(raw.copy(), dtype=np.float32).reshape(size, ivf.d))
        if not found:
            return np.zeros((0, ivf.d), dtype=np.float32)
        all_ids, all_vectors = np.concatenate(found), np.vstack(codes)
        order = np.argsort(all_ids)
        at = np.searchsorted(all_ids[order], ids)
        return all_vectors[order][at]
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    try:
        return np.vstack([ivf.reconstruct(int(i)) for i in ids]).astype(np.float32)
    finally:
        ivf.set_direct_map_type(faiss.DirectMap.NoMap)


class RecallProbe:
    """recall@k of an index against exact search over `stored`, with a seeded sample of the
    stored vectors as queries (each one's own id left out of both answers). The exact answers
    are computed once; `recall` then scores any search setting. A found vector scoring as high
    as the k-th exact one counts as a hit, so ties at the k-th place (common among
    near-duplicate texts) are not read as misses."""

    def __init__(self, stored: StoredVectors, k: int = 10, queries: int = TUNE_QUERIES,
                 seed: int = 0, query_vectors: QueryVectors | None = None) -> None:
        self.stored, self.k = stored, k
        count = len(stored.ids)
        if query_vectors is not None and len(query_vectors.vectors):
            self.sample = np.ascontiguousarray(query_vectors.vectors, dtype=np.float32)
            self.own = np.asarray(query_vectors.own, dtype=np.int64)
            self.source = "corpus spans"
        else:
            positions = np.sort(
                np.random.default_rng(seed).choice(count, min(queries, count), replace=False))
            self.sample = np.ascontiguousarray(stored.take(positions), dtype=np.float32)
            self.own = stored.ids[positions]
            self.source = "corpus vectors"
        heap = faiss.ResultHeap(len(self.sample), k + 1, keep_max=True)
        for start in range(0, count, EXACT_BLOCK):
            stop = min(count, start + EXACT_BLOCK)
            flat = faiss.IndexFlatIP(self.sample.shape[1])
            flat.add(np.ascontiguousarray(stored.read(start, stop), dtype=np.float32))
            scores, found = flat.search(self.sample, k + 1)
            heap.add_result(scores, np.where(found >= 0, stored.ids[start:stop][found], -1))
        heap.finalize()
        # the k-th best exact score of each query, its own id left out
        self.kth = np.array([
            scores[ids != own][k - 1] if (ids != own).sum() >= k else -np.inf
            for scores, ids, own in zip(heap.D, heap.I, self.own, strict=True)
        ])

    def recall(self, index: faiss.Index, recipe: IndexRecipe, vectors: VectorFile | None) -> float:
        from semsearch.index.search_index import search_with_recipe

        file = vectors if vectors is not None else VectorFile(Path("/nonexistent"),
                                                              self.sample.shape[1])
        _, found = search_with_recipe(index, recipe, file, self.sample, self.k + 1)
        found = _drop_self(found, self.own, self.k)  # (nq, k), -1 padded
        ids = self.stored.ids
        at = np.searchsorted(ids, found).clip(0, max(0, len(ids) - 1))
        known = (found >= 0) & (ids[at] == found) if len(ids) else np.zeros_like(found, bool)
        scores = np.full(found.shape, -np.inf, dtype=np.float32)
        if known.any():
            rows = self.stored.take(at[known])  # the exact vectors of every valid hit at once
            query_of = np.nonzero(known)[0]
            scores[known] = np.einsum("ij,ij->i", rows, self.sample[query_of])
        hits = (scores >= self.kth[:, None] - 1e-5).sum()
        return min(1.0, float(hits) / (self.k * len(self.sample)))


def measure_recall(
    index: faiss.Index,
    recipe: IndexRecipe,
    stored: StoredVectors,
    vectors: VectorFile | None,
    k: int = 10,
    queries: int = TUNE_QUERIES,
    seed: int = 0,
) -> tuple[float, int]:
    """(recall@k, queries used) of the index as the recipe searches it (see RecallProbe); an
    index of at most k + 1 vectors scores 1.0."""
    if len(stored.ids) <= k + 1:
        return 1.0, 0
    probe = RecallProbe(stored, k, queries, seed)
    return probe.recall(index, recipe, vectors), len(probe.sample)


def retune(
    index: faiss.Index,
    recipe: IndexRecipe,
    stored: StoredVectors,
    vectors: VectorFile | None,
    target: float,
    k: int = 10,
    queries: int = TUNE_QUERIES,
    query_vectors: QueryVectors | None = None,
) -> tuple[IndexRecipe, float, float]:
    """After an append: re-measure recall@k with the recipe's setting and, when it fell below
    `target`, raise nprobe / efSearch to the cheapest value that reaches it again (the largest
    tried when none does). Returns (recipe with the new setting and recall, recall before,
    recall after). `query_vectors` as for tune_recipe."""
    if len(stored.ids) <= k + 1:
        return replace(recipe, recall=1.0, target_recall=target), 1.0, 1.0
    probe = RecallProbe(stored, k, queries, query_vectors=query_vectors)
    before = probe.recall(index, recipe, vectors)
    recipe = replace(recipe, recall=round(before, 4), target_recall=target)
    ivf = faiss.try_extract_index_ivf(index)
    if before >= target or (ivf is None and _find_hnsw(index) is None):
        return recipe, before, before
    if ivf is not None:
        setting, current = "nprobe", recipe.nprobe or 1
        steps = [v for v in nprobe_steps(ivf.nlist) if v > current]
    else:
        setting, current = "ef_search", recipe.ef_search or 16
        steps = [v for v in HNSW_EF_STEPS if v > current]
    after = before
    for value in steps:
        trial = replace(recipe, **{setting: value})
        after = probe.recall(index, trial, vectors)
        recipe = replace(trial, recall=round(after, 4))
        if after >= target:
            break
    return recipe, before, after
