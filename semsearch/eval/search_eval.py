"""Retrieval measured through the real search path: index a BEIR collection's corpus with
`semsearch index`'s code, run its queries with `semsearch query`'s search, score BM25, dense and
hybrid side by side, and calibrate the model's fusion on them.

Scored as BEIR does: nDCG@10, recall@100, MRR@10 over the top 100 documents, a hit whose id
equals the query's id left out (ArguAna's queries are in its corpus).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semsearch.eval.metrics import retrieval_scores
from semsearch.eval.retrieval import RetrievalSet
from semsearch.index.fusion import FusionConfig

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


def calibrate(runs: Sequence[CollectionRun], sides: Sequence[dict]) -> tuple[FusionConfig, dict]:
    """The one fusion setting for all collections: the grid's setting whose worst shortfall
    against the better of BM25 and dense (nDCG@10, over the collections) is smallest, ties to
    the best mean nDCG@10. Returns it (calibrated) and each setting's nDCG@10 per collection."""
    sweep: dict[str, dict[str, float]] = {}
    best_key = None
    for fusion in FUSION_GRID:
        name = describe(fusion)
        sweep[name] = {
            run.name: score_rankings(hybrid_rankings(run, fusion), run.qrels)["ndcg@10"]
            for run in runs
        }
        shortfall = max(
            max(side["bm25"]["ndcg@10"], side["dense"]["ndcg@10"]) - sweep[name][run.name]
            for run, side in zip(runs, sides, strict=True)
        )
        mean = sum(sweep[name].values()) / len(runs)
        key = (round(shortfall, 6), -mean)
        if best_key is None or key < best_key:
            best_key, chosen = key, fusion
    calibrated = FusionConfig(chosen.method, chosen.dense_weight, chosen.depth, calibrated=True)
    return calibrated, sweep


def evaluate_search(
    retrieval_sets: Sequence[RetrievalSet],
    embedder,
    batch_size: int = 64,
    progress: bool = False,
    log: Callable[[str], None] = lambda message: None,
    runs: list | None = None,
) -> tuple[dict[str, Any], FusionConfig | None]:
    """BM25, dense and hybrid on each collection through the search path, with the fusion
    calibrated over all of them. Returns (report section, calibrated fusion or None); each
    collection's CollectionRun is appended to `runs` when one is given."""
    runs = [] if runs is None else runs
    sides = []
    for retrieval_set in retrieval_sets:
        log(
            f"search {retrieval_set.name}: indexing {len(retrieval_set.corpus):,} documents, "
            f"{len(retrieval_set.qrels):,} queries"
        )
        run = run_collection(retrieval_set, embedder, batch_size, progress)
        runs.append(run)
        sides.append(side_scores(run))
    if not runs:
        return {}, None
    fusion, sweep = calibrate(runs, sides)
    report: dict[str, Any] = {
        "fusion": fusion.to_dict() | {"setting": describe(fusion)},
        "collections": {},
    }
    for run, side in zip(runs, sides, strict=True):
        report["collections"][run.name] = {
            "queries": len(run.qrels),
            "corpus": run.corpus,
            "index": run.index,
            **side,
            "hybrid": score_rankings(hybrid_rankings(run, fusion), run.qrels),
            "sweep_ndcg@10": {name: values[run.name] for name, values in sweep.items()},
        }
    return report, fusion


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


def out_of_fold(runs: Sequence[CollectionRun]) -> dict[str, Any]:
    """Hybrid nDCG@10 with the weight chosen on other queries than it is scored on: each
    collection's queries in two halves (alternate query ids in sorted order), the fusion
    calibrated on one half of every collection and scored on the other, both ways round; the
    figure is the mean of the two halves. Returns {collection: {"hybrid_ndcg@10": ...,
    "settings": [setting chosen on half 0, on half 1]}}."""
    halves = []
    for part in (0, 1):
        chosen_on = [_subset(run, part) for run in runs]
        fusion, _ = calibrate(chosen_on, [side_scores(run) for run in chosen_on])
        halves.append(fusion)
    result = {}
    for run in runs:
        scores = []
        for part, fusion in enumerate(halves):
            held_out = _subset(run, 1 - part)
            scores.append(score_rankings(hybrid_rankings(held_out, fusion),
                                         held_out.qrels)["ndcg@10"])
        result[run.name] = {"hybrid_ndcg@10": sum(scores) / 2,
                            "settings": [describe(f) for f in halves]}
    return result


def _subset(run: CollectionRun, part: int) -> CollectionRun:
    keep = sorted(run.qrels)[part::2]
    return CollectionRun(run.name, {q: run.qrels[q] for q in keep},
                         {q: run.dense[q] for q in keep}, {q: run.lexical[q] for q in keep},
                         run.corpus, run.index)
