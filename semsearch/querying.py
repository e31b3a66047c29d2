"""The querying half of the pipeline: encode queries (overlapping the encoder's start-up with
opening the index), then search an opened index in dense, lexical or hybrid mode.

The indexing half is semsearch.indexing; both reach the encoder through semsearch.embedder.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from semsearch.embedder import Embedder, check_model, model_for_index
from semsearch.errors import DataError, IndexError_, NoRescorer
from semsearch.index import Hit, Manifest, SearchIndex
from semsearch.index.folder import MANIFEST
from semsearch.index.fusion import FusionConfig, fuse, index_fusion
from semsearch.index.search_index import no_vectors
from semsearch.rescoring import (
    Rescorer,
    RescoreSettings,
    check_depth,
    check_recorded,
    rescore_hits,
    rescore_model_for_index,
    same_model_note,
    shared_rescorer,
)


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
        if not manifest.has_vectors:  # BM25 alone: no model to load
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


class RescorerLoading:
    """The rescoring model (the one asked for, else the one the index records) loaded in a
    thread while the caller opens the index, as `QueryEncoding` loads the first stage's.

        loading = RescorerLoading(folder, "models/minilm")   # or None: the index's own choice
        index = SearchIndex.open(folder)
        rescorer = loading.result(index)                      # None: no second phase

    `result` raises what loading raised (a folder that is not a model, a recorded model that is
    gone or changed), in the caller's thread."""

    def __init__(self, folder: Path, model: str | Path | None) -> None:
        self.folder, self.model = Path(folder), model
        self._wanted: str | Path | None = None
        self._outcome: Rescorer | BaseException | None = None
        self._thread: threading.Thread | None = None
        try:
            manifest = Manifest.read(self.folder / MANIFEST)
            self._wanted = rescore_model_for_index(manifest, self.folder, model)
        except Exception:  # noqa: BLE001 - opening the index reports a missing or bad folder
            return
        if self._wanted is not None:
            self._thread = threading.Thread(target=self._run, name="semsearch-rescorer",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome = shared_rescorer(self._wanted)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self._outcome = error

    def result(self, index: SearchIndex) -> Rescorer | None:
        wanted = rescore_model_for_index(index.manifest, index.folder, self.model)
        if self._thread is not None:
            self._thread.join()
        if wanted is None:
            return None
        if self._thread is not None and wanted == self._wanted:
            if isinstance(self._outcome, BaseException):
                raise self._outcome
            rescorer = self._outcome
        else:  # the folder was swapped for one recording another model meanwhile
            rescorer = shared_rescorer(wanted)
        if self.model is None:
            check_recorded(index.manifest, rescorer, index.folder)
        return rescorer


def describe_rescore(index: SearchIndex, rescorer: Rescorer, mode: str,
                     options: SearchOptions) -> dict:
    """What `query` says of the second phase it ran: the model, the settings and where they
    came from, and (under "notes") the lines to tell a person."""
    settings, source = rescorer.settings_for(index.manifest.model_fingerprint, mode)
    used = rescore_settings(index, rescorer, mode, options)
    if used != settings:
        source = "query"
    notes = []
    same = same_model_note(index.manifest, rescorer)
    if same and mode != "lexical":
        notes.append(f"note: {same}")
    if source == "default":
        first = "BM25" if mode == "lexical" else f"{index.manifest.model_path} ({mode})"
        notes.append(
            f"second phase uncalibrated for {first} -> {rescorer.path}: depth {used.depth}, "
            f"weight {used.weight:.2f}; `semsearch evaluate "
            + ("" if mode == "lexical" else f"--model {index.manifest.model_path} ")
            + f"--rescore {rescorer.path}` calibrates it")
    return {**rescorer.describe(), "depth": used.depth, "weight": used.weight,
            "window": used.window or rescorer.full_window, "source": source, "notes": notes}


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
    # the second phase (semsearch.rescoring): None runs it where a rescoring model is given
    # (or the index records one), False never; depth and weight override the pair's calibration
    rescore: bool | None = None
    rescore_depth: int | None = None
    rescore_weight: float | None = None


def resolve_mode(index: SearchIndex, mode: str | None) -> str:
    """The mode a search runs in: the one asked for, checked against what the index holds."""
    if index.index is None:  # an index without vectors (--lexical-only): BM25 alone
        if mode not in (None, "lexical"):
            if mode not in MODES:
                raise DataError(f"search mode {mode!r} is unknown; use one of {', '.join(MODES)}")
            raise IndexError_(no_vectors(index.folder, mode))
        return "lexical"
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
    rescorer: Rescorer | None = None,
) -> list[list[Hit]]:
    """The top-k documents for each query text, checking the encoder against the index first.

    Dense mode ranks by cosine; lexical by BM25 (needs no encoder: `embedder` may be None);
    hybrid fuses the top `depth` documents of each side (see semsearch.index.fusion). Each hit
    carries the score and rank it had on each side beside the one it is ranked by. The
    keywords mode ... where override the fields of `options` (`where` as {field: value} or
    (field, value) pairs). `vectors`: the queries already encoded by `embedder` (as
    `QueryEncoding` does), else they are encoded here. `rescorer`: a second phase re-scores
    the first stage's top documents (semsearch.rescoring) unless options.rescore is False."""
    options = options or SearchOptions()
    overrides = {name: value for name, value in (
        ("mode", mode), ("fusion", fusion), ("dense_weight", dense_weight), ("depth", depth),
    ) if value is not None}
    if where:
        pairs = where.items() if isinstance(where, dict) else where
        overrides["where"] = tuple((str(f), _filter_text(v)) for f, v in pairs)
    options = replace(options, **overrides)
    if nprobe is not None or ef_search is not None:
        options = replace(options, nprobe=options.nprobe if nprobe is None else nprobe,
                          ef_search=options.ef_search if ef_search is None else ef_search)
    if not queries or any(not query.strip() for query in queries):
        raise DataError('empty query; give some text, e.g. semsearch query "ocean tides" -k 5')
    mode = resolve_mode(index, options.mode)
    second = None
    if options.rescore is not False and rescorer is not None:
        second = rescore_settings(index, rescorer, mode, options)
    elif options.rescore:
        raise NoRescorer("this search has no rescoring model for its second phase; give one "
                         "(--rescore MODEL)")
    # the first stage hands the second its top `depth` documents
    first_k = k if second is None else max(k, second.depth)
    results = first_stage(index, embedder, queries, first_k, replace(options, mode=mode),
                          vectors, batch_size, fill=second is None)
    if second is None:
        return results
    return rescore(index, rescorer, queries, results, second, k)


