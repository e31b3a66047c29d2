"""Token ids of texts a word at a time, from a cache: the ids a BERT WordPiece `tokenizers`
tokenizer gives, for a static model that only sums its token rows.

Why: a static model's encode is a table lookup, and `tokenizers` was nine tenths of it (185 us a
document of 100 tokens on one core: it normalises, splits and runs WordPiece on every word of
every text, and builds an Encoding with offsets for each). A corpus repeats its words, so each
distinct word goes through the tokenizer once and is looked up after that.

Exact, and used only where it is: the tokenizer is BERT's (BertNormalizer, BertPreTokenizer,
WordPiece, added tokens matched as written). Such a tokenizer never joins or splits across
whitespace: its normaliser works a character at a time (control characters deleted, whitespace
made a space, accents stripped, Chinese characters spaced, lower case), its pre-tokeniser
splits at whitespace first, and an added token holds none. So a text's ids are its
whitespace-separated words' ids, one after the other, each word tokenised alone, where
"whitespace" is exactly BERT's: Unicode White_Space less the control characters it deletes
(\\x0b, \\x0c, \\x1c-\\x1f, \\x85 separate words for Python's str.split, not for BERT). A test holds
the two equal on real and generated texts.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Sequence
from itertools import chain

import numpy as np

# BERT's whitespace: White_Space but the control characters its normaliser deletes
_SPACE = re.compile("[ \t\n\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
# ASCII characters str.split() splits at and BERT deletes: a text with one is split by _SPACE
_NOT_SPACE = re.compile(r"[\x0b\x0c\x1c-\x1f]")
# distinct words kept (a million documents of English have a few hundred thousand); past it the
# cache starts again empty
CACHE_WORDS = 2_000_000


class WordCache:
    """`flat(texts)`: the texts' token ids one after the other and each text's count; `ids`:
    a list a text (no special tokens, untruncated; see the module doc)."""

    def __init__(self, inner, limit: int = CACHE_WORDS) -> None:
        self.inner = inner  # a tokenizers.Tokenizer
        self.limit = limit
        self._clear()

    def _clear(self) -> None:
        self.words: dict[str, int] = {}  # word -> its number here
        self._pieces = array("i")  # every word's token ids, one word after another
        self._starts = array("q")  # word number -> where its ids start in _pieces
        self._sizes = array("q")  # word number -> how many ids it has

    @staticmethod
    def applies(inner) -> bool:
        """Whether `inner` is a BERT tokenizer, which this cache reproduces exactly."""
        try:
            config = json.loads(inner.to_str())
        except Exception:  # noqa: BLE001 - a tokenizer it cannot read is not one it applies to
            return False
        normalizer, pre = config.get("normalizer") or {}, config.get("pre_tokenizer") or {}
        model = config.get("model") or {}
        return (normalizer.get("type") == "BertNormalizer"
                and pre.get("type") == "BertPreTokenizer" and model.get("type") == "WordPiece"
                and all(not token.get("normalized") and not _SPACE.search(token["content"])
                        for token in config.get("added_tokens", [])))

    def flat(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, counts): int32 token ids of every text in order, and int64 ids a text."""
        split = [text.split() if text.isascii() and _NOT_SPACE.search(text) is None
                 else [word for word in _SPACE.split(text) if word] for text in texts]
        every = list(chain.from_iterable(split))
        new = set(every).difference(self.words)
        if len(self.words) + len(new) > self.limit:
            self._clear()
            new = set(every)
        if new:
            self._add(list(new))
        numbers = np.fromiter(map(self.words.__getitem__, every), dtype=np.int64,
                              count=len(every))
        starts = np.frombuffer(self._starts, dtype=np.int64)[numbers]
        sizes = np.frombuffer(self._sizes, dtype=np.int64)[numbers]
        ends = np.cumsum(sizes)
        # the ids of word k sit at starts[k] .. starts[k] + sizes[k] in _pieces, gathered in order
        at = np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64) + np.repeat(
            starts - (ends - sizes), sizes)
        ids = np.frombuffer(self._pieces, dtype=np.int32)[at]
        words_a_text = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        counts = np.bincount(np.repeat(np.arange(len(split)), words_a_text), weights=sizes,
                             minlength=len(split)).astype(np.int64)
        return ids, counts

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        ids, counts = self.flat(texts)
        return [part.tolist() for part in np.split(ids, np.cumsum(counts)[:-1])]

    def _add(self, words: list[str]) -> None:
        """Tokenise words new to the cache (each alone, as the text's tokenizer would)."""
        for word, encoding in zip(words, self.inner.encode_batch_fast(
                words, add_special_tokens=False), strict=True):
            self.words[word] = len(self._starts)
            self._starts.append(len(self._pieces))
            self._sizes.append(len(encoding.ids))
            self._pieces.extend(encoding.ids)
