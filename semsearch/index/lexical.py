"""The lexical side of an index folder: BM25 over the same chunks as the vectors, with `bm25s`.

Why bm25s rather than SQLite's FTS5 (measured on the two BEIR collections in ../shared/data, see
docs/results.md, Search history, "Which BM25"): with the same tokens, FTS5 took 540 ms a query
on ArguAna (its queries are whole arguments, ~100 OR'ed terms, and `bm25()` is evaluated per matching row and term) where
bm25s takes 3 ms, and FTS5's `bm25()` cannot change k1 and b. bm25s keeps BM25 as a sparse
matrix of precomputed term scores in three .npy files (no pickle), loaded memory-mapped, so a
query is a sum of a few columns.

Tokens: Unicode word characters (bm25s' default `(?u)\\b\\w\\w+\\b`), lower-cased, NLTK's English
stopwords removed, Snowball English stemming (PyStemmer). NLTK's list drops question words
("what", "how", "which"), which lifted MLQuestions dev from 0.403 to 0.430 nDCG@10 against
Lucene's 33-word list. Queries are tokenised the same way and only ever become token ids, so no
query syntax exists to inject.

The index is written from term counts (semsearch.index.lexical_terms: bm25s' files and scores,
built without bm25s' per-document loop), and the counts are kept beside it, so `--append` and
`remove` rescore from them inside the staging folder (tokenising only the new documents), and
vectors, store and lexical index change together.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from semsearch.errors import IndexError_

LEXICAL_DIR = "lexical"
ROWS_FILE = "rows.npy"  # int64: the FAISS row id of each BM25 document, in BM25 order
# the vocabulary as sorted token strings and their ids: a query looks its few tokens up by binary
# search in the memory map, where loading bm25s' vocab.index.json (a dict of every token of the
# corpus) took most of a query's start-up on 704K sentences
VOCAB_TOKENS = "vocab_tokens.npy"
VOCAB_IDS = "vocab_ids.npy"

# NLTK's English stopword list (nltk.corpus.stopwords.words("english"), the 179-word version
# without apostrophe forms), kept here so the index does not need NLTK's data download.
NLTK_ENGLISH = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his
    himself she her hers herself it its itself they them their theirs themselves what which who
    whom this that these those am is are was were be been being have has had having do does did
    doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now d ll m o re
    ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn
    weren won wouldn""".split()
)
STOPWORDS = {"nltk-english": NLTK_ENGLISH, "none": frozenset()}
# bm25s' default token pattern (scikit-learn's CountVectorizer's): Unicode words of 2+ characters
TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
# the score matrix bm25s saves (BM25.save): precomputed term scores, one CSC column a token
SCORE_FILES = ("data", "indices", "indptr")
# bm25s variants whose score is the sum of the matched columns alone (bm25l and bm25+ add a
# non-occurrence term, which this reader does not)
SUMMED_METHODS = ("lucene", "robertson", "atire")


@dataclass(frozen=True)
class LexicalConfig:
    """How the lexical index scores: saved in the manifest, so queries tokenise the same way."""

    engine: str = "bm25s"
    method: str = "lucene"  # bm25s' BM25 variant (Lucene's idf and length normalisation)
    # k1 1.2, b 0.75 (Lucene's defaults) against bm25s' 1.5 / 0.75 and BEIR's 0.9 / 0.4: on
    # ArguAna 0.9 / 0.4 gives 0.426 nDCG@10 and 1.2 / 0.75 gives 0.501 (MLQuestions 0.435 / 0.430)
    k1: float = 1.2
    b: float = 0.75
    stopwords: str = "nltk-english"
    stemmer: str = "english"  # Snowball stemmer language (PyStemmer), "" for none
    # what BM25 scores: each document whole (its chunks joined, overlaps removed). Scoring the
    # encoder-sized chunks lost points wherever the window is short: over quick's 64-token
    # chunks BM25 gave 0.401 / 0.432 nDCG@10 on MLQuestions dev / ArguAna, whole documents
    # 0.430 / 0.501 (fusion ranks documents anyway)
    unit: str = "document"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LexicalConfig:
        """The settings a manifest recorded, checked by type and value (a damaged manifest is
        refused here, not by the stemmer or the scorer in the middle of a query)."""
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        config = cls(**known)
        numbers_ok = all(
            isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) for value in (config.k1, config.b))
        if (config.engine != "bm25s" or config.unit != "document"
                or not isinstance(config.stopwords, str) or config.stopwords not in STOPWORDS
                or not isinstance(config.method, str) or config.method not in SUMMED_METHODS
                or not isinstance(config.stemmer, str)
                or (config.stemmer and config.stemmer not in _stemmer_languages())
                or not numbers_ok or config.k1 < 0 or not 0 <= config.b <= 1):
            raise IndexError_(
                f"lexical index settings {json.dumps(data)[:200]} are not ones this semsearch "
                "reads; rebuild the index with `semsearch index CORPUS --out DIR`"
            )
        return config


@functools.cache
def _stemmer_languages() -> frozenset[str]:
    import Stemmer

    return frozenset(Stemmer.algorithms())


@functools.lru_cache(maxsize=4)
def _stemmer(language: str):
    if not language:
        return None
    import Stemmer  # PyStemmer: Snowball stemmers in C

    return Stemmer.Stemmer(language)


def tokenize(texts: Sequence[str], config: LexicalConfig) -> list[list[str]]:
    """Each text as its list of stemmed, lower-cased, non-stopword tokens: bm25s' tokenizer
    (`bm25s.tokenize(..., return_ids=False)`, which builds the index) step for step, without
    importing bm25s, so a query process skips its imports (scipy.sparse, tqdm); a test holds the
    two equal on real texts.

    >>> tokenize(["What is the Transformer architecture?"], LexicalConfig())
    [['transform', 'architectur']]
    """
    stopwords = STOPWORDS[config.stopwords]
    stemmer = _stemmer(config.stemmer)
    out = []
    for text in texts:
        tokens = [token for token in TOKEN_PATTERN.findall(text.lower()) if token not in stopwords]
        out.append(stemmer.stemWords(tokens) if stemmer is not None and tokens else tokens)
    return out


