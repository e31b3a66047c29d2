"""Hard negatives mined with BM25 for pairs that have none, with a margin against false negatives.

For each pair without a negative, the anchor is a BM25 query over the positives of the whole
pool; the best-ranked candidate that is not the pair's own positive, shares no group with it,
and scores at most (1 - margin) x the positive's own BM25 score becomes its hard negative. The
margin is sentence-transformers' `mine_hard_negatives(relative_margin=...)` rule: a candidate
that matches the query about as well as the positive is more likely an unlabelled positive than
a negative, and training against it would teach the wrong thing. A pair whose positive shares
no term with its anchor (BM25 score 0) gets no negative. BM25 comes from `bm25s` (sparse-matrix
BM25, the `mine` extra), not a hand-written scorer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from semsearch.data.records import TrainingPair
from semsearch.errors import ConfigError

NEGATIVE_MINERS = ("", "bm25")


def mine_bm25_negatives(pairs: list[TrainingPair], margin: float = 0.05,
                        candidates: int = 10) -> tuple[list[TrainingPair], int]:
    """`pairs` with a mined negative on each pair that had none (where one passes the margin),
    and how many were mined. Deterministic: BM25 scores, ties broken by corpus order."""
    if not 0.0 <= margin < 1.0:
        raise ConfigError(f"data.negative_margin ({margin}) must be in [0, 1)")
    try:
        import bm25s
    except ImportError:
        raise ConfigError("data.hard_negatives=bm25 needs bm25s; install it with "
                          "`pip install bm25s PyStemmer` or set data.hard_negatives=''") from None
    need = [i for i, pair in enumerate(pairs) if pair.negative is None]
    if not need:
        return list(pairs), 0
    docs = list(dict.fromkeys(pair.positive for pair in pairs))  # unique, in order
    doc_index = {text: i for i, text in enumerate(docs)}
    groups: dict[int, set[str]] = defaultdict(set)  # doc -> the groups it is a positive of
    for pair in pairs:
        groups[doc_index[pair.positive]].add(pair.group or f"text:{pair.positive}")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
    queries = bm25s.tokenize([pairs[i].anchor for i in need], stopwords="en", return_ids=False,
                             show_progress=False)
    k = min(candidates + 1, len(docs))
    found, scores = retriever.retrieve(queries, k=k, show_progress=False, n_threads=1)
    out, mined = list(pairs), 0
    for row, i in enumerate(need):
        pair = pairs[i]
        own = doc_index[pair.positive]
        positive_score = float(retriever.get_scores(queries[row])[own]) if queries[row] else 0.0
        if positive_score <= 0.0:
            continue
        own_group = pair.group or f"text:{pair.positive}"
        for doc, score in zip(found[row], scores[row], strict=True):
            doc = int(doc)
            if doc == own or own_group in groups[doc] or docs[doc] == pair.anchor:
                continue
            if score > (1.0 - margin) * positive_score or score <= 0.0:
                continue
            out[i] = replace(pair, negative=docs[doc])
            mined += 1
            break
    return out, mined


def mine_negatives(pairs: list[TrainingPair], miner: str, margin: float) -> tuple[
        list[TrainingPair], int]:
    """Dispatch on `data.hard_negatives` ("" = none, "bm25")."""
    if miner not in NEGATIVE_MINERS:
        raise ConfigError(f"data.hard_negatives {miner!r} is not one of "
                          f"{', '.join(repr(m) for m in NEGATIVE_MINERS)}")
    if not miner:
        return pairs, 0
    return mine_bm25_negatives(pairs, margin)
