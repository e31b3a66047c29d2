"""Retrieval measured through the real search path: index a BEIR collection's corpus with
`semsearch index`'s code, run its queries with `semsearch query`'s search, score BM25, dense and
hybrid side by side, and calibrate the model's fusion on them.

Scored as BEIR does: nDCG@10, recall@100, MRR@10 over the top 100 documents, a hit whose id
equals the query's id left out (ArguAna's queries are in its corpus).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.eval.metrics import retrieval_scores
from semsearch.eval.retrieval import RetrievalSet
from semsearch.index.fusion import FusionConfig
from semsearch.progress import Meter, Metered

DEPTH = 100  # documents scored per query, and each side's candidates for fusion
SEARCH_METRICS = ("ndcg@10", "recall@100", "mrr@10", "recall@10")
# the settings calibration chooses from: weighted fusion at dense weights 0, 0.1, ..., 1, and RRF
FUSION_GRID = tuple(FusionConfig("weighted", w / 10, DEPTH) for w in range(11)) + (
    FusionConfig("rrf", 0.5, DEPTH),
)
# the shared collections `semsearch evaluate` runs when the data folder has them: (folder, split)
SHARED_COLLECTIONS = (("beir/mlquestions", "dev"), ("beir/arguana", "test"))


@dataclass
class CollectionRun:
    """One collection searched both ways: each query's dense and lexical top-DEPTH hits."""

    name: str
    qrels: dict[str, dict[str, int]]
    dense: dict[str, list]  # query id -> list[Hit], best first
    lexical: dict[str, list]
    corpus: int
    index: dict  # the index's recipe and lexical settings, for the report


def run_collection(retrieval_set: RetrievalSet, embedder, batch_size: int = 64,
                   progress: bool = False, depth: int = DEPTH,
                   index_type: str = "auto") -> CollectionRun:
    """Index the collection's corpus (the `index_type` recipe, in a temporary folder) and run
    each query in dense and lexical mode, keeping the top `depth` (+1, for the query's own id)
    of each."""
    from semsearch.corpora import ReaderOptions
    from semsearch.index import SearchIndex
    from semsearch.indexing import IndexOptions, index_corpus
    from semsearch.querying import SearchOptions, search

    query_ids = [q for q in retrieval_set.queries if q in retrieval_set.qrels]
    texts = [retrieval_set.queries[q] for q in query_ids]
    with tempfile.TemporaryDirectory(prefix="semsearch-eval-") as temporary:
        corpus = Path(temporary) / "corpus.jsonl"
        with corpus.open("w", encoding="utf-8") as out:
            for doc_id, text in retrieval_set.corpus.items():
                out.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
        folder = Path(temporary) / "index"
        options = IndexOptions(type=index_type, reader=ReaderOptions("jsonl", "text", "id"),
                               batch_size=batch_size)
        index_corpus(corpus, embedder, folder, options, progress=progress, latest=False)
        opened = SearchIndex.open(folder)
        try:
            runs = {}
            for mode in ("dense", "lexical"):
                hits = search(opened, embedder, texts, depth + 1, batch_size=batch_size,
                              options=SearchOptions(mode=mode)) if texts else []
                runs[mode] = {
                    q: [hit for hit in found if hit.id != q][:depth]
                    for q, found in zip(query_ids, hits, strict=True)
                }
            recipe = {"factory": opened.recipe.factory, "lexical": opened.manifest.lexical}
        finally:
            opened.close()
    return CollectionRun(
        retrieval_set.name,
        {q: retrieval_set.qrels[q] for q in query_ids},
        runs["dense"],
        runs["lexical"],
        len(retrieval_set.corpus),
        recipe,
    )


def score_rankings(rankings: dict[str, list[str]], qrels: dict) -> dict[str, float]:
    """nDCG@10, recall@100, MRR@10 and recall@10 of rankings (query id -> doc ids)."""
    scores = retrieval_scores(rankings, qrels, ks=(10, 100))
    return {key: scores[key] for key in SEARCH_METRICS} | {"queries": scores["queries"]}


