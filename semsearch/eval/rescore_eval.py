"""A two-stage search measured and calibrated through the real search path.

For each collection: its corpus indexed with the first stage's model, each query's first stage
run by `semsearch.querying.first_stage` (the top MAX_DEPTH documents, each with its BM25 score),
the candidates' chunks and the queries encoded once by the rescoring model, then the second
phase (`semsearch.rescoring.second_phase`, the function `query` runs) swept over depth x
weight x normalisation. The chosen setting is then run again through `semsearch.querying.search` with the
rescorer (its cache holds every candidate's vector by then), and those are the figures reported.

One setting for every collection: the shallowest depth whose best mean nDCG@10 is within
DEPTH_TOLERANCE of the deepest's (each candidate costs an encoding at query time), and at that
depth the weight and normalisation that keep every collection at or above its first stage
alone where one can, then the best mean nDCG@10. Scored as search_eval scores: nDCG@10, recall@100, MRR@10, a hit
whose id is the query's own left out (after the second phase, as `query` must: ArguAna's
queries are in its corpus).
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

from semsearch.eval.retrieval import RetrievalSet
from semsearch.eval.search_eval import score_rankings
from semsearch.rescoring import RescoreSettings, pair_key, second_phase

DEPTHS = (10, 20, 30, 50, 100)  # candidates re-scored
WEIGHTS = tuple(w / 10 for w in range(11))  # the rescoring cosine's share
NORMALISATIONS = ("minmax", "zscore")
MAX_DEPTH = max(DEPTHS)
# a shallower depth is chosen when its best mean nDCG@10 is at most this much below the best
DEPTH_TOLERANCE = 0.005
SCORED = 100  # documents a ranking is scored over


@dataclass
class CascadeRun:
    """One collection's first stage and its candidates' rescoring cosines."""

    name: str
    qrels: dict[str, dict[str, int]]
    first: dict[str, list]  # query id -> first-stage hits (filled), best first, MAX_DEPTH
    bm25: dict[str, np.ndarray | None]  # query id -> BM25 score of each first-stage hit
    cosines: dict[str, np.ndarray]  # query id -> rescoring cosine of each first-stage hit
    corpus: int


def index_collection(retrieval_set: RetrievalSet, embedder, folder: Path,
                     batch_size: int = 64) -> Path:
    """Index the collection's corpus with `embedder` in `folder` (index's own code)."""
    from semsearch.corpora import ReaderOptions
    from semsearch.indexing import IndexOptions, index_corpus

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as out:
        for doc_id, text in retrieval_set.corpus.items():
            out.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    index_corpus(corpus, embedder, folder / "index",
                 IndexOptions(reader=ReaderOptions("jsonl", "text", "id"), batch_size=batch_size),
                 progress=False, latest=False)
    return folder / "index"


def first_stage_run(retrieval_set: RetrievalSet, index_dir: Path, embedder, mode: str,
                    rescorer, window: int = 0, batch_size: int = 64, options=None
                    ) -> CascadeRun:
    """The collection's queries' first stage in `mode` (or as `options` say) over the index
    in `index_dir`, each candidate's BM25 score, and the rescoring model's cosine of every
    candidate (its vectors cached in `rescorer`)."""
    from semsearch.index import SearchIndex
    from semsearch.querying import SearchOptions, candidate_bm25, first_stage, index_key

    query_ids = [q for q in retrieval_set.queries if q in retrieval_set.qrels]
    texts = [retrieval_set.queries[q] for q in query_ids]
    opened = SearchIndex.open(index_dir)
    try:
        first = first_stage(opened, embedder, texts, MAX_DEPTH,
                            options or SearchOptions(mode=mode), batch_size=batch_size)
        bm25 = [candidate_bm25(opened, text, hits) for text, hits in zip(texts, first,
                                                                            strict=True)]
        rows = list(dict.fromkeys(hit.row for hits in first for hit in hits))
        text_of = {hit.row: hit.text for hits in first for hit in hits}
        vectors = rescorer.chunk_vectors(index_key(opened), rows, [text_of[r] for r in rows],
                                         window)
    finally:
        opened.close()
    query_vectors = rescorer.encode_queries(texts)
    at = {row: i for i, row in enumerate(rows)}
    return CascadeRun(
        retrieval_set.name,
        {q: retrieval_set.qrels[q] for q in query_ids},
        dict(zip(query_ids, first, strict=True)),
        dict(zip(query_ids, bm25, strict=True)),
        {q: vectors[[at[hit.row] for hit in hits]] @ query_vectors[n]
         for n, (q, hits) in enumerate(zip(query_ids, first, strict=True))},
        len(retrieval_set.corpus))


def real_path(retrieval_set: RetrievalSet, index_dir: Path, embedder, mode: str, rescorer,
              settings: RescoreSettings) -> dict[str, float]:
    """The collection searched with the second phase at `settings` by the functions
    `semsearch.querying.search` runs (its first stage, then `rescore`), scored."""
    from semsearch.index import SearchIndex
    from semsearch.querying import SearchOptions, first_stage, rescore

    query_ids = [q for q in retrieval_set.queries if q in retrieval_set.qrels]
    texts = [retrieval_set.queries[q] for q in query_ids]
    opened = SearchIndex.open(index_dir)
    try:
        first = first_stage(opened, embedder, texts, MAX_DEPTH, SearchOptions(mode=mode),
                            fill=False)
        found = rescore(opened, rescorer, texts, first, settings, MAX_DEPTH)
    finally:
        opened.close()
    rankings = {q: [h.id for h in hits if h.id != q][:SCORED]
                for q, hits in zip(query_ids, found, strict=True)}
    return score_rankings(rankings, {q: retrieval_set.qrels[q] for q in query_ids})


def cascade_rankings(run: CascadeRun, depth: int, weight: float, normalise: str = "minmax",
                     queries: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Each query's ranking after the second phase at (depth, weight, normalise), the self-hit
    dropped: `second_phase`, the numpy core of the `rescore_hits` that `query` runs."""
    rankings = {}
    for q in queries if queries is not None else run.qrels:
        hits, bm25 = run.first[q], run.bm25[q]
        ids = [hit.id for hit in hits]
        if ids:
            order, _, _ = second_phase(
                run.cosines[q][:depth],
                bm25[:depth] if bm25 is not None else np.zeros(min(depth, len(ids))),
                weight if bm25 is not None else 1.0, normalise)
            ranked = [ids[i] for i in order.tolist()] + ids[depth:]
        else:
            ranked = []
        rankings[q] = [d for d in ranked if d != q][:SCORED]
    return rankings


