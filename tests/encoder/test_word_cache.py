"""The static model's word cache gives the ids `tokenizers` gives, text for text: on real text
of every source in the data folder (accents, other scripts, punctuation), on generated text
mixing BERT's whitespace, the control characters it deletes and added tokens, and with the
cache full; a static model's vectors do not change with it."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest

from semsearch.encoder.tokenizer import Tokenizer
from semsearch.encoder.word_cache import WordCache


def real_texts(data_dir) -> list[str]:
    texts = []
    with gzip.open(data_dir / "wikipedia" / "articles.jsonl.gz", "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if number >= 40:
                break
            texts += json.loads(line)["text"].split("\n")
    with gzip.open(data_dir / "wikipedia" / "sentences.txt.gz", "rt", encoding="utf-8") as lines:
        texts += [line for _, line in zip(range(3000), lines)]
    with open(data_dir / "beir" / "mlquestions" / "corpus.jsonl", encoding="utf-8") as lines:
        texts += [json.loads(line)["text"] for _, line in zip(range(2000), lines)]
    with open(data_dir / "quora" / "quora_duplicate_pairs.tsv", encoding="utf-8") as lines:
        texts += [line for _, line in zip(range(1000), lines)]
    return texts


def generated_texts(count: int = 4000, seed: int = 0) -> list[str]:
    """Short strings over an alphabet of BERT's edge cases: its whitespace, the control
    characters it deletes (some of which Python's str.split splits at), combining accents,
    Chinese characters, a zero-width space, an added token, case and punctuation."""
    pieces = ["a", "b", "Z", "0", "é", "e\u0301", ".", ",", "-", "'", "(", "$", " ", " ", "\t",
              "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\x00", "\x7f", "\xa0",
              "\u2028", "\u3000", "\u200b", "\ufffd", "日本", "ﬁ", "Ａ", "[MASK]", "[", "]",
              "x" * 120, "learning", "Learning,"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
            for _ in range(count)] + ["", " ", "\x1c", "[CLS][SEP]"]


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir):
    """The tiny model's BERT tokenizer (trained here), and a cased one made like it."""
    from tokenizers import normalizers

    from semsearch.encoder.store import TOKENIZER

    lowered = Tokenizer.load(tiny_model_dir / TOKENIZER).inner
    cased = Tokenizer.load(tiny_model_dir / TOKENIZER).inner
    cased.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    return [lowered, cased]


def tokenizers_ids(inner, texts):
    return [e.ids for e in inner.encode_batch_fast(texts, add_special_tokens=False)]


def test_the_cache_gives_the_tokenizers_ids_on_real_and_generated_text(data_dir, tokenizers):
    texts = real_texts(data_dir) + generated_texts()
    assert sum(not t.isascii() for t in texts) > 500  # the cases past plain ASCII are there
    for inner in tokenizers:
        assert WordCache.applies(inner)
        cache = WordCache(inner)
        expected = tokenizers_ids(inner, texts)
        assert cache.ids(texts) == expected  # words new to the cache
        assert cache.ids(texts) == expected  # and found in it


def test_a_full_cache_still_gives_the_ids(tokenizers):
    texts = generated_texts(500, seed=1)
    cache = WordCache(tokenizers[0], limit=40)  # fewer than the words of the texts: it restarts
    for _ in range(2):
        assert cache.ids(texts[:250]) == tokenizers_ids(tokenizers[0], texts[:250])
        assert cache.ids(texts[250:]) == tokenizers_ids(tokenizers[0], texts[250:])


def test_other_tokenizers_are_left_to_tokenizers(tiny_model_dir):
    from tokenizers import pre_tokenizers

    from semsearch.encoder.store import TOKENIZER

    other = Tokenizer.load(tiny_model_dir / TOKENIZER).inner
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    assert not WordCache.applies(other)


def test_static_vectors_are_the_same_through_the_cache(static_model_dir, data_dir):
    from semsearch.encoder.static import StaticEncoder

    texts = real_texts(data_dir)[:3000] + generated_texts(300)
    cached = StaticEncoder.load(static_model_dir)
    plain = StaticEncoder.load(static_model_dir)
    plain._words = False  # every text through tokenizers
    np.testing.assert_array_equal(cached.encode(texts), plain.encode(texts))
    assert isinstance(cached._words, WordCache) and len(cached._words.words) > 1000
    assert cached.count_tokens(texts) == plain.count_tokens(texts)
    np.testing.assert_array_equal(cached.encode(texts), plain.encode(texts))  # after counting