def hybrid_rankings(run: CollectionRun, fusion: FusionConfig, k: int = DEPTH
                    ) -> dict[str, list[str]]:
    """Each query's fused ranking, by the same `fuse_hits` that `semsearch query` runs."""
    from semsearch.querying import fuse_hits

    return {
        q: [hit.id for hit in fuse_hits(run.dense[q][: fusion.depth],
                                        run.lexical[q][: fusion.depth], fusion, k)]
        for q in run.qrels
    }


def side_scores(run: CollectionRun) -> dict[str, dict[str, float]]:
    """BM25 and dense alone."""
    return {
        "bm25": score_rankings({q: [h.id for h in hits] for q, hits in run.lexical.items()},
                               run.qrels),
        "dense": score_rankings({q: [h.id for h in hits] for q, hits in run.dense.items()},
                                run.qrels),
    }


def describe(fusion: FusionConfig) -> str:
    """'weighted 0.3' or 'rrf'."""
    return "rrf" if fusion.method == "rrf" else f"weighted {fusion.dense_weight:.1f}"


class SweepScores:
    """One collection's per-query nDCG@10 under every FUSION_GRID setting and for each side
    alone, fused once from the run's cached hits; the sweep, its halves (`out_of_fold`) and the
    calibration are then means over these numbers. Each query is fused as `fuse` fuses it (the
    same scores, the same tie order), so the figures are those of `hybrid_rankings`.

    `grid` is (judged queries, settings), `bm25` and `dense` (judged queries,), rows in the
    order of `queries`, the run's judged query ids in its qrels order."""

    def __init__(self, run: CollectionRun) -> None:
        from semsearch.eval.metrics import ndcg_at_k

        self.name = run.name
        self.queries = [q for q, judged in run.qrels.items()
                        if any(grade > 0 for grade in judged.values())]
        self.row = {q: i for i, q in enumerate(self.queries)}
        self.grid = np.zeros((len(self.queries), len(FUSION_GRID)))
        self.bm25 = np.zeros(len(self.queries))
        self.dense = np.zeros(len(self.queries))
        for i, q in enumerate(self.queries):
            relevant = run.qrels[q]
            self.bm25[i] = ndcg_at_k([h.id for h in run.lexical[q]], relevant, 10)
            self.dense[i] = ndcg_at_k([h.id for h in run.dense[q]], relevant, 10)
            for j, ranked in enumerate(_fused_top(run.dense[q], run.lexical[q], 10)):
                self.grid[i, j] = ndcg_at_k(ranked, relevant, 10)

    def rows(self, queries: Sequence[str] | None = None) -> np.ndarray:
        """The rows of `queries` (judged ones only, in the order given; None: all)."""
        if queries is None:
            return np.arange(len(self.queries))
        return np.array([self.row[q] for q in queries if q in self.row], dtype=np.int64)


def _fused_top(dense: list, lexical: list, k: int) -> list[list[str]]:
    """The top-k document ids of one query under each FUSION_GRID setting: `fuse`'s scores
    and tie order (score, then the heavier side's rank, then the other's, then first seen),
    computed for all settings from one pass over the two lists."""
    from semsearch.index.fusion import RRF_K, _min_max

    depth = FUSION_GRID[0].depth
    dense, lexical = dense[:depth], lexical[:depth]
    ids = list(dict.fromkeys([h.id for h in dense] + [h.id for h in lexical]))
    at = {doc: i for i, doc in enumerate(ids)}
    n = len(ids)
    dense_norm, lexical_norm = np.zeros(n), np.zeros(n)
    dense_rank, lexical_rank = np.full(n, n + 1), np.full(n, n + 1)
    rrf = np.zeros(n)
    for hits, norm, rank in ((dense, dense_norm, dense_rank), (lexical, lexical_norm, lexical_rank)):
        for position, (hit, value) in enumerate(zip(hits, _min_max([h.score for h in hits]),
                                                    strict=True), start=1):
            row = at[hit.id]
            norm[row], rank[row] = value, position
            rrf[row] += 1.0 / (RRF_K + position)
    first_seen = np.arange(n)
    tops = []
    for fusion in FUSION_GRID:
        if fusion.method == "rrf":
            order = np.lexsort((first_seen, -rrf))
        else:
            w = fusion.dense_weight
            score = w * dense_norm + (1.0 - w) * lexical_norm
            first, second = (dense_rank, lexical_rank) if w >= 0.5 else (lexical_rank, dense_rank)
            order = np.lexsort((first_seen, second, first, -score))
        tops.append([ids[i] for i in order[:k]])
    return tops