def first_rankings(run: CascadeRun, queries: Sequence[str] | None = None
                   ) -> dict[str, list[str]]:
    return {q: [h.id for h in run.first[q] if h.id != q][:SCORED]
            for q in (queries if queries is not None else run.qrels)}


def _ndcg(rankings: dict[str, list[str]], run: CascadeRun) -> float:
    return score_rankings(rankings, {q: run.qrels[q] for q in rankings})["ndcg@10"]


Setting = tuple[int, float, str]  # (depth, weight, normalisation)


def sweep(runs: Sequence[CascadeRun], queries: dict[str, list[str]] | None = None
          ) -> dict[Setting, dict[str, float]]:
    """nDCG@10 of every (depth, weight, normalisation) on every collection (over `queries` of
    each, or all)."""
    table = {}
    for depth in DEPTHS:
        for weight in WEIGHTS:
            for normalise in NORMALISATIONS:
                table[(depth, weight, normalise)] = {
                    run.name: _ndcg(cascade_rankings(
                        run, depth, weight, normalise,
                        queries.get(run.name) if queries else None), run)
                    for run in runs}
    return table


def choose(runs: Sequence[CascadeRun], table: dict[Setting, dict[str, float]],
           queries: dict[str, list[str]] | None = None) -> Setting:
    """The one setting for all collections (see the module doc)."""
    floor = {run.name: _ndcg(first_rankings(run, queries.get(run.name) if queries else None),
                             run) for run in runs}

    def key(setting):
        scores = table[setting]
        below = sum(max(0.0, floor[name] - value) for name, value in scores.items())
        return (round(below, 6), -sum(scores.values()) / len(scores))

    best_at = {depth: min((s for s in table if s[0] == depth), key=key) for depth in DEPTHS}
    deepest = key(best_at[DEPTHS[-1]])
    for depth in DEPTHS:
        found = key(best_at[depth])
        if found[0] <= deepest[0] and -found[1] >= -deepest[1] - DEPTH_TOLERANCE:
            return best_at[depth]
    return best_at[DEPTHS[-1]]