def join_chunks(chunks: Sequence[str]) -> str:
    """A document's text again from its overlapping word-window chunks: each chunk's words
    after the longest run that repeats the end of the text so far.

    >>> join_chunks(["a b c d", "c d e f", "e f g"])
    'a b c d e f g'
    >>> join_chunks(["one chunk"])
    'one chunk'
    """
    words = chunks[0].split() if chunks else []
    for chunk in chunks[1:]:
        more = chunk.split()
        overlap = min(len(words), len(more))
        while overlap and words[-overlap:] != more[:overlap]:
            overlap -= 1
        words += more[overlap:]
    return " ".join(words)


class LexicalIndex:
    """A loaded lexical index: BM25 scores of documents for a query, each by the FAISS row id of
    its first chunk."""

    def __init__(self, folder: Path, config: LexicalConfig) -> None:
        self.config = config
        target = Path(folder) / LEXICAL_DIR
        fix = f"rebuild with `semsearch index CORPUS --out {folder}`"
        self.scores: dict[str, np.ndarray] | None = None
        try:
            self.rows = np.load(target / ROWS_FILE, allow_pickle=False, mmap_mode="r")
            if len(self.rows):
                params = json.loads((target / "params.index.json").read_text(encoding="utf-8"))
                if params.get("method") not in SUMMED_METHODS:
                    raise ValueError(f"BM25 method {params.get('method')!r}")
                self.num_docs = int(params["num_docs"])
                self.dtype = np.dtype(params.get("dtype", "float32"))
                # bm25s' saved score matrix, memory-mapped as BM25.load(mmap=True) maps it
                self.scores = {name: np.load(target / f"{name}.csc.index.npy", allow_pickle=False,
                                             mmap_mode="r") for name in SCORE_FILES}
                self.vocab_tokens = np.load(target / VOCAB_TOKENS, allow_pickle=False,
                                            mmap_mode="r")
                self.vocab_ids = np.load(target / VOCAB_IDS, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            raise IndexError_(f"lexical index in {target} is missing or corrupt ({error}); {fix}") from None
        if self.scores is not None and (
            self.num_docs != len(self.rows)
            # one column a token, less bm25s' own "" entry, which no query token can be
            or len(self.scores["indptr"]) < len(self.vocab_ids)
        ):
            raise IndexError_(f"lexical index in {target} does not match its row map; {fix}")

    def __len__(self) -> int:
        return len(self.rows)

    def query_tokens(self, text: str) -> list[str]:
        """The query's searchable tokens (stopwords and punctuation dropped, stemmed), whether
        or not any document has them; empty: the query has nothing to match on."""
        return tokenize([text], self.config)[0]

    def _known(self, text: str) -> list[tuple[str, int]]:
        """(token, id) of each of the query's tokens in the vocabulary, repeats kept (a word
        given twice counts twice, as in Lucene)."""
        if self.scores is None or len(self.vocab_tokens) == 0:
            return []
        tokens = tokenize([text], self.config)[0]
        if not tokens:
            return []
        at = np.searchsorted(self.vocab_tokens, tokens)
        return [
            (token, int(self.vocab_ids[i]))
            for token, i in zip(tokens, at.tolist(), strict=True)
            if i < len(self.vocab_tokens) and self.vocab_tokens[i] == token
        ]

    def scores_of(self, token_ids: Sequence[int]) -> np.ndarray:
        """Every document's BM25 score for these token ids: bm25s' `get_scores_from_ids` (its
        numpy path: the same float32 additions in the same order), reading the saved matrix
        directly. A column names each document once, so a plain fancy-index add does what
        bm25s' `np.add.at` does, several times faster on a common word's long column."""
        data, indices, indptr = (self.scores[name] for name in SCORE_FILES)
        scores = np.zeros(self.num_docs, dtype=self.dtype)
        for token in token_ids:
            start, end = int(indptr[token]), int(indptr[token + 1])
            scores[indices[start:end]] += data[start:end]
        return scores

    def search(self, text: str, k: int, allowed_rows: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The k best documents for a query: (scores, first-chunk row ids), best first; only
        documents with a positive score, and only those whose row is in `allowed_rows`."""
        known = self._known(text)
        if not known:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        scores = self.scores_of([i for _, i in known])
        if allowed_rows is not None:
            scores = np.where(np.isin(self.rows, allowed_rows), scores, 0.0)
        matched = np.flatnonzero(scores > 0)
        if len(matched) > k:
            matched = matched[np.argpartition(-scores[matched], k - 1)[:k]]
        order = matched[np.argsort(-scores[matched], kind="stable")]
        return scores[order].astype(np.float32), np.asarray(self.rows[order], dtype=np.int64)

    def scores_at(self, text: str, rows: Sequence[int]) -> np.ndarray:
        """The query's BM25 score of each document whose first chunk's row is in `rows`
        (float32, in their order): 0 for a document that shares no searchable word with it, or
        a row that is no document's first chunk. What a second phase fuses with: the true score
        of every candidate, not only of those among BM25's own top k."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.float32)
        known = self._known(text)
        if not known or not len(self.rows) or not len(rows):
            return out
        scores = self.scores_of([i for _, i in known])
        # self.rows holds each document's first-chunk row in row order (the store's
        # iter_documents order), so it is sorted
        at = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        found = np.asarray(self.rows[at]) == rows
        out[found] = scores[at[found]]
        return out