def calibrate(sweeps: Sequence[SweepScores], queries: Sequence[Sequence[str] | None] | None = None
              ) -> tuple[FusionConfig, dict]:
    """The one fusion setting for all collections: the grid's setting whose worst shortfall
    against the better of BM25 and dense (nDCG@10, over the collections) is smallest, ties to
    the best mean nDCG@10; `queries` (per collection, None: all) limits each to those queries.
    Returns it (calibrated) and each setting's nDCG@10 per collection."""
    queries = queries or [None] * len(sweeps)
    rows = [sweep.rows(chosen) for sweep, chosen in zip(sweeps, queries, strict=True)]
    # column by column: a 1-d mean sums pairwise, as the mean of a list of scores does
    means = [[float(sweep.grid[r, j].mean()) for j in range(len(FUSION_GRID))]
             for sweep, r in zip(sweeps, rows, strict=True)]
    best_side = [max(float(sweep.bm25[r].mean()), float(sweep.dense[r].mean()))
                 for sweep, r in zip(sweeps, rows, strict=True)]
    sweep_table: dict[str, dict[str, float]] = {}
    best_key = None
    for j, fusion in enumerate(FUSION_GRID):
        values = {sweep.name: float(mean[j]) for sweep, mean in zip(sweeps, means, strict=True)}
        sweep_table[describe(fusion)] = values
        shortfall = max(side - values[sweep.name]
                        for sweep, side in zip(sweeps, best_side, strict=True))
        key = (round(shortfall, 6), -sum(values.values()) / len(sweeps))
        if best_key is None or key < best_key:
            best_key, chosen = key, fusion
    calibrated = FusionConfig(chosen.method, chosen.dense_weight, chosen.depth, calibrated=True)
    return calibrated, sweep_table


def evaluate_search(
    retrieval_sets: Sequence[RetrievalSet],
    embedder,
    batch_size: int = 64,
    progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
    runs: list | None = None,
    sweeps: list | None = None,
) -> tuple[dict[str, Any], FusionConfig | None]:
    """BM25, dense and hybrid on each collection through the search path, with the fusion
    calibrated over all of them. Returns (report section, calibrated fusion or None); each
    collection's CollectionRun is appended to `runs`, and its SweepScores to `sweeps`, when
    they are given."""
    runs = [] if runs is None else runs
    sweeps = [] if sweeps is None else sweeps
    sides = []
    first = len(runs)
    for retrieval_set in retrieval_sets:
        log(
            f"search {retrieval_set.name}: indexing {len(retrieval_set.corpus):,} documents, "
            f"{len(retrieval_set.qrels):,} queries"
        )
        started = time.perf_counter()
        with Meter(None, f"search {retrieval_set.name}: encoded", log) as meter:
            # no bar: a line every so often as the corpus and the queries are encoded
            metered = embedder if progress else Metered(embedder, meter)
            run = run_collection(retrieval_set, metered, batch_size, progress)
        log(f"search {retrieval_set.name}: indexed and searched in "
            f"{time.perf_counter() - started:.0f}s")
        runs.append(run)
        sides.append(side_scores(run))
    if len(runs) == first:
        return {}, None
    sweeps.extend(SweepScores(run) for run in runs[first:])
    fusion, sweep = calibrate(sweeps[-len(runs[first:]):])
    report: dict[str, Any] = {
        "fusion": fusion.to_dict() | {"setting": describe(fusion)},
        "collections": {},
    }
    for run, side in zip(runs[first:], sides, strict=True):
        report["collections"][run.name] = {
            "queries": len(run.qrels),
            "corpus": run.corpus,
            "index": run.index,
            **side,
            "hybrid": score_rankings(hybrid_rankings(run, fusion), run.qrels),
            "sweep_ndcg@10": {name: values[run.name] for name, values in sweep.items()},
        }
    return report, fusion