def describe(setting: Setting) -> str:
    """'depth 50, weight 0.8, minmax'."""
    depth, weight, normalise = setting
    return f"depth {depth}, weight {weight:.1f}, {normalise}"


def out_of_fold(runs: Sequence[CascadeRun]) -> dict[str, dict[str, Any]]:
    """Each collection's nDCG@10 with the setting chosen on the other half of every
    collection's queries (alternate ids in sorted order), both ways round, averaged."""
    halves = [{run.name: sorted(run.qrels)[part::2] for run in runs} for part in (0, 1)]
    chosen = [choose(runs, sweep(runs, half), half) for half in halves]
    result = {}
    for run in runs:
        scores = [_ndcg(cascade_rankings(run, *chosen[part],
                                         queries=halves[1 - part][run.name]), run)
                  for part in (0, 1)]
        result[run.name] = {"ndcg@10": sum(scores) / 2,
                            "settings": [describe(setting) for setting in chosen]}
    return result


def calibrate_cascade(retrieval_sets: Sequence[RetrievalSet], embedder, rescorer,
                      modes: Sequence[str] = ("hybrid",), window: int = 0, batch_size: int = 64,
                      log: Callable[[str], None] = lambda message: None
                      ) -> dict[str, tuple[RescoreSettings, dict[str, Any]]]:
    """Calibrate the second phase of (the index `embedder` builds, searched in each of
    `modes`; rescorer) on the collections, and measure it through the real path.
    Returns {mode: (settings, report)}."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="semsearch-cascade-") as temporary:
        folders = []
        for number, retrieval_set in enumerate(retrieval_sets):
            started = time.perf_counter()
            folders.append(index_collection(retrieval_set, embedder,
                                            Path(temporary) / str(number), batch_size))
            log(f"second phase {retrieval_set.name}: indexed {len(retrieval_set.corpus):,} "
                f"documents in {time.perf_counter() - started:.0f}s")
        for mode in modes:
            runs = []
            for retrieval_set, folder in zip(retrieval_sets, folders, strict=True):
                started = time.perf_counter()
                runs.append(first_stage_run(retrieval_set, folder, embedder, mode, rescorer,
                                            window, batch_size))
                log(f"second phase {retrieval_set.name}, {mode} first stage: candidates "
                    f"re-scored by {rescorer.name} in {time.perf_counter() - started:.0f}s")
            started = time.perf_counter()
            table = sweep(runs)
            chosen = choose(runs, table)
            depth, weight, normalise = chosen
            settings = RescoreSettings(depth=depth, weight=weight, window=window,
                                       normalise=normalise, calibrated=True)
            held_out = out_of_fold(runs)
            log(f"second phase {mode}: {describe(chosen)} chosen in "
                f"{time.perf_counter() - started:.0f}s")
            report: dict[str, Any] = {"mode": mode, "setting": describe(chosen),
                                      "settings": settings.to_dict(), "collections": {}}
            for run, retrieval_set, folder in zip(runs, retrieval_sets, folders, strict=True):
                swept = score_rankings(cascade_rankings(run, *chosen), run.qrels)
                through = real_path(retrieval_set, folder, embedder, mode, rescorer, settings)
                report["collections"][run.name] = {
                    "queries": len(run.qrels), "corpus": run.corpus,
                    "first_stage": score_rankings(first_rankings(run), run.qrels),
                    "cascade": through,
                    "cascade_swept_ndcg@10": swept["ndcg@10"],
                    "cascade_out_of_fold_ndcg@10": held_out[run.name]["ndcg@10"],
                    "out_of_fold_settings": held_out[run.name]["settings"],
                    "recall_at_depth": _recall_at(run, depth),
                    "sweep_ndcg@10": {f"{d}/{w:.1f}/{n}": values[run.name]
                                      for (d, w, n), values in table.items()},
                }
            results[mode] = (settings, report)
    return results


def _recall_at(run: CascadeRun, depth: int) -> float:
    """Share of the relevant documents among the first stage's top `depth` (the ceiling of
    the second phase), averaged over the queries."""
    values = []
    for q, relevant in run.qrels.items():
        wanted = {d for d, grade in relevant.items() if grade > 0 and d != q}
        if not wanted:
            continue
        found = {h.id for h in run.first[q][:depth]}
        values.append(len(wanted & found) / len(wanted))
    return float(np.mean(values)) if values else 0.0


def pair_key_for(embedder, mode: str) -> str:
    """rescore.json's key of this first stage."""
    return pair_key(getattr(embedder, "fingerprint", None), mode)