def first_stage(index: SearchIndex, embedder: Embedder | None, queries: Sequence[str], k: int,
                options: SearchOptions, vectors: np.ndarray | None = None, batch_size: int = 64,
                fill: bool = True) -> list[list[Hit]]:
    """Each query's top-k hits in options.mode (dense, lexical or hybrid). `fill`: the hits
    carry their text and metadata (else only ids, rows and scores; `SearchIndex.fill` adds
    them)."""
    mode = options.mode
    allowed = index.store.rows_where(options.where) if options.where else None
    if mode == "lexical":
        # a query with no searchable words (only stopwords or punctuation) matches nothing: no
        # hits, whether it comes alone or in a batch (`semsearch query` says why)
        results = index.search_lexical(queries, k, allowed, fill=fill)
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
    nprobe, ef_search = options.nprobe, options.ef_search
    if mode == "dense":
        results = index.search(vectors, k, nprobe=nprobe, ef_search=ef_search,
                               allowed_rows=allowed, fill=fill)
        return [[replace(hit, dense_score=hit.score, dense_rank=hit.rank) for hit in hits]
                for hits in results]
    fusion = fusion_for(index, options)
    depth = max(k, fusion.depth)
    # each side's candidates as ids and scores; the text and metadata of the fused top k only
    dense = index.search(vectors, depth, nprobe=nprobe, ef_search=ef_search, allowed_rows=allowed,
                         fill=False)
    lexical = index.search_lexical(queries, depth, allowed, fill=False)
    fused = [fuse_hits(dense_hits, lexical_hits, fusion, k)
             for dense_hits, lexical_hits in zip(dense, lexical, strict=True)]
    return [index.fill(hits) for hits in fused] if fill else fused


