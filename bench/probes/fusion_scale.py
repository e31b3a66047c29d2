"""Which fusion of the dense and BM25 sides is best at scale? Each MLQuestions dev query's top
candidates are searched once a side through the real index, then fused offline at every setting
of semsearch.index.fusion (weighted at dense weights 0, 0.1, ..., 1, and RRF) and depth, and
scored: nDCG@10 and recall@100, beside BM25 alone.

    python bench/probes/fusion_scale.py runs/million/index-static-1000000 --json runs/fs.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from semsearch.embedder import load_embedder, model_for_index  # noqa: E402
from semsearch.eval.beir import read_beir  # noqa: E402
from semsearch.eval.metrics import retrieval_scores  # noqa: E402
from semsearch.index import SearchIndex  # noqa: E402
from semsearch.index.fusion import fuse  # noqa: E402
from semsearch.querying import SearchOptions, search  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--depths", default="50,100,200")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    dev = read_beir(Path(args.data_dir) / "beir" / "mlquestions", "dev")
    query_ids = [q for q in dev.queries if q in dev.qrels]
    texts = [dev.queries[q] for q in query_ids]
    opened = SearchIndex.open(Path(args.index))
    embedder = load_embedder(model_for_index(opened.manifest, None), texts=64)
    deepest = max(int(d) for d in args.depths.split(","))
    sides = {}
    for mode in ("dense", "lexical"):
        started = time.perf_counter()
        found = []
        for begin in range(0, len(texts), 64):
            found += search(opened, embedder, texts[begin:begin + 64], deepest,
                            options=SearchOptions(mode=mode))
        sides[mode] = [[(hit.id, hit.score) for hit in hits] for hits in found]
        print(f"{mode}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    rows = []

    def score(name, rankings):
        scores = retrieval_scores(dict(zip(query_ids, rankings, strict=True)), dev.qrels,
                                  ks=(10, 100))
        rows.append({"setting": name, "ndcg@10": round(scores["ndcg@10"], 4),
                     "recall@100": round(scores["recall@100"], 4)})
        print(f"{name:28} {scores['ndcg@10']:.4f} {scores['recall@100']:.4f}")

    for mode in ("lexical", "dense"):
        score(mode, [[doc for doc, _ in hits[:100]] for hits in sides[mode]])
    for depth in (int(d) for d in args.depths.split(",")):
        for weight in [w / 10 for w in range(11)]:
            score(f"weighted {weight:.1f} depth {depth}", [
                [f.doc_id for f in fuse(d[:depth], lx[:depth], "weighted", weight)][:100]
                for d, lx in zip(sides["dense"], sides["lexical"], strict=True)])
        score(f"rrf depth {depth}", [
            [f.doc_id for f in fuse(d[:depth], lx[:depth], "rrf", 0.5)][:100]
            for d, lx in zip(sides["dense"], sides["lexical"], strict=True)])
    if args.json:
        Path(args.json).write_text(json.dumps({"index": args.index, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
