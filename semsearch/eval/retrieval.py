"""Retrieval evaluation: a set of queries, a corpus and relevance judgments, searched exactly.

Any vectors will do as long as rows are L2-normalised (dense numpy from the encoder, or
scipy.sparse from the TF-IDF baseline): the score of a document is its dot product with the query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from semsearch.eval.metrics import retrieval_scores
from semsearch.index.metrics import top_k_indices


@dataclass(frozen=True)
class RetrievalSet:
    """Queries and corpus as {id: text}, qrels as {query id: {doc id: grade}} (grade > 0 is
    relevant) — the BEIR layout in memory."""

    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]


def snli_retrieval_set(pairs: Sequence, name: str = "snli_test") -> RetrievalSet:
    """Each distinct premise with an entailed hypothesis is a query; the corpus is every distinct
    entailed hypothesis; a hypothesis is relevant to each premise that entails it.

    `pairs` are objects with `premise`, `hypothesis` and `label` (as `load_snli` returns).
    """
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for pair in pairs:
        if pair.label != "entailment":
            continue
        query_id = queries.setdefault(pair.premise, f"q{len(queries)}")
        doc_id = corpus.setdefault(pair.hypothesis, f"d{len(corpus)}")
        qrels.setdefault(query_id, {})[doc_id] = 1
    return RetrievalSet(
        name=name,
        queries={i: text for text, i in queries.items()},
        corpus={i: text for text, i in corpus.items()},
        qrels=qrels,
    )


def search(query_vectors, corpus_vectors, k: int, max_scores: int = 1 << 25) -> np.ndarray:
    """Exact top-k by dot product: (queries, k) row indices into the corpus, best first.

    Queries go in chunks of at most `max_scores` scores (32M: about 256 MB as float64)."""
    chunk = max(1, min(1024, max_scores // max(corpus_vectors.shape[0], 1)))
    results = []
    for start in range(0, query_vectors.shape[0], chunk):
        scores = query_vectors[start : start + chunk] @ corpus_vectors.T  # (chunk, corpus)
        if hasattr(scores, "toarray"):  # scipy.sparse product
            scores = scores.toarray()
        results.append(top_k_indices(np.asarray(scores), k))
    if not results:
        return np.empty((0, min(k, corpus_vectors.shape[0])), dtype=np.int64)
    return np.concatenate(results)


def evaluate_retrieval(
    retrieval_set: RetrievalSet,
    embed: Callable[[list[str]], object],
    ks: Sequence[int] = (1, 10),
) -> dict[str, float]:
    """recall@k, MRR@k and nDCG@k of `embed` on `retrieval_set`, plus query and corpus counts.

    `embed` maps a list of texts to L2-normalised rows; it sees queries and corpus in one call
    (so a baseline that fits on its input, like TF-IDF, fits on both).
    """
    query_ids = [q for q in retrieval_set.queries if q in retrieval_set.qrels]
    doc_ids = list(retrieval_set.corpus)
    texts = [retrieval_set.queries[q] for q in query_ids] + [retrieval_set.corpus[d] for d in doc_ids]
    vectors = embed(texts)
    top = search(vectors[: len(query_ids)], vectors[len(query_ids) :], k=max(ks))
    rankings = {q: [doc_ids[i] for i in row] for q, row in zip(query_ids, top, strict=True)}
    scores = retrieval_scores(rankings, {q: retrieval_set.qrels[q] for q in query_ids}, ks)
    scores["corpus"] = len(doc_ids)
    return scores
