"""The BM25 index built from term counts: tokenise documents a batch at a time (in any process),
gather their term counts, and write bm25s' score matrix from them with numpy.

Why not `bm25s.BM25.index`: it scores a document at a time in a Python loop (a Counter and a few
small numpy operations each), which cannot be split across processes nor updated: an --append or
a remove had to tokenise every document again. Here a batch's tokens become counts in one
`np.unique`, batches can be tokenised in worker processes, and the counts are kept beside the
index (`terms.*.npy`), so an append tokenises only the new documents and a remove none, then
rescores the whole matrix with numpy in a few seconds at a million documents. The files and the
scores are bm25s' own (its Lucene variant, float32 to the bit: a test loads them with bm25s).

    batch = tokenize_counts(texts, config)        # anywhere: pure, picklable result
    terms = TermCounts.empty()
    terms.add(rows, batch)                        # in the process that writes the index
    write_lexical_files(folder, terms, config)    # bm25s' files, the row map, the counts
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semsearch.index.lexical import (
    LEXICAL_DIR,
    ROWS_FILE,
    STOPWORDS,
    TOKEN_PATTERN,
    VOCAB_IDS,
    VOCAB_TOKENS,
    LexicalConfig,
    _stemmer,
)

# the term counts kept beside the index for incremental updates: one row a document (in the
# order of rows.npy), CSR over the vocabulary ids of vocab_ids.npy
TERMS_INDPTR = "terms.indptr.npy"
TERMS_IDS = "terms.ids.npy"
TERMS_COUNTS = "terms.counts.npy"
TERMS_LENGTHS = "terms.lengths.npy"
TERM_FILES = (TERMS_INDPTR, TERMS_IDS, TERMS_COUNTS, TERMS_LENGTHS)
# (document, term) pairs scored at a time (float64 while computed: 4M pairs hold ~130 MB)
SCORE_BLOCK = 4 * 1024 * 1024
# bm25s' settings file, as BM25.save writes it (BM25.load reads these keys)
PARAMS = "params.index.json"


@dataclass
class Tokenized:
    """A batch of documents as term counts over the batch's own vocabulary `words`: document i
    holds terms[indptr[i]:indptr[i+1]] (ids into `words`) with those counts, and `lengths[i]`
    tokens in all (stopwords left out, repeats counted), as bm25s counts a document's length."""

    words: list[str]
    lengths: np.ndarray  # int64 (documents,)
    indptr: np.ndarray  # int64 (documents + 1,)
    terms: np.ndarray  # int32 (pairs,)
    counts: np.ndarray  # int32 (pairs,)


def tokenize_counts(texts: Sequence[str], config: LexicalConfig) -> Tokenized:
    """Each text's stemmed, lower-cased, non-stopword tokens (`lexical.tokenize`'s, stemming
    each distinct word once) as counts.

    >>> t = tokenize_counts(["the cat sat", "Cats, cats!"], LexicalConfig())
    >>> t.words, t.lengths.tolist(), t.terms.tolist(), t.counts.tolist()
    (['cat', 'sat'], [2, 2], [0, 1, 0], [1, 1, 2])
    """
    stopwords = STOPWORDS[config.stopwords]
    findall = TOKEN_PATTERN.findall
    word_ids: dict[str, int] = {}
    flat: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for position, text in enumerate(texts):
        before = len(flat)
        for token in findall(text.lower()):
            if token not in stopwords:
                found = word_ids.get(token)
                if found is None:
                    found = word_ids[token] = len(word_ids)
                flat.append(found)
        lengths[position] = len(flat) - before
    words = list(word_ids)
    stemmer = _stemmer(config.stemmer)
    stems = stemmer.stemWords(words) if stemmer is not None and words else words
    stem_ids: dict[str, int] = {}
    word_to_stem = np.fromiter((stem_ids.setdefault(s, len(stem_ids)) for s in stems),
                               dtype=np.int64, count=len(stems))
    ids = word_to_stem[np.asarray(flat, dtype=np.int64)] if flat else np.zeros(0, np.int64)
    documents = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    vocabulary = max(1, len(stem_ids))
    pairs, counts = np.unique(documents * vocabulary + ids, return_counts=True)
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pairs // vocabulary, minlength=len(texts)), out=indptr[1:])
    return Tokenized(list(stem_ids), lengths, indptr, (pairs % vocabulary).astype(np.int32),
                     counts.astype(np.int32))


