"""The BM25 side of an index and the fusion of two rankings: pure functions and a real bm25s
index on a few sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semsearch.errors import ConfigError
from semsearch.index.fusion import FusionConfig, fuse, read_model_fusion, write_model_fusion
from semsearch.index.lexical import (
    LEXICAL_DIR,
    LexicalConfig,
    LexicalIndex,
    tokenize,
)
from semsearch.index.lexical_terms import build_lexical

DOCS = [
    (3, "Machine learning lets computers learn patterns from examples."),
    (7, "Hummus blends chickpeas with tahini, lemon and garlic."),
    (8, "Deep learning stacks many neural network layers."),
    (20, "The the the and of"),  # stopwords only: indexed, never matched
]


def test_tokens_are_stemmed_lower_cased_and_free_of_stopwords():
    assert tokenize(["What IS the learning of Networks?"], LexicalConfig()) == [["learn", "network"]]
    assert tokenize(["Ünïcode café naïve"], LexicalConfig())[0] == ["ünïcode", "café", "naïv"]


def _real_texts() -> list[str]:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "corpora" / "docs.txt").read_text(encoding="utf-8")
    return docs.splitlines() + [
        "Ünïcode café naïve", "don't won't CAN'T", "x y z 42 4.2 e-mail re-ranking", "", "!!!",
        "Über die Brücke: straße STRASSE", "日本語のテキスト and ελληνικά", "running runs ran runner",
    ]


def test_the_query_tokenizer_is_bm25s_own_step_for_step():
    import bm25s

    from semsearch.index.lexical import STOPWORDS, _stemmer

    texts = _real_texts()
    config = LexicalConfig()
    theirs = bm25s.tokenize(texts, lower=True, stopwords=sorted(STOPWORDS[config.stopwords]),
                            stemmer=_stemmer(config.stemmer), return_ids=False,
                            show_progress=False)
    assert tokenize(texts, config) == [list(t) for t in theirs]


def test_scores_are_bm25s_own_to_the_bit(tmp_path):
    import bm25s

    texts = _real_texts()
    build_lexical(tmp_path, list(enumerate(texts)))
    ours = LexicalIndex(tmp_path, LexicalConfig())
    theirs = bm25s.BM25.load(str(tmp_path / LEXICAL_DIR), mmap=True, allow_pickle=False,
                             load_vocab=False, show_progress=False)
    for query in ["machine learning and AI", "ocean tides moon", "running runs machine", "café straße"]:
        ids = [i for _, i in ours._known(query)]
        assert ids, query
        np.testing.assert_array_equal(ours.scores_of(ids), theirs.get_scores_from_ids(ids))


def test_bm25_ranks_by_shared_words_and_maps_back_to_row_ids(tmp_path):
    assert build_lexical(tmp_path, DOCS) == 4
    index = LexicalIndex(tmp_path, LexicalConfig())
    scores, rows = index.search("machine learning", 10)
    assert rows.tolist() == [3, 8] and scores[0] > scores[1] > 0
    scores, rows = index.search("learning", 10, allowed_rows=np.array([8]))
    assert rows.tolist() == [8]
    assert index.search("the and of", 10)[1].tolist() == []  # only stopwords: nothing matches
    assert index.search("zebra", 10)[1].tolist() == []  # unknown word


def test_query_syntax_is_only_ever_words(tmp_path):
    build_lexical(tmp_path, DOCS)
    index = LexicalIndex(tmp_path, LexicalConfig())
    for hostile in ['"AND OR NEAR(', "learning* OR -machine", "'; DROP TABLE chunks; --", "\x00"]:
        scores, rows = index.search(hostile, 10)
        assert set(rows.tolist()) <= {3, 8}


def test_saved_arrays_are_plain_npy_and_load_without_pickle(tmp_path):
    build_lexical(tmp_path, DOCS)
    for path in (tmp_path / LEXICAL_DIR).glob("*.npy"):
        np.load(path, allow_pickle=False)


def test_a_damaged_lexical_index_is_a_clean_error(tmp_path):
    from semsearch.errors import IndexError_

    build_lexical(tmp_path, DOCS)
    (tmp_path / LEXICAL_DIR / "rows.npy").write_bytes(b"garbage")
    with pytest.raises(IndexError_, match="rebuild"):
        LexicalIndex(tmp_path, LexicalConfig())


def test_rrf_sums_reciprocal_ranks():
    fused = fuse([("a", 0.9), ("b", 0.8)], [("b", 5.0), ("c", 4.0)], "rrf")
    assert [f.doc_id for f in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert (fused[0].dense_rank, fused[0].lexical_rank) == (2, 1)
    assert (fused[2].dense_rank, fused[2].dense_score) == (None, None)


def test_weighted_fusion_normalises_each_side_and_weighs_it():
    dense, lexical = [("a", 0.9), ("b", 0.5), ("c", 0.1)], [("c", 12.0), ("b", 2.0)]
    assert [f.doc_id for f in fuse(dense, lexical, "weighted", 1.0)] == ["a", "b", "c"]
    assert [f.doc_id for f in fuse(dense, lexical, "weighted", 0.0)][0] == "c"
    middle = {f.doc_id: f.score for f in fuse(dense, lexical, "weighted", 0.5)}
    assert middle == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.5})


def test_one_empty_side_keeps_the_other_sides_order():
    dense = [("a", 0.9), ("b", 0.5)]
    for method in ("rrf", "weighted"):
        assert [f.doc_id for f in fuse(dense, [], method, 0.3)] == ["a", "b"]


@pytest.mark.parametrize("bad", [{"method": "max"}, {"dense_weight": math.nan},
                                 {"dense_weight": 1.5}, {"depth": 0}])
def test_fusion_settings_are_checked(bad):
    with pytest.raises(ConfigError):
        FusionConfig(**bad)


def test_model_fusion_is_kept_for_its_weights_only(tmp_path):
    calibrated = FusionConfig("weighted", 0.3, 100, calibrated=True)
    write_model_fusion(tmp_path, "abc", calibrated, {"mlquestions": {}})
    assert read_model_fusion(tmp_path, "abc") == calibrated
    assert read_model_fusion(tmp_path, "other weights") == FusionConfig()
    assert read_model_fusion(tmp_path / "missing", "abc") == FusionConfig()
