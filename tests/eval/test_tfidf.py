"""The TF-IDF baseline: tokens, weights worked out by hand, and its known STS-B test score."""

import math

import numpy as np
import pytest

from semsearch.eval.metrics import paired_cosine
from semsearch.eval.tfidf import Tfidf, tfidf_vectors, tokenize


def test_tokenize_lowercases_and_keeps_word_apostrophes():
    assert tokenize("A man's GUITAR, 2 strings!") == ["a", "man's", "guitar", "2", "strings"]
    assert tokenize("  ...  ") == []


def test_weights_by_hand():
    model = Tfidf().fit(["cat cat dog", "dog"])
    # df: cat 1, dog 2 of n=2; idf = ln((1+n)/(1+df)) + 1
    idf_cat, idf_dog = math.log(3 / 2) + 1, math.log(3 / 3) + 1
    assert model.idf.tolist() == pytest.approx([idf_cat, idf_dog])
    row = model.transform(["cat cat dog"]).toarray()[0]
    raw = np.array([(1 + math.log(2)) * idf_cat, 1.0 * idf_dog])  # sublinear tf
    assert row == pytest.approx(raw / np.linalg.norm(raw))


def test_rows_are_unit_length_or_zero():
    vectors = Tfidf().fit(["a b c", "b c d"]).transform(["a b", "zzz", ""])
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    assert norms == pytest.approx([1.0, 0.0, 0.0])


def test_identical_texts_have_cosine_one_and_disjoint_zero():
    vectors = tfidf_vectors(["the red car", "The red car!", "blue sky"])
    assert paired_cosine(vectors[[0, 0]], vectors[[1, 2]]) == pytest.approx([1.0, 0.0])


def test_known_answer_stsb_test_spearman(data_dir):
    from semsearch.data import load_stsb
    from semsearch.eval.runner import sts_scores

    scores = sts_scores(tfidf_vectors, load_stsb("test", data_dir))
    assert scores["spearman"] == pytest.approx(69.45, abs=0.05)
