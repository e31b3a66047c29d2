"""Fusion over generated rankings: k respected, no duplicate ids, scores non-increasing, each
side's order kept at a dense weight of 1 or 0, RRF and weighted agreeing on one side alone."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from semsearch.index.fusion import FusionConfig, fuse  # noqa: E402
from semsearch.index.search_index import Hit  # noqa: E402
from semsearch.querying import fuse_hits  # noqa: E402

IDS = st.sampled_from([f"d{i}" for i in range(30)])
SCORE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def ranking(draw, max_size=15):
    """(id, score) pairs, ids unique, scores non-increasing: one side's result list."""
    ids = draw(st.lists(IDS, unique=True, max_size=max_size))
    scores = sorted(draw(st.lists(SCORE, min_size=len(ids), max_size=len(ids))), reverse=True)
    return list(zip(ids, scores, strict=True))


def hits(side: list[tuple[str, float]]) -> list[Hit]:
    return [Hit(rank, score, doc, 0, 1, doc) for rank, (doc, score) in enumerate(side, start=1)]


METHOD = st.sampled_from(["weighted", "rrf"])
WEIGHT = st.floats(0, 1)


@given(dense=ranking(), lexical=ranking(), method=METHOD, weight=WEIGHT, k=st.integers(1, 40))
def test_k_unique_ids_and_non_increasing_scores(dense, lexical, method, weight, k):
    fused = fuse_hits(hits(dense), hits(lexical), FusionConfig(method, weight), k)
    ids = [hit.id for hit in fused]
    assert len(ids) == min(k, len({d for d, _ in dense} | {d for d, _ in lexical}))
    assert len(set(ids)) == len(ids)
    assert [hit.rank for hit in fused] == list(range(1, len(fused) + 1))
    assert all(a.score >= b.score for a, b in zip(fused, fused[1:]))
    whole = fuse(dense, lexical, method, weight)
    assert {f.doc_id for f in whole} == {d for d, _ in dense} | {d for d, _ in lexical}
    assert [f.doc_id for f in whole[:k]] == ids


@given(dense=ranking(), lexical=ranking(), weight=st.sampled_from([0.0, 1.0]))
# found: lexical's tie d1, d0 came out d0, d1 at weight 0 (ties went dense-first)
@example(dense=[("d0", 0.0)], lexical=[("d1", 0.0), ("d0", 0.0)], weight=0.0)
def test_a_weight_of_one_or_zero_keeps_that_sides_order(dense, lexical, weight):
    kept = [doc for doc, _ in (dense if weight == 1.0 else lexical)]
    fused = [f.doc_id for f in fuse(dense, lexical, "weighted", weight)]
    assert [doc for doc in fused if doc in set(kept)] == kept
    assert fused[:len(kept)] == kept  # and ahead of the documents only the other side has


JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=9),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=3), max_leaves=8)
FIELDS = st.fixed_dictionaries({}, optional={"method": JSON, "dense_weight": JSON,
                                             "depth": JSON, "calibrated": JSON})


@given(data=st.one_of(JSON, FIELDS))
def test_a_fusion_setting_of_any_json_gives_a_valid_config(data):
    """What a manifest or fusion.json holds: a valid FusionConfig, else the default."""
    config = FusionConfig.from_dict(data)
    assert config.method in ("weighted", "rrf") and 0 <= config.dense_weight <= 1
    assert 1 <= config.depth <= 10_000
    assert not isinstance(config.depth, bool) and not isinstance(config.dense_weight, bool)
    assert type(config.calibrated) is bool


@given(side=ranking(), dense_side=st.booleans(), weight=st.floats(0.01, 0.99))
def test_rrf_and_weighted_agree_on_one_side_alone(side, dense_side, weight):
    dense, lexical = (side, []) if dense_side else ([], side)
    rrf = [f.doc_id for f in fuse(dense, lexical, "rrf")]
    weighted = [f.doc_id for f in fuse(dense, lexical, "weighted", weight)]
    assert rrf == weighted == [doc for doc, _ in side]
