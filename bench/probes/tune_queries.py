"""Which sample queries should the nprobe tuner use? recall@10 against exact search, at a row of
nprobe values, for real questions and for query sets the tuner can make from the corpus alone.

    python bench/probes/tune_queries.py --index runs/wiki704k/index-local-onnx \
        --nprobe 64,96,128,160,192,256,384 --json

Real questions (MLQuestions dev, ArguAna, encoded with the index's model) are what users ask;
the tuner cannot have them, so it needs a stand-in whose recall curve tracks theirs:

- corpus: sampled stored vectors, each one's own row left out (the tuner until now);
- midpoint: the normalised sum of two random stored vectors (a query "between" documents);
- noise S: a stored vector plus a random direction of length S, normalised;
- span: a run of 3-8 words cut at random from a sampled chunk's text, encoded (short, like a
  query, and taken from the corpus alone; the tuner has the encoder at build time): the
  product's own `tuning_queries`.

Also printed per set: the mean cosine of the 1st and 10th exact neighbour (how far from the
corpus the queries sit). The search is the index's own recipe (IVF-PQ candidates re-ranked
exactly), so the figures are those `semsearch query` gets.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for bench_query
from bench_query import read_queries  # noqa: E402

from semsearch.embedder import load_embedder, model_for_index  # noqa: E402
from semsearch.index import recall_at_k  # noqa: E402
from semsearch.index.search_index import SearchIndex, search_with_recipe  # noqa: E402
from semsearch.index.tuning import NO_ROW, _drop_self  # noqa: E402
from semsearch.index_tuning import tuning_queries  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def query_sets(base: np.ndarray, embedder, store, args
               ) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """name -> (queries, the row each one was drawn from, to leave out; None for real text)."""
    rng = np.random.default_rng(args.seed)
    sets: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in args.real:
        texts = read_queries(name, args.queries)
        sets[f"real: {name}"] = (unit(np.asarray(embedder.encode(texts, batch_size=64))), None)
    rows = rng.choice(len(base), args.queries, replace=False)
    sets["corpus (own row left out)"] = (np.ascontiguousarray(base[rows]), rows)
    other = rng.choice(len(base), args.queries, replace=False)
    sets["midpoint of 2"] = (unit(base[rows] + base[other]), None)
    for scale in args.noise:
        direction = unit(rng.standard_normal(base[rows].shape).astype(np.float32))
        sets[f"noise {scale:g}"] = (unit(base[rows] + scale * direction), rows)
    spans = tuning_queries(store, embedder, np.arange(len(base), dtype=np.int64),
                           args.queries, args.seed)  # what `semsearch index` now tunes on
    sets["span of 3-8 words (the tuner's)"] = (spans.vectors, spans.own)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True,
                        help="an IVF index folder that keeps its re-rank vectors (vectors.f32)")
    parser.add_argument("--real", nargs="+", default=["beir/mlquestions", "beir/arguana"],
                        help="BEIR folders under the data folder, or text files of queries")
    parser.add_argument("--queries", type=int, default=1000, help="queries a set")
    parser.add_argument("--noise", type=float, nargs="*", default=[0.5, 0.75, 1.0])
    parser.add_argument("--nprobe", default="64,96,128,160,192,256,384")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    k, probes = args.k, [int(p) for p in args.nprobe.split(",")]

    opened = SearchIndex.open(args.index)
    if opened.vectors is None or faiss.try_extract_index_ivf(opened.index) is None:
        sys.exit(f"{args.index} is not an IVF index with re-rank vectors")
    base = opened.vectors.read(0, len(opened.vectors))
    embedder = load_embedder(model_for_index(opened.manifest, None))
    exact = faiss.IndexFlatIP(base.shape[1])
    exact.add(base)
    print(f"{len(base):,} vectors, recipe {opened.recipe.factory} (tuned nprobe "
          f"{opened.recipe.nprobe}), {args.queries} queries a set, recall@{k}")
    print("| queries | cos 1st | cos 10th | " + " | ".join(f"nprobe {p}" for p in probes) + " |")
    print("|---|--:|--:|" + "--:|" * len(probes))
    rows = []
    for name, (queries, own) in query_sets(base, embedder, opened.store, args).items():
        own = own if own is not None else np.full(len(queries), NO_ROW)
        scores, found = exact.search(queries, k + 1)
        truth = _drop_self(found, own, k)
        kept = np.array([s[ids != drop][:k] for s, ids, drop in zip(scores, found, own,
                                                                    strict=True)])
        row = {"queries": name, "cos_1st": float(kept[:, 0].mean()),
               "cos_kth": float(kept[:, k - 1].mean()), "recall": {}}
        for nprobe in probes:
            recipe = replace(opened.recipe, nprobe=nprobe)
            _, got = search_with_recipe(opened.index, recipe, opened.vectors, queries, k + 1)
            row["recall"][nprobe] = recall_at_k(_drop_self(got, own, k), truth, k)
        rows.append(row)
        print(f"| {name} | {row['cos_1st']:.3f} | {row['cos_kth']:.3f} | "
              + " | ".join(f"{row['recall'][p]:.3f}" for p in probes) + " |", flush=True)
    opened.close()
    if args.json:
        print(json.dumps({"index": str(args.index), "vectors": len(base), "k": k,
                          "queries": args.queries, "rows": rows}))


if __name__ == "__main__":
    main()