def rescore_settings(index: SearchIndex, rescorer: Rescorer, mode: str,
                     options: SearchOptions) -> RescoreSettings:
    """The second phase's depth, weight and window for this index's first stage in `mode`:
    the pair's calibration (or the defaults), with the query's overrides."""
    settings, _ = rescorer.settings_for(index.manifest.model_fingerprint, mode)
    overrides = {}
    if options.rescore_depth is not None:
        overrides["depth"] = check_depth(options.rescore_depth)
    if options.rescore_weight is not None:
        overrides["weight"] = options.rescore_weight
    return replace(settings, **overrides) if overrides else settings


def rescore(index: SearchIndex, rescorer: Rescorer, queries: Sequence[str],
            first: list[list[Hit]], settings: RescoreSettings, k: int) -> list[list[Hit]]:
    """The second phase over the first stage's hits (`first`, each query's best first): the
    top `settings.depth` re-scored by the rescoring model and fused with their BM25 scores
    (see semsearch.rescoring); the rest keep their first-stage order after them."""
    query_vectors = rescorer.encode_queries(queries)
    out = []
    for number, hits in enumerate(first):
        candidates = index.fill(hits[: settings.depth])
        if not candidates:
            out.append([])
            continue
        chunk_vectors = rescorer.chunk_vectors(index_key(index), [hit.row for hit in candidates],
                                               [hit.text for hit in candidates], settings.window)
        fused = rescore_hits(candidates, chunk_vectors @ query_vectors[number],
                             candidate_bm25(index, queries[number], candidates),
                             settings.weight, k, settings.normalise)
        rest = index.fill(hits[settings.depth:k]) if k > settings.depth else []
        out.append(fused + [replace(hit, rank=len(fused) + i, first_rank=hit.rank)
                            for i, hit in enumerate(rest, start=1)])
    return out


def candidate_bm25(index: SearchIndex, query: str, candidates: Sequence[Hit]
                   ) -> np.ndarray | None:
    """Each candidate document's own BM25 score for the query (0 where they share no word),
    None for an index with no lexical part. A hit names its best chunk; a document's chunks
    have consecutive rows, so its first chunk (the lexical part's key) is `row - chunk`."""
    if index.lexical is None:
        return None
    return index.lexical.scores_at(query, [hit.row - hit.chunk for hit in candidates])


