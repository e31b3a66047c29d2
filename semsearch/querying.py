"""The querying half of the pipeline: encode queries (overlapping the encoder's start-up with
opening the index), then search an opened index in dense, lexical or hybrid mode.

The indexing half is semsearch.indexing; both reach the encoder through semsearch.embedder.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from semsearch.embedder import Embedder, check_model, model_for_index
from semsearch.errors import DataError, IndexError_
from semsearch.index import Hit, Manifest, SearchIndex
from semsearch.index.folder import MANIFEST
from semsearch.index.fusion import FusionConfig, fuse, index_fusion


class QueryEncoding:
    """The query encoder loaded, and the queries encoded, in a thread while the caller opens the
    index: a one-shot query's two start-up costs overlap. Reading the FAISS index, hashing the
    weights and numpy's products all run with the GIL released (docs/results.md, Speed).

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
        from semsearch.embedder import load_embedder  # looked up now: tests swap it

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
    base, _ = index_fusion(index.manifest)
    return FusionConfig(
        method=options.fusion or base.method,
        dense_weight=base.dense_weight if options.dense_weight is None else options.dense_weight,
        depth=options.depth or base.depth,
        calibrated=base.calibrated and options.fusion is None and options.dense_weight is None,
    )


def report_truncated(embedder: Embedder, queries: Sequence[str], log) -> int:
    """Say once through `log` how many queries are longer than the encoder's window (their end
    is not searched for); returns that number."""
    window = embedder.max_seq_len
    longer = [count for count in embedder.count_tokens(list(queries)) if count > window]
    if longer:
        which = "the query is" if len(queries) == 1 else f"{len(longer)} of {len(queries)} queries are"
        log(f"note: {which} longer than the model's window of {window} tokens (up to "
            f"{max(longer)}); only the first {window} tokens are searched for")
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


class QueryResult(list):
    """What `semsearch.query` returns: for one query text its hits as dicts, for several a list
    of such lists (a plain list to index and iterate), with what the command prints beside them:
    `queries`, `hits` (Hit objects, one list a query), `mode` searched, `fusion` (the index's
    fusion as `describe_fusion` gives it, when a hybrid search used it), `documents` (in the
    index) and `wordless` (queries with no searchable word, in lexical mode)."""

    def __init__(self, queries: list[str], hits: list[list[Hit]], single: bool, mode: str,
                 fusion: dict | None, documents: int, wordless: list[str]) -> None:
        found = [[hit.to_dict() for hit in found] for found in hits]
        super().__init__(found[0] if single else found)
        self.queries, self.hits, self.mode, self.fusion = queries, hits, mode, fusion
        self.documents, self.wordless = documents, wordless

    def json_lines(self) -> list[dict]:
        """One dict a hit, as `semsearch query --json` prints them a line each."""
        note = {"fusion": self.fusion} if self.fusion else {}
        return [{"query": text, **hit.to_dict(), **note}
                for text, found in zip(self.queries, self.hits, strict=True) for hit in found]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "fusion": self.fusion, "documents": self.documents,
                "queries": [{"query": text, "hits": [hit.to_dict() for hit in found]}
                            for text, found in zip(self.queries, self.hits, strict=True)]}


def run_query(queries: str | Sequence[str], index: str | Path | None, k: int,
              mode: str | None = None, fusion: str | None = None,
              dense_weight: float | None = None, where=None, model=None,
              depth: int | None = None, nprobe: int | None = None, ef: int | None = None,
              device: str | None = None, loader=None, log=print) -> QueryResult:
    """`semsearch.query`'s work: resolve the folder, encode the queries (with `loader(model)`,
    or, when it is None, in a thread while the index opens, as a one-shot command does), open
    the index, search it and close it."""
    from semsearch.index import resolve_index_dir
    from semsearch.index.fusion import describe_fusion

    single = isinstance(queries, str)
    texts = [queries] if single else list(queries)
    if not texts or any(not text.strip() for text in texts):
        raise DataError('empty query; give some text, e.g. semsearch query "ocean tides" -k 5')
    pairs = where.items() if isinstance(where, dict) else (where or ())
    options = SearchOptions(mode=mode, fusion=fusion, dense_weight=dense_weight, depth=depth,
                            where=tuple((str(f), _filter_text(v)) for f, v in pairs),
                            nprobe=nprobe, ef_search=ef)
    folder = resolve_index_dir(index)
    encoding = None if mode == "lexical" or loader is not None else QueryEncoding(
        folder, model, texts, device=device)
    opened = SearchIndex.open(folder)
    try:
        searched = resolve_mode(opened, mode)
        embedder = vectors = None
        if searched != "lexical":
            if loader is not None:
                embedder = loader(model_for_index(opened.manifest, model))
            else:
                embedder, vectors = encoding.result(opened)
            report_truncated(embedder, texts, log)
        results = search(opened, embedder, texts, k, options=options, vectors=vectors)
        wordless = ([text for text in texts if not opened.lexical.query_tokens(text)]
                    if searched == "lexical" else [])
    finally:
        opened.close()
    if wordless:
        why = ("no searchable words (only stopwords or punctuation); use other words, or "
               "--mode dense")
        if len(wordless) == len(texts):
            raise DataError(f"the query has {why}")
        for text in wordless:
            log(f"query {text!r} has {why}")
    note = None
    if searched == "hybrid" and fusion is None and dense_weight is None:
        note = describe_fusion(*index_fusion(opened.manifest))
    return QueryResult(texts, results, single, searched, note, opened.manifest.documents,
                       wordless)
