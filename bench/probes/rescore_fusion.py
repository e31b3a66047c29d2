"""Probe: how the second phase should fuse, on cached first stages and rescoring cosines.

Builds each collection's cascade run once (the real first stage, top 100 by hybrid or BM25;
every candidate encoded by the rescoring model) and then compares, for each depth:
- the product's two-way fusion (rescoring cosine and BM25, min-max over the candidates);
- three-way fusion adding the first stage's dense score (the fast model's cosine);
- the rescoring cosine fused with the first stage's own fused score instead of BM25;
- z-score instead of min-max normalisation;
- other first-stage fusions (the candidates a hybrid first stage hands over: its calibrated
  weight is chosen for nDCG@10, a cascade wants recall at the depth).
Prints the best weight(s) per depth and their mean nDCG@10 over the collections.

    python bench/probes/rescore_fusion.py --first models/static --rescore models/minilm
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def norm(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "zscore":
        std = values.std()
        return (values - values.mean()) / std if std > 0 else np.zeros_like(values)
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.ones_like(values)


def arrays(run, depth: int):
    """Per query: candidate ids, rescoring cosines, BM25 (each candidate's own), static dense
    (min of the list where absent), first-stage rank score."""
    out = {}
    for q, hits in run.first.items():
        hits = hits[:depth]
        bm25 = (run.bm25[q][:depth] if run.bm25[q] is not None else np.zeros(len(hits)))
        dense = np.array([h.dense_score if h.dense_score is not None else np.nan for h in hits])
        if np.isnan(dense).all():
            dense = np.zeros(len(hits))
        dense = np.where(np.isnan(dense), np.nanmin(dense), dense)
        first = np.array([h.score for h in hits])
        out[q] = ([h.id for h in hits], run.cosines[q][:depth], bm25, dense, first)
    return out


def ndcg(rankings, qrels) -> float:
    from semsearch.eval.search_eval import score_rankings

    return score_rankings(rankings, qrels)["ndcg@10"]


def rank(cached, run, weights, kind="minmax", second="bm25"):
    rankings = {}
    wr, wb, wd = weights
    for q, (ids, cos, bm25, dense, first) in cached.items():
        other = bm25 if second == "bm25" else first
        score = wr * norm(cos, kind) + wb * norm(other, kind) + wd * norm(dense, kind)
        order = np.argsort(-score, kind="stable")
        rest = [h.id for h in run.first[q][len(ids):]]
        ranked = [ids[i] for i in order] + rest
        rankings[q] = [d for d in ranked if d != q][:100]
    return rankings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", default="models/static")
    parser.add_argument("--rescore", default="models/minilm")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--precision", default=None)
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    from semsearch.embedder import load_embedder
    from semsearch.eval.beir import read_beir
    from semsearch.eval.rescore_eval import first_stage_run, index_collection
    from semsearch.rescoring import load_rescorer

    data = Path(args.data_dir)
    embedder = load_embedder(args.first)
    rescorer = load_rescorer(args.rescore, precision=args.precision)
    runs = []
    variants: dict[str, list] = {}
    from semsearch.eval.rescore_eval import _recall_at, cascade_rankings
    from semsearch.querying import SearchOptions

    with tempfile.TemporaryDirectory() as temporary:
        for number, (folder, split) in enumerate((("beir/mlquestions", "dev"),
                                                  ("beir/arguana", "test"))):
            collection = read_beir(data / folder, split)
            index = index_collection(collection, embedder, Path(temporary) / str(number))
            runs.append(first_stage_run(collection, index, embedder, args.mode, rescorer))
            if args.mode == "hybrid":
                for name, options in (("weighted 0.5", {"dense_weight": 0.5}),
                                      ("weighted 0.7", {"dense_weight": 0.7}),
                                      ("rrf", {"fusion": "rrf"})):
                    variants.setdefault(name, []).append(first_stage_run(
                        collection, index, embedder, args.mode, rescorer,
                        options=SearchOptions(mode="hybrid", **options)))
    for name, found in [("calibrated", runs), *variants.items()]:
        for depth in (50, 100):
            recall = [round(_recall_at(run, depth), 3) for run in found]
            best = max((sum(ndcg(cascade_rankings(run, depth, w), run.qrels) for run in found)
                        / len(found), w) for w in [x / 10 for x in range(11)])
            # (min-max over the candidates' own BM25 scores: the product's two-way fusion)
            print(f"first stage {name:<13} depth {depth:>3}: recall {recall}, two-way best mean "
                  f"{best[0]:.4f} at weight {best[1]}", flush=True)
    grid = [w / 10 for w in range(11)]
    results = {}
    for depth in (30, 50, 100):
        cached = [arrays(run, depth) for run in runs]
        arms = {}
        for name, kind, second, three in (("two-way (product)", "minmax", "bm25", False),
                                          ("two-way z-score", "zscore", "bm25", False),
                                          ("cosine + first-stage score", "minmax", "first", False),
                                          ("three-way + static dense", "minmax", "bm25", True)):
            best = None
            settings = ([(wr, round(1 - wr - wd, 1), wd) for wr in grid for wd in grid
                         if wr + wd <= 1.0001] if three else [(wr, round(1 - wr, 1), 0.0)
                                                             for wr in grid])
            for weights in settings:
                scores = [ndcg(rank(c, run, weights, kind, second), run.qrels)
                          for c, run in zip(cached, runs, strict=True)]
                mean = sum(scores) / len(scores)
                if best is None or mean > best[0]:
                    best = (mean, weights, scores)
            arms[name] = {"mean": best[0], "weights": best[1],
                          "per_collection": dict(zip([r.name for r in runs], best[2],
                                                     strict=True))}
            print(f"depth {depth:>3}  {name:<28} mean {best[0]:.4f}  weights {best[1]}  "
                  + "  ".join(f"{r.name} {s:.3f}" for r, s in zip(runs, best[2], strict=True)),
                  flush=True)
        results[depth] = arms
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