def index_key(index: SearchIndex) -> tuple:
    """What names one version of an index for the rescoring cache: its folder, when it was
    built and what from (appends keep it: rows are never reused; a rebuild changes it)."""
    corpora = index.manifest.corpora
    return (str(index.folder), index.manifest.created,
            corpora[0].get("sha256") if corpora and isinstance(corpora[0], dict) else None)


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
    fusion as `describe_fusion` gives it, when a hybrid search used it), `rescore` (the second
    phase that ran, as `describe_rescore` gives it), `notes` (lines for a person about both),
    `documents` (in the index) and `wordless` (queries with no searchable word, lexical mode)."""

    def __init__(self, queries: list[str], hits: list[list[Hit]], single: bool, mode: str,
                 documents: int, fusion: dict | None = None, rescore: dict | None = None,
                 notes: Sequence[str] = (), wordless: Sequence[str] = ()) -> None:
        found = [[hit.to_dict() for hit in found] for found in hits]
        super().__init__(found[0] if single else found)
        self.queries, self.hits, self.mode, self.documents = queries, hits, mode, documents
        self.fusion, self.rescore = fusion, rescore
        self.notes, self.wordless = list(notes), list(wordless)

    def json_lines(self) -> list[dict]:
        """One dict a hit, as `semsearch query --json` prints them a line each."""
        note = ({"fusion": self.fusion} if self.fusion else {}) | (
            {"rescore": self.rescore} if self.rescore else {})
        return [{"query": text, **hit.to_dict(), **note}
                for text, found in zip(self.queries, self.hits, strict=True) for hit in found]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "fusion": self.fusion, "rescore": self.rescore,
                "documents": self.documents,
                "queries": [{"query": text, "hits": [hit.to_dict() for hit in found]}
                            for text, found in zip(self.queries, self.hits, strict=True)]}


def run_query(queries: str | Sequence[str], index: str | Path | None, k: int,
              mode: str | None = None, fusion: str | None = None,
              dense_weight: float | None = None, where=None, model=None,
              depth: int | None = None, nprobe: int | None = None, ef: int | None = None,
              device: str | None = None, loader=None, log=print, rescore=None,
              rescore_depth: int | None = None, rescore_weight: float | None = None,
              opener=None) -> QueryResult:
    """`semsearch.query`'s work: resolve the folder, load the encoders (with `loader(model)` and
    the process's shared rescorer, or, when `loader` is None, each in a thread while the index
    opens, as a one-shot command does), open the index, search it and close it (or, with
    `opener`, take `opener(folder)`'s kept index and its lock, and leave it open). `rescore`: a
    rescoring model folder (or Rescorer), None for the one the index records, False for none."""
    from semsearch.errors import UsageError
    from semsearch.index import resolve_index_dir
    from semsearch.index.fusion import describe_fusion

    single = isinstance(queries, str)
    texts = [queries] if single else list(queries)
    if not texts or any(not text.strip() for text in texts):
        raise DataError('empty query; give some text, e.g. semsearch query "ocean tides" -k 5')
    if rescore is False and (rescore_depth is not None or rescore_weight is not None):
        raise UsageError("--no-rescore turns the second phase off; leave out --rescore*")
    pairs = where.items() if isinstance(where, dict) else (where or ())
    options = SearchOptions(mode=mode, fusion=fusion, dense_weight=dense_weight, depth=depth,
                            where=tuple((str(f), _filter_text(v)) for f, v in pairs),
                            nprobe=nprobe, ef_search=ef,
                            rescore=False if rescore is False else None,
                            rescore_depth=rescore_depth, rescore_weight=rescore_weight)
    folder = resolve_index_dir(index)
    one_shot = loader is None
    encoding = None if mode == "lexical" or not one_shot else QueryEncoding(
        folder, model, texts, device=device)
    rescoring = None
    if one_shot and rescore is not False and not isinstance(rescore, Rescorer):
        rescoring = RescorerLoading(folder, rescore)
    if opener is None:
        opened, lock = SearchIndex.open(folder), nullcontext()
    else:
        opened, lock = opener(folder)
    try:
        with lock:  # one search at a time a kept index (its SQLite connection, FAISS settings)
            searched = resolve_mode(opened, mode)
            embedder = vectors = None
            if searched != "lexical":
                if not one_shot:
                    embedder = loader(model_for_index(opened.manifest, model))
                else:
                    embedder, vectors = encoding.result(opened)
                report_truncated(embedder, texts, log)
            if isinstance(rescore, Rescorer) or rescore is False:
                rescorer = rescore or None
            else:
                rescorer = rescoring.result(opened) if one_shot else _rescorer(opened, rescore)
            if rescorer is None and (rescore_depth is not None or rescore_weight is not None):
                raise UsageError("rescore_depth and rescore_weight (--rescore-depth, "
                                 "--rescore-weight) need a rescoring model: give rescore=MODEL "
                                 "(--rescore MODEL)")
            results = search(opened, embedder, texts, k, options=options, vectors=vectors,
                             rescorer=rescorer)
            wordless = ([text for text in texts if not opened.lexical.query_tokens(text)]
                        if searched == "lexical" else [])
    finally:
        if opener is None:
            opened.close()
    if wordless:
        why = ("no searchable words (only stopwords or punctuation); use other words, or "
               "--mode dense")
        if len(wordless) == len(texts):
            raise DataError(f"the query has {why}")
        for text in wordless:
            log(f"query {text!r} has {why}")
    notes = []
    fusion_note = None
    if searched == "hybrid" and fusion is None and dense_weight is None:
        fusion_note = describe_fusion(*index_fusion(opened.manifest))
        if fusion_note["source"] == "model":
            notes.append(f"fusion {fusion_note['setting']}: {fusion_note['note']}")
    rescore_note = None
    if rescorer is not None:
        rescore_note = describe_rescore(opened, rescorer, searched, options)
        notes += rescore_note.pop("notes")
    return QueryResult(texts, results, single, searched, opened.manifest.documents, fusion_note,
                       rescore_note, notes, wordless)


def _rescorer(opened: SearchIndex, rescore) -> Rescorer | None:
    """The process's shared Rescorer for `rescore` (a model folder; None: the index's recorded
    one), or None when there is none."""
    wanted = rescore_model_for_index(opened.manifest, opened.folder, rescore)
    if wanted is None:
        return None
    rescorer = shared_rescorer(wanted)
    if rescore is None:
        check_recorded(opened.manifest, rescorer, opened.folder)
    return rescorer