def check_int8(model_dir: Path, texts: Sequence[str]) -> tuple[float, float] | None:
    """(mean, min) cosine of the model's ONNX Runtime int8 vectors to its fp32 ones on `texts`,
    None where there is no int8 path (no ONNX Runtime, or a static model)."""
    from semsearch.embedder import load_embedder
    from semsearch.encoder.onnx_encoder import available

    if not available():
        return None
    fp32 = load_embedder(model_dir, backend="onnx", precision="fp32")
    if getattr(fp32, "kind", "transformer") == "static" or not hasattr(fp32, "session"):
        return None
    int8 = load_embedder(model_dir, backend="onnx", precision="int8")
    cosine = (fp32.encode(list(texts)) * int8.encode(list(texts))).sum(1)
    return float(cosine.mean()), float(cosine.min())


def evaluate_rescoring(embedder, rescore_model: str | Path,
                       search_sets: Sequence[tuple[str | Path, str]], limit: int | None = None,
                       modes: Sequence[str] = ("hybrid", "lexical"), window: int = 0,
                       batch_size: int = 64, save: bool = True,
                       log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """`semsearch evaluate --rescore`: the second phase of (embedder's index, rescore_model)
    calibrated on the collections for each first-stage mode, measured through the real path,
    and (with `save`) written to the rescoring model's rescore.json; returns the report."""
    from semsearch.encoder import resolve_model
    from semsearch.eval.beir import read_beir
    from semsearch.eval.runner import limit_retrieval_set
    from semsearch.rescoring import (
        INT8_AGREEMENT,
        load_rescorer,
        record_int8_agreement,
        write_pair_settings,
    )

    started = time.perf_counter()
    folder = resolve_model(rescore_model).resolve()
    sets = []
    for path, split in search_sets:
        collection = read_beir(path, split)
        sets.append(limit_retrieval_set(collection, limit) if limit is not None else collection)
    sample = [text for s in sets for text in list(s.corpus.values())[:128]]
    agreement = check_int8(folder, sample)
    precision = "int8" if agreement and agreement[0] >= INT8_AGREEMENT else "fp32"
    rescorer = load_rescorer(folder, precision=precision)
    if agreement:
        log(f"second phase: {rescorer.name} on ONNX Runtime {precision} (int8 mean cosine "
            f"{agreement[0]:.4f} to fp32, min {agreement[1]:.4f}, on {len(sample)} texts)")
        if save:
            record_int8_agreement(folder, rescorer.fingerprint, agreement[0], agreement[1],
                                  len(sample))
    results = calibrate_cascade(sets, embedder, rescorer, modes, window, batch_size, log)
    report: dict[str, Any] = {"model": str(folder), "fingerprint": rescorer.fingerprint,
                              "precision": precision, "first_stage_model": str(embedder.path),
                              "int8_agreement": agreement and {"mean": agreement[0],
                                                               "min": agreement[1]},
                              "modes": {}}
    for mode, (settings, section) in results.items():
        report["modes"][mode] = section
        if save:
            saved = write_pair_settings(folder, rescorer.fingerprint,
                                        pair_key_for(embedder, mode), settings,
                                        {"first_stage_model": str(embedder.path),
                                         "collections": {name: {
                                             "first_stage": c["first_stage"]["ndcg@10"],
                                             "cascade": c["cascade"]["ndcg@10"],
                                             "out_of_fold": c["cascade_out_of_fold_ndcg@10"]}
                                             for name, c in section["collections"].items()}})
            section["saved"] = str(saved)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report
