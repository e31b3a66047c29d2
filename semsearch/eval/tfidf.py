"""A TF-IDF cosine baseline in numpy and scipy.sparse: the number a trained encoder must beat.

Tokens are lowercase runs of letters and digits (apostrophes kept inside words); term frequency
is sublinear (1 + log tf); idf is smoothed, log((1 + n) / (1 + df)) + 1, as scikit-learn does;
rows are L2-normalised, so a dot product is a cosine. The baseline fits its idf on the very
sentences it scores, which needs no training data and is what the usual STS-B figure (about 69
Spearman on test) is measured with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy import sparse

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens.

    >>> tokenize("A man's GUITAR, 2 strings!")
    ['a', "man's", 'guitar', '2', 'strings']
    """
    return TOKEN.findall(text.lower())


class Tfidf:
    """TF-IDF vectors: `fit` learns a vocabulary and idf, `transform` gives L2-normalised rows."""

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self.idf = np.empty(0, dtype=np.float64)

    def fit(self, texts: Sequence[str]) -> Tfidf:
        """Learn the vocabulary and idf from `texts`; returns self."""
        documents = [set(tokenize(text)) for text in texts]
        self.vocabulary = {term: i for i, term in enumerate(sorted(set().union(*documents)))}
        df = np.zeros(len(self.vocabulary), dtype=np.float64)
        for terms in documents:
            df[[self.vocabulary[t] for t in terms]] += 1
        self.idf = np.log((1 + len(documents)) / (1 + df)) + 1.0
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """A (len(texts), vocabulary) CSR matrix of L2-normalised TF-IDF rows; unknown words are
        dropped, and a text with no known word is an all-zero row (cosine 0 with anything)."""
        rows, cols, counts = [], [], []
        for row, text in enumerate(texts):
            terms, tf = np.unique(
                [self.vocabulary[t] for t in tokenize(text) if t in self.vocabulary],
                return_counts=True,
            )
            rows.extend([row] * len(terms))
            cols.extend(terms.tolist())
            counts.extend(tf.tolist())
        values = (1.0 + np.log(np.asarray(counts, dtype=np.float64))) * self.idf[
            np.asarray(cols, dtype=np.int64)
        ]
        matrix = sparse.csr_matrix(
            (values, (rows, cols)), shape=(len(texts), len(self.vocabulary)), dtype=np.float64
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix)


def tfidf_vectors(texts: Sequence[str]) -> sparse.csr_matrix:
    """Fit TF-IDF on `texts` and return their vectors: the baseline's whole "encoder"."""
    return Tfidf().fit(texts).transform(texts)