def sample_queries(retrieval_set: RetrievalSet, count: int | None, seed: int = 0
                   ) -> RetrievalSet:
    """The set with `count` of its judged queries (a seeded draw from their sorted ids; all of
    them when count is None or not smaller), over the whole corpus."""
    judged = sorted(q for q, grades in retrieval_set.qrels.items()
                    if q in retrieval_set.queries and any(g > 0 for g in grades.values()))
    if count is None or count >= len(judged):
        return retrieval_set
    chosen = sorted(np.random.default_rng(seed).choice(len(judged), count, replace=False))
    keep = [judged[i] for i in chosen]
    return RetrievalSet(retrieval_set.name, {q: retrieval_set.queries[q] for q in keep},
                        retrieval_set.corpus, {q: retrieval_set.qrels[q] for q in keep})


def sample_corpus(retrieval_set: RetrievalSet, fraction: float | None, seed: int = 0
                  ) -> RetrievalSet:
    """The set over a seeded `fraction` of its corpus: every document judged for one of its
    queries, the rest drawn at random (all of it when fraction is None or >= 1)."""
    if fraction is None or fraction >= 1:
        return retrieval_set
    judged = {doc for grades in retrieval_set.qrels.values() for doc in grades}
    others = [doc for doc in retrieval_set.corpus if doc not in judged]
    count = round(fraction * len(others))
    drawn = set(np.random.default_rng(seed).choice(len(others), count, replace=False).tolist())
    keep = judged | {others[i] for i in drawn}
    return RetrievalSet(retrieval_set.name, retrieval_set.queries,
                        {d: text for d, text in retrieval_set.corpus.items() if d in keep},
                        retrieval_set.qrels)


def shared_collections(data_dir: Path | None) -> list[tuple[Path, str]]:
    """The shared BEIR collections present in the data folder, with the split each is scored on."""
    if data_dir is None:
        return []
    return [
        (Path(data_dir) / folder, split)
        for folder, split in SHARED_COLLECTIONS
        if (Path(data_dir) / folder / "qrels" / f"{split}.tsv").is_file()
    ]


def default_split(folder: str | Path) -> str:
    """The qrels split a BEIR folder is scored on: dev where qrels/dev.tsv exists, else test."""
    return "dev" if (Path(folder) / "qrels" / "dev.tsv").is_file() else "test"


def out_of_fold(runs: Sequence[CollectionRun], sweeps: Sequence[SweepScores] | None = None
                ) -> dict[str, Any]:
    """Hybrid nDCG@10 with the weight chosen on other queries than it is scored on: each
    collection's queries in two halves (alternate query ids in sorted order), the fusion
    calibrated on one half of every collection and scored on the other, both ways round; the
    figure is the mean of the two halves. Returns {collection: {"hybrid_ndcg@10": ...,
    "settings": [setting chosen on half 0, on half 1]}}."""
    sweeps = sweeps or [SweepScores(run) for run in runs]
    halves = [[sorted(run.qrels)[part::2] for run in runs] for part in (0, 1)]
    chosen = [calibrate(sweeps, halves[part])[0] for part in (0, 1)]
    result = {}
    for number, (run, sweep) in enumerate(zip(runs, sweeps, strict=True)):
        scores = []
        for part, fusion in enumerate(chosen):
            rows = sweep.rows(halves[1 - part][number])
            scores.append(float(sweep.grid[rows, FUSION_GRID.index(_grid_setting(fusion))].mean()))
        result[run.name] = {"hybrid_ndcg@10": sum(scores) / 2,
                            "settings": [describe(f) for f in chosen]}
    return result


def _grid_setting(fusion: FusionConfig) -> FusionConfig:
    """The FUSION_GRID entry a calibrated setting came from."""
    return next(f for f in FUSION_GRID
                if (f.method, f.dense_weight, f.depth) == (fusion.method, fusion.dense_weight,
                                                           fusion.depth))
