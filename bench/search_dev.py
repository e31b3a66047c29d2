"""The figures presets are chosen on: STS-B dev and dense retrieval on the dev collections.

For each model folder: STS-B dev Spearman x100; dense nDCG@10 and recall@10 on MLQuestions dev
(qrels/dev.tsv) and ArguAna (qrels/test.tsv, its only split; a hit whose id equals the query's id
is dropped, as BEIR scores it, since ArguAna's queries are in its corpus); the guide's
programming pair's cosine; encoding seconds. Exact search over every document (no index), so
the figure is the encoder's alone. Prints a table, then one JSON line per model.

    python bench/search_dev.py /work/main/models/quick models/quick-passages
    python bench/search_dev.py models/quick --limit 300   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SETS = {"mlquestions": "dev", "arguana": "test"}


def score_model(model_dir: str, data_dir: Path, limit: int | None, batch_size: int,
                sets: tuple[str, ...] = tuple(SETS)) -> dict:
    from semsearch.data import load_stsb
    from semsearch.encoder import SentenceEncoder
    from semsearch.eval.beir import read_beir
    from semsearch.eval.metrics import retrieval_scores, spearman
    from semsearch.index.metrics import top_k_indices

    encoder = SentenceEncoder.load(model_dir, device="cpu")
    started = time.perf_counter()
    rows = load_stsb("dev", data_dir)[:limit]
    a = encoder.encode([r.sentence1 for r in rows], batch_size=batch_size)
    b = encoder.encode([r.sentence2 for r in rows], batch_size=batch_size)
    result = {"model": str(model_dir),
              "stsb_dev": spearman((a * b).sum(1), [r.score for r in rows])}
    pair = encoder.encode(["I love programming", "I enjoy coding"])
    result["programming_pair"] = float(pair[0] @ pair[1])
    for name in sets:
        data = read_beir(data_dir / "beir" / name, SETS[name])
        query_ids = [q for q in data.queries if q in data.qrels][:limit]
        doc_ids = list(data.corpus)
        queries = encoder.encode([data.queries[q] for q in query_ids], batch_size=batch_size)
        docs = encoder.encode([data.corpus[d] for d in doc_ids], batch_size=batch_size)
        top = top_k_indices(queries @ docs.T, 11)  # (queries, 11): room for a dropped self-hit
        rankings = {q: [doc_ids[i] for i in row if doc_ids[i] != q][:10]
                    for q, row in zip(query_ids, top, strict=True)}
        scores = retrieval_scores(rankings, {q: data.qrels[q] for q in query_ids}, (10,))
        result[f"{name}_ndcg@10"] = scores["ndcg@10"]
        result[f"{name}_recall@10"] = scores["recall@10"]
        result[f"{name}_queries"] = scores["queries"]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model folders")
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--limit", type=int, default=None, help="first N pairs / queries only")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    args = parser.parse_args(argv)
    sets = tuple(s for s in args.sets.split(",") if s)
    results = [score_model(m, Path(args.data_dir), args.limit, args.batch_size, sets)
               for m in args.models]
    header = ("model", "STS-B dev", "MLQ dev nDCG@10", "ArguAna nDCG@10", "prog. pair", "s")
    print(" | ".join(header))
    for r in results:
        print(" | ".join([Path(r["model"]).name, f"{r['stsb_dev']:.2f}",
                          f"{r.get('mlquestions_ndcg@10', float('nan')):.3f}",
                          f"{r.get('arguana_ndcg@10', float('nan')):.3f}",
                          f"{r['programming_pair']:.2f}", f"{r['seconds']:.0f}"]))
    for r in results:
        print(json.dumps(r | {"limit": args.limit, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                          time.gmtime())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