class TermCounts:
    """Every document's term counts over one growing vocabulary: what the BM25 matrix is
    computed from. Batches are added in row order; `vocabulary[id]` is a term's text."""

    def __init__(self, rows: np.ndarray, lengths: np.ndarray, indptr: np.ndarray,
                 terms: np.ndarray, counts: np.ndarray, vocabulary: list[str]) -> None:
        self.vocabulary = vocabulary
        self.ids = {word: i for i, word in enumerate(vocabulary)}
        # finished arrays, and the batches added since they were last joined
        self._rows, self._lengths, self._indptr = [rows], [lengths], [indptr[1:]]
        self._terms, self._counts = [terms], [counts]
        self._pairs = int(indptr[-1])

    @classmethod
    def empty(cls) -> TermCounts:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64),
                   np.zeros(0, np.int32), np.zeros(0, np.int32), [])

    def add(self, rows: Sequence[int] | np.ndarray, batch: Tokenized) -> None:
        """Append a tokenised batch, document i of it under row id rows[i]."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) != len(batch.lengths):
            raise ValueError(f"{len(rows)} rows for {len(batch.lengths)} documents")
        ids, vocabulary = self.ids, self.vocabulary
        mapping = np.empty(len(batch.words), dtype=np.int32)
        for position, word in enumerate(batch.words):
            found = ids.get(word)
            if found is None:
                found = ids[word] = len(vocabulary)
                vocabulary.append(word)
            mapping[position] = found
        self._rows.append(rows)
        self._lengths.append(np.asarray(batch.lengths, dtype=np.int64))
        self._indptr.append(batch.indptr[1:] + self._pairs)
        self._terms.append(mapping[batch.terms] if len(batch.terms) else batch.terms)
        self._counts.append(batch.counts)
        self._pairs += int(batch.indptr[-1])

    def _join(self) -> None:
        if len(self._rows) > 1:
            for name in ("_rows", "_lengths", "_indptr", "_terms", "_counts"):
                parts = getattr(self, name)
                setattr(self, name, [np.concatenate(parts)])

    @property
    def rows(self) -> np.ndarray:
        self._join()
        return self._rows[0]

    @property
    def lengths(self) -> np.ndarray:
        self._join()
        return self._lengths[0]

    @property
    def indptr(self) -> np.ndarray:
        self._join()
        return np.concatenate([[0], self._indptr[0]]).astype(np.int64)

    @property
    def terms(self) -> np.ndarray:
        self._join()
        return self._terms[0]

    @property
    def counts(self) -> np.ndarray:
        self._join()
        return self._counts[0]

    def __len__(self) -> int:
        return sum(len(part) for part in self._rows)

    def mark(self) -> tuple[int, int]:
        """(documents, vocabulary size) now: where a later `segment` starts."""
        return len(self), len(self.vocabulary)

    def segment(self, since: tuple[int, int]) -> dict[str, np.ndarray]:
        """The documents and words added since the mark `since`, as arrays (np.savez's):
        what a resumed build adds back with `add_segment`."""
        documents, words = since
        indptr = self.indptr
        start = int(indptr[documents])
        return {"rows": self.rows[documents:], "lengths": self.lengths[documents:],
                "indptr": indptr[documents:] - start, "terms": self.terms[start:],
                "counts": self.counts[start:],
                "words": np.array(self.vocabulary[words:], dtype=str)}

    def add_segment(self, segment) -> None:
        """Add back a `segment` (its term ids are this vocabulary's, extended by its words)."""
        for word in segment["words"].tolist():
            self.ids[word] = len(self.vocabulary)
            self.vocabulary.append(word)
        indptr = np.asarray(segment["indptr"], dtype=np.int64)
        self._rows.append(np.asarray(segment["rows"], dtype=np.int64))
        self._lengths.append(np.asarray(segment["lengths"], dtype=np.int64))
        self._indptr.append(indptr[1:] + self._pairs)
        self._terms.append(np.asarray(segment["terms"], dtype=np.int32))
        self._counts.append(np.asarray(segment["counts"], dtype=np.int32))
        self._pairs += int(indptr[-1])

    def without_rows(self, removed: np.ndarray) -> TermCounts:
        """A copy without the documents whose row id is in `removed` (the vocabulary kept)."""
        keep = ~np.isin(self.rows, np.asarray(removed, dtype=np.int64))
        indptr = self.indptr
        sizes = np.diff(indptr)
        pair_keep = np.repeat(keep, sizes)
        new_indptr = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
        np.cumsum(sizes[keep], out=new_indptr[1:])
        return TermCounts(self.rows[keep], self.lengths[keep], new_indptr,
                          self.terms[pair_keep], self.counts[pair_keep], list(self.vocabulary))

    # --- saved beside the index ------------------------------------------------------------

    def save(self, target: Path) -> None:
        """The counts into target (the lexical folder); rows.npy and the vocabulary are
        written by `write_lexical_files`."""
        counts = self.counts
        small = counts.max(initial=0) < np.iinfo(np.uint16).max
        for name, array in ((TERMS_INDPTR, self.indptr), (TERMS_IDS, self.terms),
                            (TERMS_COUNTS, counts.astype(np.uint16) if small else counts),
                            (TERMS_LENGTHS, self.lengths)):
            np.save(target / name, array, allow_pickle=False)

    @classmethod
    def load(cls, target: Path) -> TermCounts | None:
        """The counts saved in a lexical folder, or None when it has none (built before they
        were kept) or they do not match its row map."""
        if not all((target / name).is_file() for name in TERM_FILES):
            return None
        try:
            rows = np.load(target / ROWS_FILE, allow_pickle=False)
            indptr, terms, counts, lengths = (np.load(target / name, allow_pickle=False)
                                              for name in TERM_FILES)
            tokens = np.load(target / VOCAB_TOKENS, allow_pickle=False)
            ids = np.load(target / VOCAB_IDS, allow_pickle=False)
        except (OSError, ValueError):
            return None
        if len(indptr) != len(rows) + 1 or len(lengths) != len(rows) or int(indptr[-1]) != len(
                terms) or len(counts) != len(terms):
            return None
        vocabulary = [""] * len(ids)
        for token, i in zip(tokens.tolist(), ids.tolist(), strict=True):
            if 0 <= i < len(vocabulary):
                vocabulary[i] = token
        # the empty token bm25s appends has the last id and no column: not a term
        width = int(terms.max(initial=-1)) + 1
        if vocabulary and vocabulary[-1] == "" and len(vocabulary) > width:
            vocabulary.pop()
        return cls(rows.astype(np.int64), lengths.astype(np.int64), indptr.astype(np.int64),
                   terms.astype(np.int32), counts.astype(np.int32), vocabulary)


def score_matrix(terms: TermCounts, config: LexicalConfig
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bm25s' (data, indices, indptr) CSC score matrix, documents x vocabulary: each entry
    idf(term) * tf / (tf + k1 * (1 - b + b * length / average length)), computed in float64
    and stored as float32 in the order of operations bm25s uses, so every score is bm25s' own."""
    from scipy.sparse import csr_matrix

    documents, width = len(terms), len(terms.vocabulary)
    indptr, ids = terms.indptr, terms.terms
    lengths = terms.lengths
    average = np.array(lengths, dtype=np.int64).mean() if documents else 0.0
    frequencies = np.bincount(ids, minlength=width)
    # bm25s' float32 idf array, with math.log as bm25s (once a distinct frequency)
    distinct, which = np.unique(frequencies, return_inverse=True)
    idf = np.array([math.log(1 + (documents - f + 0.5) / (f + 0.5)) if f else 0.0
                    for f in distinct.tolist()], dtype=np.float32)[which].reshape(-1)
    counts = terms.counts
    per_document = np.repeat(np.arange(documents, dtype=np.int32), np.diff(indptr))
    scores = np.empty(len(ids), dtype=np.float32)
    for start in range(0, len(ids), SCORE_BLOCK):  # float64 a block at a time: bounded memory
        end = min(len(ids), start + SCORE_BLOCK)
        tf = counts[start:end].astype(np.float64)
        length = lengths[per_document[start:end]].astype(np.float64)
        norm = config.k1 * ((1 - config.b) + config.b * length / average) + tf
        scores[start:end] = idf[ids[start:end]].astype(np.float64) * (tf / norm)
    del per_document
    csc = csr_matrix((scores, ids, indptr), shape=(documents, width)).tocsc()
    csc.sort_indices()
    return csc.data.astype(np.float32), csc.indices.astype(np.int32), csc.indptr.astype(np.int64)


def write_lexical_files(folder: Path, terms: TermCounts, config: LexicalConfig) -> int:
    """Write folder/lexical: bm25s' score matrix and settings, the sorted vocabulary, the row
    map and the term counts; returns the documents indexed."""
    target = Path(folder) / LEXICAL_DIR
    target.mkdir(exist_ok=True)
    rows = terms.rows
    if len(rows):
        data, indices, indptr = score_matrix(terms, config)
        for name, array in (("data", data), ("indices", indices), ("indptr", indptr)):
            np.save(target / f"{name}.csc.index.npy", array, allow_pickle=False)
        (target / PARAMS).write_text(json.dumps({
            "k1": config.k1, "b": config.b, "delta": 0.5, "method": config.method,
            "idf_method": config.method, "dtype": "float32", "int_dtype": "int32",
            "num_docs": len(rows), "version": _bm25s_version(), "backend": "numpy",
        }, indent=4), encoding="utf-8")
        # bm25s appends the empty token, with the next id and no column of scores
        vocabulary = list(terms.vocabulary) + ([""] if "" not in terms.ids else [])
        order = sorted(range(len(vocabulary)), key=vocabulary.__getitem__)
        np.save(target / VOCAB_TOKENS, np.array([vocabulary[i] for i in order], dtype=str),
                allow_pickle=False)
        np.save(target / VOCAB_IDS, np.array(order, dtype=np.int64), allow_pickle=False)
        terms.save(target)
    np.save(target / ROWS_FILE, rows, allow_pickle=False)
    return len(rows)


def _bm25s_version() -> str:
    try:
        from importlib.metadata import version

        return version("bm25s")
    except Exception:  # noqa: BLE001 - only recorded in the settings file
        return "unknown"


def build_lexical(folder: Path, rows_and_texts: Iterable[tuple[int, str]],
                  config: LexicalConfig | None = None) -> int:
    """Write the BM25 index of (row id, text) pairs into folder/lexical (one pair a document: its
    first chunk's row and its whole text); returns the number of texts indexed. bm25s' files
    and scores, computed from the term counts above."""
    config = config or LexicalConfig()
    terms = TermCounts.empty()
    rows: list[int] = []
    texts: list[str] = []
    for row, text in rows_and_texts:
        rows.append(int(row))
        texts.append(text)
        if len(texts) >= TOKENIZE_BATCH:
            terms.add(rows, tokenize_counts(texts, config))
            rows, texts = [], []
    if texts:
        terms.add(rows, tokenize_counts(texts, config))
    return write_lexical_files(folder, terms, config)


# documents tokenised at a time when building (bounds the token lists held)
TOKENIZE_BATCH = 16_384
