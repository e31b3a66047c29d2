"""Lexical search against brute force: for any query and small corpus, the hits of the saved
BM25 index are the documents a direct BM25 (bm25s' Lucene variant: the same k1, b, stemmer and
stopwords, over the same tokens) scores highest, with the same scores."""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("bm25s")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from semsearch.index.lexical import LexicalConfig, LexicalIndex, tokenize  # noqa: E402
from semsearch.index.lexical_terms import build_lexical  # noqa: E402

# a small vocabulary, so documents share words: stems (run / running / runs), stopwords,
# punctuation, one-letter words (not tokens), case, accents; and now and then any text
WORDS = st.sampled_from(["run", "running", "runs", "Runner", "cat", "cats", "the", "and", "of",
                         "what", "ocean", "tide", "tides", "café", "CAFE", "a", "x", "!!", "--",
                         "naïve", "data-set", "3d", "42", "über"])
WORD = st.one_of(WORDS, WORDS, WORDS, st.text(min_size=1, max_size=8))
TEXT = st.lists(WORD, max_size=15).map(" ".join)
CONFIGS = st.builds(LexicalConfig, k1=st.sampled_from([1.2, 0.9, 1.5, 0.0]),
                    b=st.sampled_from([0.75, 0.4, 0.0, 1.0]),
                    stopwords=st.sampled_from(["nltk-english", "none"]),
                    stemmer=st.sampled_from(["english", ""]))


def brute_force(texts: list[str], query: str, config: LexicalConfig) -> np.ndarray:
    """Every document's BM25 (Lucene variant) score for `query`, straight from the formula."""
    documents = [Counter(tokens) for tokens in tokenize(texts, config)]
    lengths = [sum(counts.values()) for counts in documents]
    average = sum(lengths) / len(lengths)
    scores = np.zeros(len(texts))
    for token in tokenize([query], config)[0]:  # a repeated query word counts again
        df = sum(token in counts for counts in documents)
        if df == 0:
            continue
        idf = math.log(1 + (len(texts) - df + 0.5) / (df + 0.5))
        for row, counts in enumerate(documents):
            tf = counts[token]
            norm = config.k1 * (1 - config.b + config.b * lengths[row] / average)
            scores[row] += idf * tf / (norm + tf) if tf else 0.0
    return scores


@given(texts=st.lists(TEXT, min_size=1, max_size=12), query=TEXT, k=st.integers(1, 12),
       config=CONFIGS)
def test_hits_equal_a_brute_force_bm25_over_the_same_tokens(texts, query, k, config):
    rows = [10 * i + 3 for i in range(len(texts))]  # row ids need not be positions
    with tempfile.TemporaryDirectory() as folder:
        build_lexical(Path(folder), zip(rows, texts, strict=True), config)
        index = LexicalIndex(Path(folder), config)
        scores, found = index.search(query, k)
    expected = brute_force(texts, query, config)
    positive = np.flatnonzero(expected > 1e-6)
    best = np.sort(expected[positive])[::-1][:k]
    assert len(found) == len(best), (scores, best)
    assert np.allclose(scores, best, rtol=1e-4, atol=1e-5)
    by_row = dict(zip(rows, expected, strict=True))
    for row, score in zip(found.tolist(), scores.tolist(), strict=True):
        assert math.isclose(by_row[row], score, rel_tol=1e-4, abs_tol=1e-5)
