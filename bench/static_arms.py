"""Static-model recipes side by side: each arm a `semsearch distill` (or `train --preset static`)
with some settings changed, scored by dense nDCG@10 (exact search) on MLQuestions dev and
ArguAna, with its fit time. The teacher's vectors come from the cache the first distill filled
(same texts, same teacher), so an arm costs its fit alone.

    python bench/static_arms.py --teacher models/minilm --arm base --arm hidden=384 \
        --arm loss=infonce --json runs/static-arms.json
    python bench/static_arms.py --scratch --arm epochs=4 --arm batch_size=2048

An arm is `name` (the defaults) or comma-separated settings (`hidden=384,epochs=8`); with
--scratch the arms train from scratch on the static pair mixture instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", default="models/minilm")
    parser.add_argument("--arm", action="append", default=[], help="settings of one arm")
    parser.add_argument("--scratch", action="store_true", help="from scratch, no teacher")
    parser.add_argument("--wiki", action="append", default=None)
    parser.add_argument("--corpus", action="append", default=[])
    parser.add_argument("--out", default="runs/static-arms")
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--heldout", default="beir/arguana", metavar="FOLDER",
                        help="a BEIR corpus the fit text does not hold: how closely each arm's "
                        "similarities follow the teacher's on its documents (how much of the "
                        "teacher survives where the fit text never went; 'none' skips it)")
    parser.add_argument("--collection", action="append", default=[], metavar="FOLDER:SPLIT",
                        help="also score dense nDCG@10 (exact) on this BEIR folder, e.g. the "
                        "code-search stand-in of bench/probes/code_collection.py")
    parser.add_argument("--reference", action="append", default=[], metavar="MODEL",
                        help="score these models on the --collection folders too (no fit)")
    args = parser.parse_args(argv)

    from search_dev import score_model

    from semsearch.data.unlabelled import DEFAULT_TEXT, gather
    from semsearch.encoder.static_train import (
        SCRATCH_DEFAULTS,
        STATIC_SOURCES,
        StaticTrainConfig,
        distill_static,
        train_static,
    )
    from semsearch.encoder.store import read_config, resolve_model
    from semsearch.encoder.tokenizer import Tokenizer

    data_dir = Path(args.data_dir)
    texts = counts = None
    if not args.scratch:
        teacher = resolve_model(args.teacher).resolve()
        tokenizer = Tokenizer.load(teacher / "tokenizer.json")
        window = int(read_config(teacher)["model"]["max_seq_len"])
        texts, counts = gather(args.wiki or DEFAULT_TEXT, [], args.corpus, data_dir,
                               lambda b: [len(i) for i in tokenizer.encode(b)], window)
        from semsearch.encoder.teacher import teacher_vectors

        vectors, _ = teacher_vectors(teacher, texts, lambda m: print(m, file=sys.stderr))
        first = counts[next(iter(counts))]  # texts of the first source come first
    heldout = heldout_vectors = None
    if not args.scratch and args.heldout != "none":
        from semsearch.eval.beir import read_beir

        corpus = read_beir(data_dir / args.heldout, "test").corpus
        heldout = list(corpus.values())[:2000]
        heldout_vectors, _ = teacher_vectors(teacher, heldout, lambda m: print(m, file=sys.stderr))
        heldout_vectors /= np.linalg.norm(heldout_vectors, axis=1, keepdims=True)
    rows = []
    for arm in args.arm or ["base"]:
        settings = dict(s.split("=", 1) for s in arm.split(",") if "=" in s)
        # texts=first|rest|N: the arm fits on the first source's texts, the others', or every
        # Nth text (teacher vectors from the same cache)
        subset = settings.pop("texts", "all")
        rows_used = (np.arange(first) if subset == "first" else
                     np.arange(first, len(texts)) if subset == "rest" else
                     np.arange(0, len(texts), int(subset)) if subset.isdigit() else
                     np.arange(len(texts))) if texts is not None else None
        config = StaticTrainConfig.with_overrides(
            (SCRATCH_DEFAULTS if args.scratch else {}) | settings)
        out = Path(args.out) / (arm.replace("=", "-").replace(",", "_") or "base")
        started = time.perf_counter()
        if args.scratch:
            summary = train_static(out, config, STATIC_SOURCES, data_dir, overwrite=True,
                                   progress=False, log=lambda m: print(m, file=sys.stderr))
        else:
            summary = distill_static(teacher, out, config, [texts[i] for i in rows_used],
                                     {"subset": subset, **counts}, overwrite=True,
                                     progress=False, log=lambda m: print(m, file=sys.stderr),
                                     vectors=vectors[rows_used])
        seconds = time.perf_counter() - started
        scores = score_model(str(out), data_dir, None, 256)
        agreement = None
        if heldout is not None:
            agreement = heldout_agreement(out, teacher, heldout, heldout_vectors)
        extra = {Path(spec.partition(":")[0]).name: round(dense_ndcg(out, spec), 4)
                 for spec in args.collection}
        row = {"arm": arm, "seconds": round(seconds, 1), "heldout_cosine": agreement,
               "collections": extra,
               "mlquestions": round(scores["mlquestions_ndcg@10"], 4),
               "arguana": round(scores["arguana_ndcg@10"], 4),
               "stsb_dev": round(scores["stsb_dev"], 2),
               "history": summary["history"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for model in args.reference:
        rows.append({"arm": f"reference {model}", "seconds": 0, "heldout_cosine": None,
                     "mlquestions": float("nan"), "arguana": float("nan"),
                     "stsb_dev": float("nan"),
                     "collections": {Path(spec.partition(":")[0]).name: round(
                         dense_ndcg(Path(model), spec), 4) for spec in args.collection}})
    names = [Path(spec.partition(":")[0]).name for spec in args.collection]
    print(f"\n{'arm':36} {'fit s':>7} {'MLQ dev':>8} {'ArguAna':>8} {'STS-B dev':>9} "
          f"{'held-out r':>12}" + "".join(f" {name[:12]:>12}" for name in names))
    for row in rows:
        held = "-" if row["heldout_cosine"] is None else f"{row['heldout_cosine']:.4f}"
        print(f"{row['arm']:36} {row['seconds']:>7.0f} {row['mlquestions']:>8.3f} "
              f"{row['arguana']:>8.3f} {row['stsb_dev']:>9.2f} {held:>12}"
              + "".join(f" {row['collections'].get(name, float('nan')):>12.3f}"
                        for name in names))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def dense_ndcg(model_dir: Path, spec: str) -> float:
    """Dense nDCG@10 of a model folder (or m2v:PATH, a Model2Vec model) on a BEIR folder
    (FOLDER:SPLIT), exact search over every document."""
    from semsearch.eval.beir import read_beir
    from semsearch.eval.metrics import retrieval_scores
    from semsearch.index.metrics import top_k_indices

    folder, _, split = spec.partition(":")
    collection = read_beir(Path(folder), split or "test")
    ids = list(collection.corpus)
    query_ids = [q for q in collection.queries if q in collection.qrels]
    name = str(model_dir)
    if name.startswith("m2v:"):
        from model2vec import StaticModel

        model = StaticModel.from_pretrained(name[4:])
        docs = model.encode([collection.corpus[d] for d in ids])
        queries = model.encode([collection.queries[q] for q in query_ids])
        docs /= np.linalg.norm(docs, axis=1, keepdims=True) + 1e-12
        queries /= np.linalg.norm(queries, axis=1, keepdims=True) + 1e-12
    else:
        from semsearch.embedder import load_embedder

        encoder = load_embedder(model_dir)
        docs = encoder.encode([collection.corpus[d] for d in ids])
        queries = encoder.encode([collection.queries[q] for q in query_ids])
    top = top_k_indices(queries @ docs.T, 100)
    rankings = {q: [ids[i] for i in row if ids[i] != q]
                for q, row in zip(query_ids, top, strict=True)}
    return retrieval_scores(rankings, collection.qrels, ks=(10, 100))["ndcg@10"]


def heldout_agreement(model_dir: Path, teacher: Path, texts: list[str],
                      teacher_vectors: np.ndarray) -> float:
    """How closely the student's similarities follow the teacher's on `texts`: the Pearson
    correlation of the two models' pairwise cosines over 500 of them (the student lives in
    the teacher's centred principal axes, so its vectors are compared by the similarities
    they give, not directly)."""
    from semsearch.embedder import load_embedder

    student = load_embedder(model_dir)
    vectors = student.encode(texts)
    pick = np.random.default_rng(0).choice(len(texts), size=min(500, len(texts)),
                                           replace=False)
    a = (vectors[pick] @ vectors[pick].T)[np.triu_indices(len(pick), 1)]
    b = (teacher_vectors[pick] @ teacher_vectors[pick].T)[np.triu_indices(len(pick), 1)]
    return float(np.corrcoef(a, b)[0, 1])


if __name__ == "__main__":
    raise SystemExit(main())
