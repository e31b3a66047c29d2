"""An index folder opened for use: the FAISS index, the document store and the manifest
together. Searching returns document hits; writes go through `semsearch.index.writer`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from semsearch.errors import IndexError_
from semsearch.index.faiss_index import (
    faiss_ivf,
    read_index,
    search_vectors,
)
from semsearch.index.folder import (
    INDEX_FILE,
    MANIFEST,
    STORE_FILE,
    VECTORS_FILE,
    check_not_interrupted,
)
from semsearch.index.lexical import (
    LexicalConfig,
    LexicalIndex,
)
from semsearch.index.lock import reading, swap_lock_path
from semsearch.index.manifest import Manifest
from semsearch.index.merge import best_per_document
from semsearch.index.recipe import RERANK_MIN_K, IndexRecipe
from semsearch.index.store import DocumentStore
from semsearch.index.vector_file import VectorFile, rerank_exact
from semsearch.limits import MAX_K

# a filter matching at most this many chunks is searched exactly over their kept vectors
EXACT_FILTER_MAX = 100_000


@dataclass(frozen=True)
class Hit:
    """One search result: a document, and the chunk of it that matched best."""

    rank: int  # 1-based
    score: float  # cosine similarity of query and chunk
    id: str  # document id
    chunk: int  # 0-based chunk number within the document
    chunks: int  # how many chunks the document has
    text: str  # the chunk's text
    metadata: dict = field(default_factory=dict)
    # where the document stood on each side of a search (None: not in that side's candidates,
    # or that side was not searched); score is the fused one in hybrid mode
    dense_score: float | None = None
    dense_rank: int | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None
    # the second phase (semsearch.rescoring), where one ran: the rescoring model's cosine and
    # its rank among the candidates, and the rank the first stage gave the document
    rescore_score: float | None = None
    rescore_rank: int | None = None
    first_rank: int | None = None

    # the chunk's row id in the index; kept out of to_dict (an internal handle: rows move when
    # an index is rebuilt)
    row: int | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["row"]
        if self.rescore_score is None and self.first_rank is None:  # no second phase ran
            for name in ("rescore_score", "rescore_rank", "first_rank"):
                del data[name]
        return data


# a reader without a lock file retries an open that raced a swap this many times
OPEN_ATTEMPTS = 5


def folder_identity(folder: Path) -> tuple[int, int, int] | None:
    """The folder's inode and its manifest's: changes whenever a new version is swapped in."""
    try:
        stat, manifest = folder.stat(), (folder / MANIFEST).stat()
    except OSError:
        return None
    return (stat.st_ino, manifest.st_ino, manifest.st_mtime_ns)


class SearchIndex:
    """A loaded index folder. Open with `SearchIndex.open(folder)`."""

    def __init__(self, folder: Path, manifest: Manifest, index, store: DocumentStore) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        self.index = index
        self.store = store
        self.recipe = IndexRecipe.from_dict(manifest.recipe)
        # None for an index without vectors (--lexical-only): no FAISS index either
        self.vectors = (VectorFile(self.folder / VECTORS_FILE, manifest.dim)
                        if manifest.has_vectors else None)
        self.lexical: LexicalIndex | None = None
        if manifest.lexical is not None:
            self.lexical = LexicalIndex(self.folder, LexicalConfig.from_dict(manifest.lexical))
            if len(self.lexical) != manifest.documents:
                raise IndexError_(
                    f"index folder {self.folder} is inconsistent (lexical index: "
                    f"{len(self.lexical)} documents, manifest: {manifest.documents}); rebuild with "
                    f"`semsearch index CORPUS --out {self.folder}`"
                )

    @classmethod
    def open(cls, folder: Path, read_only: bool = True) -> SearchIndex:
        """Load and cross-check a folder; IndexError_ says how to fix a missing or corrupt one.

        A reader opens the files under the folder's shared swap lock, so a writer swapping in a
        new version waits the milliseconds this takes and the reader sees one version whole
        (its open files stay readable after the swap). Where no lock file can be found the
        folder's identity is compared before and after, and the open retried on a change.
        `read_only` (the default) never writes into the folder."""
        folder = Path(folder)
        for attempt in range(OPEN_ATTEMPTS):
            with reading(folder) as locked:
                before = folder_identity(folder)
                try:
                    opened = cls._open(folder, read_only)
                except IndexError_:
                    if locked or attempt == OPEN_ATTEMPTS - 1 or folder_identity(folder) == before:
                        raise
                    continue  # changed while it was read: read the new version
                if locked or (
                    folder_identity(folder) == before and not swap_lock_path(folder).exists()
                ):
                    return opened
                opened.close()
        raise IndexError_(f"index {folder} kept changing while it was opened; try again")

    @classmethod
    def _open(cls, folder: Path, read_only: bool) -> SearchIndex:
        check_not_interrupted(folder)
        if not folder.is_dir():
            raise IndexError_(
                f"no index at {folder}; build it with `semsearch index CORPUS --out {folder}`"
            )
        manifest = Manifest.read(folder / MANIFEST)
        index = read_index(folder / INDEX_FILE) if manifest.has_vectors else None
        store = DocumentStore.open_existing(folder / STORE_FILE, read_only=read_only)
        fix = f"rebuild with `semsearch index CORPUS --out {folder}`"
        try:
            stored = store.count_chunks()
        except Exception as error:  # sqlite3.DatabaseError and friends
            store.close()
            raise IndexError_(f"document store in {folder} is corrupt ({error}); {fix}") from None
        if index is None:  # BM25 alone: one chunk a document
            if stored != manifest.documents or manifest.lexical is None:
                store.close()
                raise IndexError_(
                    f"index folder {folder} is inconsistent (manifest: {manifest.documents} "
                    f"documents and {'a' if manifest.lexical else 'no'} lexical part; store: "
                    f"{stored} chunks); {fix}")
            try:
                return cls(folder, manifest, None, store)
            except BaseException:
                store.close()
                raise
        if index.d != manifest.dim or index.ntotal != manifest.count or stored != manifest.count:
            store.close()
            raise IndexError_(
                f"index folder {folder} is inconsistent (manifest: {manifest.count} vectors of "
                f"dimension {manifest.dim}; index: {index.ntotal} of {index.d}; store: {stored} "
                f"chunks); {fix}"
            )
        try:
            opened = cls(folder, manifest, index, store)
        except (TypeError, ValueError) as error:
            store.close()
            raise IndexError_(f"{folder / MANIFEST} has a malformed recipe ({error}); {fix}") from None
        if opened.recipe.rerank:
            if len(opened.vectors) < manifest.next_row:
                store.close()
                raise IndexError_(f"{folder / VECTORS_FILE} is missing or short; {fix}")
            opened.vectors.pin()  # the mapping outlives a later swap of the folder
        return opened

    def close(self) -> None:
        self.store.close()

    def search(
        self,
        queries: np.ndarray,
        k: int,
        nprobe: int | None = None,
        ef_search: int | None = None,
        allowed_rows: np.ndarray | None = None,
        fill: bool = True,
    ) -> list[list[Hit]]:
        """Top-k documents for each (nq, d) normalised query vector; fewer when the index holds
        fewer documents. A document appears once, with its best chunk. `allowed_rows` (sorted
        row ids) restricts the search to those chunks, as a metadata filter does. With `fill`
        False the hits carry no text, metadata or chunk count (see `fill`): candidates to fuse."""
        if not 1 <= k <= MAX_K:
            raise IndexError_(f"k must be between 1 and {MAX_K:,}, not {k}")
        if self.index is None:
            raise IndexError_(no_vectors(self.folder, "dense"))
        total = self.index.ntotal
        if allowed_rows is not None:
            return self._search_allowed(queries, k, allowed_rows, nprobe, ef_search, fill)
        if total == 0:
            return [[] for _ in range(len(queries))]
        # documents split into chunks can fill the top-k with one document: fetch more, by the
        # chunks a document has on average (from the manifest at no cost, where asking the store
        # took 90 ms of a 100 ms query on 700K documents), and 4x more each time that falls short
        fetch = fetch_for(k, self.manifest.count, self.manifest.documents)
        while True:
            scores, rows = search_with_recipe(
                self.index, self.recipe, self.vectors, queries, fetch, nprobe, ef_search
            )
            results = self._merge(scores, rows, k, fill)
            if (
                all(len(hits) == k for hits in results)
                or fetch * max(1, self.recipe.rerank) >= total
            ):
                return results
            fetch *= 4

    def _search_allowed(self, queries, k, allowed_rows, nprobe, ef_search, fill
                        ) -> list[list[Hit]]:
        """Search only `allowed_rows`. Exact over their vectors when the vector file is kept
        (re-ranking recipes) or they are few; else FAISS with an ID selector over all lists, so
        k hits come back whenever k documents match."""
        if len(allowed_rows) == 0:
            return [[] for _ in range(len(queries))]
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if (self.recipe.rerank and len(allowed_rows) <= EXACT_FILTER_MAX
                and len(self.vectors) >= self.manifest.next_row):
            candidates = np.broadcast_to(allowed_rows, (len(queries), len(allowed_rows)))
            scores, rows = rerank_exact(queries, np.ascontiguousarray(candidates), self.vectors,
                                        len(allowed_rows))
            return self._merge(scores, rows, k, fill)
        fetch = min(len(allowed_rows), fetch_for(k, self.manifest.count, self.manifest.documents))
        ivf_lists = getattr(faiss_ivf(self.index), "nlist", None)
        while True:
            scores, rows = search_vectors(
                self.index, queries, fetch, nprobe=ivf_lists or nprobe,
                ef_search=max(ef_search or self.recipe.ef_search or 0, fetch * 4),
                selector=allowed_rows,
            )
            results = self._merge(scores, rows, k, fill)
            if all(len(hits) == k for hits in results) or fetch >= len(allowed_rows):
                return results
            fetch = min(len(allowed_rows), fetch * 4)

    def search_lexical(
        self, texts: Sequence[str], k: int, allowed_rows: np.ndarray | None = None,
        fill: bool = True,
    ) -> list[list[Hit]]:
        """Top-k documents for each query text by BM25 over whole documents (a hit shows the
        document's first chunk); `fill` as in `search`."""
        if self.lexical is None:
            raise IndexError_(
                f"index {self.folder} has no lexical part (built before semsearch had one); "
                f"add it with `semsearch index --add-lexical --out {self.folder}`, or search "
                "with --mode dense"
            )
        results = []
        for text in texts:
            scores, rows = self.lexical.search(text, k, allowed_rows)  # one row a document
            results.append(self._merge(scores[None, :], rows[None, :], k, fill)[0])
        return results

    def fill(self, hits: Sequence[Hit]) -> list[Hit]:
        """The hits with their chunk's text, metadata and document's chunk count from the
        store (hits found with fill=False carry none of them)."""
        chunks = self.store.chunks([hit.row for hit in hits if hit.row is not None])
        return [
            replace(hit, text=chunks[hit.row].text, metadata=chunks[hit.row].metadata,
                    chunks=chunks[hit.row].chunks)
            if hit.row in chunks else hit
            for hit in hits
        ]

    def _merge(self, scores: np.ndarray, rows: np.ndarray, k: int, fill: bool = True
               ) -> list[list[Hit]]:
        """Each query's best chunk of each of its top-k documents. Every candidate's document
        comes from the store without its text; the text and metadata only for the hits kept,
        and only with `fill`."""
        heads = self.store.heads(rows.reshape(-1).tolist())
        kept = []
        for query_scores, query_rows in zip(scores, rows, strict=True):
            named = [heads[row].doc_id if row in heads else None for row in query_rows.tolist()]
            kept.append([(float(query_scores[p]), int(query_rows[p]))
                         for p in best_per_document(query_scores, query_rows, named, k)])
        chunks = self.store.chunks([row for hits in kept for _, row in hits]) if fill else heads
        return [
            [_hit(rank, score, chunks[row]) for rank, (score, row) in enumerate(hits, 1)
             if row in chunks]
            for hits in kept
        ]


def no_vectors(folder: Path, mode: str) -> str:
    """The one line for a dense or hybrid search of an index built without vectors."""
    return (f"index {folder} has no vectors (built with --lexical-only), so it cannot search in "
            f"{mode} mode; search it with --mode lexical, or build it with a model: "
            f"`semsearch index CORPUS --model DIR --out {folder}`")


def search_with_recipe(
    index,
    recipe: IndexRecipe,
    vectors: VectorFile,
    queries: np.ndarray,
    k: int,
    nprobe: int | None = None,
    ef_search: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, row ids) the way the recipe says: plain FAISS search, or for re-ranking
    recipes k * rerank candidates re-scored exactly against the float32 vectors on disk.
    nprobe / ef_search default to the recipe's."""
    nprobe = nprobe if nprobe is not None else recipe.nprobe
    ef_search = ef_search if ef_search is not None else recipe.ef_search
    depth = max(k, RERANK_MIN_K) * recipe.rerank if recipe.rerank else k
    candidates = min(index.ntotal, depth)
    scores, rows = search_vectors(index, queries, candidates, nprobe, ef_search)
    if recipe.rerank:
        scores, rows = rerank_exact(queries, rows, vectors, k)
    return scores, rows


def _hit(rank: int, score: float, chunk) -> Hit:
    return Hit(rank, score, chunk.doc_id, chunk.chunk, chunk.chunks, chunk.text, chunk.metadata,
               row=chunk.row)


def fetch_for(k: int, vectors: int, documents: int) -> int:
    """How many chunks to ask the vector search for, for k documents: k times the chunks a
    document has on average, with a quarter more for documents above the average, at most 4k.

    >>> fetch_for(10, 304, 304), fetch_for(100, 756_160, 704_910), fetch_for(10, 4_000, 1_000)
    (10, 135, 40)
    """
    if vectors <= documents:
        return k
    return min(4 * k, math.ceil(k * 1.25 * vectors / max(1, documents)))
