"""Which BM25 for the lexical side: SQLite FTS5 against bm25s, stopword lists and k1/b, on the
shared BEIR collections (whole documents, title + text, BEIR scoring).

    python bench/probes/bench_bm25.py                    # every engine on both collections
    python bench/probes/bench_bm25.py --engines bm25s    # the quick part (FTS5 on ArguAna takes minutes)

Prints nDCG@10, recall@100, build seconds and milliseconds a query for each row.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from semsearch.data.sources import resolve_data_dir  # noqa: E402
from semsearch.eval.beir import read_beir  # noqa: E402
from semsearch.eval.metrics import retrieval_scores  # noqa: E402
from semsearch.eval.search_eval import shared_collections  # noqa: E402
from semsearch.index.lexical import NLTK_ENGLISH  # noqa: E402

LUCENE_33 = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)
STOPWORDS = {"lucene33": LUCENE_33, "nltk": NLTK_ENGLISH}


def run_fts5(collection, stopwords: frozenset, limit: int | None):
    """SQLite FTS5, porter + unicode61 tokenizer, query terms OR'ed as quoted strings."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(text, "
               "tokenize='porter unicode61 remove_diacritics 2')")
    ids = list(collection.corpus)
    started = time.perf_counter()
    db.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)",
                   [(i, collection.corpus[d]) for i, d in enumerate(ids)])
    build = time.perf_counter() - started
    rankings, started = {}, time.perf_counter()
    queries = [q for q in collection.queries if q in collection.qrels][:limit]
    for q in queries:
        terms = list(dict.fromkeys(t for t in re.findall(r"\w+", collection.queries[q].lower())
                                   if t not in stopwords))
        if not terms:
            rankings[q] = []
            continue
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = db.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY rank LIMIT 101",
                          (match,)).fetchall()
        rankings[q] = [ids[r] for (r,) in rows if ids[r] != q][:100]
    return rankings, build, (time.perf_counter() - started) / max(1, len(queries))


def run_bm25s(collection, stopwords: frozenset, k1: float, b: float, limit: int | None):
    """bm25s (Lucene variant), Snowball English stemmer, as semsearch's lexical index uses it."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = list(collection.corpus)
    started = time.perf_counter()
    tokens = bm25s.tokenize([collection.corpus[d] for d in ids], stopwords=sorted(stopwords),
                            stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
    retriever.index(tokens, show_progress=False)
    build = time.perf_counter() - started
    queries = [q for q in collection.queries if q in collection.qrels][:limit]
    started = time.perf_counter()
    query_tokens = bm25s.tokenize([collection.queries[q] for q in queries],
                                  stopwords=sorted(stopwords), stemmer=stemmer,
                                  show_progress=False)
    found, _ = retriever.retrieve(query_tokens, k=101, show_progress=False, n_threads=1)
    seconds = (time.perf_counter() - started) / max(1, len(queries))
    rankings = {q: [ids[i] for i in row if ids[i] != q][:100]
                for q, row in zip(queries, found, strict=True)}
    return rankings, build, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--engines", default="fts5,bm25s")
    parser.add_argument("--limit", type=int, default=None, help="first N queries")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    engines = args.engines.split(",")
    rows = []
    print("| collection | engine | stopwords | k1 / b | nDCG@10 | recall@100 | build s | ms a query |")
    print("|---|---|---|---|--:|--:|--:|--:|")
    for folder, split in shared_collections(resolve_data_dir(args.data_dir)):
        collection = read_beir(folder, split)
        settings = []
        if "bm25s" in engines:
            settings += [("bm25s", s, k1, b) for s in ("lucene33", "nltk")
                         for k1, b in ((0.9, 0.4), (1.2, 0.75))]
        if "fts5" in engines:
            settings += [("fts5", s, 1.2, 0.75) for s in ("lucene33", "nltk")]
        for engine, stop, k1, b in settings:
            if engine == "fts5":
                rankings, build, seconds = run_fts5(collection, STOPWORDS[stop], args.limit)
            else:
                rankings, build, seconds = run_bm25s(collection, STOPWORDS[stop], k1, b,
                                                     args.limit)
            scores = retrieval_scores(rankings, {q: collection.qrels[q] for q in rankings},
                                      ks=(10, 100))
            row = {"collection": collection.name, "engine": engine, "stopwords": stop, "k1": k1,
                   "b": b, "ndcg@10": scores["ndcg@10"], "recall@100": scores["recall@100"],
                   "build_s": build, "query_ms": 1000 * seconds, "queries": scores["queries"]}
            rows.append(row)
            print(f"| {row['collection']} | {engine} | {stop} | {k1} / {b} | "
                  f"{row['ndcg@10']:.3f} | {row['recall@100']:.3f} | {build:.1f} | "
                  f"{row['query_ms']:.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
