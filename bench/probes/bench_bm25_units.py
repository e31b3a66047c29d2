"""BM25 over encoder-sized chunks (a document scores as its best chunk) against BM25 over whole
documents (the chunks joined, overlaps removed), with a model's own chunker, on the shared BEIR
collections.

    python bench/probes/bench_bm25_units.py --model models/quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from semsearch.corpora import ChunkConfig, chunk_documents  # noqa: E402
from semsearch.data.sources import resolve_data_dir  # noqa: E402
from semsearch.encoder.numpy_encoder import NumpyEncoder  # noqa: E402
from semsearch.eval.beir import read_beir  # noqa: E402
from semsearch.eval.metrics import retrieval_scores  # noqa: E402
from semsearch.eval.search_eval import shared_collections  # noqa: E402
from semsearch.index.lexical import LexicalConfig, LexicalIndex, build_lexical, join_chunks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder whose window chunks")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    encoder = NumpyEncoder.load(args.model)
    print(f"| collection | unit ({encoder.max_seq_len}-token chunks) | nDCG@10 | recall@100 |")
    print("|---|---|--:|--:|")
    for folder, split in shared_collections(resolve_data_dir(args.data_dir)):
        collection = read_beir(folder, split)
        ids = list(collection.corpus)
        chunks = chunk_documents([collection.corpus[d] for d in ids], encoder.count_tokens,
                                 ChunkConfig(max_tokens=encoder.max_seq_len, overlap=0.2))
        queries = [q for q in collection.queries if q in collection.qrels]
        for unit in ("chunk", "document"):
            if unit == "chunk":
                pairs, owner = [], []
                for i, pieces in enumerate(chunks):
                    for piece in pieces:
                        pairs.append((len(owner), piece))
                        owner.append(ids[i])
            else:
                pairs = [(i, join_chunks(pieces)) for i, pieces in enumerate(chunks)]
                owner = ids
            with tempfile.TemporaryDirectory() as folder_:
                build_lexical(Path(folder_), pairs)
                index = LexicalIndex(Path(folder_), LexicalConfig())
                rankings = {}
                for q in queries:
                    _, rows = index.search(collection.queries[q], 400)
                    ranked: list[str] = []
                    for row in rows.tolist():
                        doc = owner[row]
                        if doc != q and doc not in ranked:
                            ranked.append(doc)
                    rankings[q] = ranked[:100]
            scores = retrieval_scores(rankings, {q: collection.qrels[q] for q in queries},
                                      ks=(10, 100))
            print(f"| {collection.name} | {unit} | {scores['ndcg@10']:.3f} | "
                  f"{scores['recall@100']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
