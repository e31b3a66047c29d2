import pytest

from semsearch.errors import ConfigError
from semsearch.index import choose_recipe, estimate_memory, parse_memory
from semsearch.index.recipe import ivf_list_count


def test_auto_is_exact_for_small_corpora():
    recipe = choose_recipe("auto", 10_000, 384)
    assert recipe.factory == "Flat" and recipe.exact and "exact" in recipe.reason


def test_auto_is_fast_scan_ivf_pq_for_large_corpora_and_trains_on_a_sample():
    recipe = choose_recipe("auto", 1_000_000, 384, max_memory=8 << 30)
    # 192 sub-quantisers of 4 bits: the bytes of PQ96 at 8 bits, scanned with SIMD lookups,
    # in sqrt(count) lists rather than IVF-Flat's 4 sqrt(count)
    assert recipe.factory == "IVF1024,PQ192x4fs" and recipe.rerank == 20
    assert recipe.nprobe == 128 and recipe.train_size == 1024 * 64
    assert choose_recipe("ivf", 1_000_000, 384).factory == "IVF4096,Flat"


def test_auto_compresses_when_vectors_exceed_the_memory_budget():
    recipe = choose_recipe("auto", 1_000_000, 384, max_memory=200 << 20)
    assert recipe.factory.startswith("IVF1024,PQ") and recipe.rerank > 0
    assert estimate_memory(recipe, 1_000_000, 384) <= 200 << 20


def test_too_small_a_budget_says_how_much_is_needed():
    with pytest.raises(ConfigError, match="too small.*raise --max-memory"):
        choose_recipe("auto", 1_000_000, 384, max_memory=1 << 20)


def test_named_types():
    assert choose_recipe("flat", 5, 8).factory == "Flat"
    assert choose_recipe("HNSW", 5, 8).ef_search == 64
    assert choose_recipe("ivf", 100_000, 8).factory == "IVF1024,Flat"
    # tiny corpora get fewer PQ centroids so k-means has >= 39 points each
    assert choose_recipe("ivfpq", 2000, 32).factory == "IVF32,PQ8x5"


def test_factory_strings_are_checked_by_faiss():
    recipe = choose_recipe("IVF64,SQ8", 10_000, 32)
    assert recipe.kind == "factory" and recipe.nprobe == 16 and recipe.train_size > 0
    with pytest.raises(ConfigError, match="not flat, hnsw, ivf, ivfpq, auto"):
        choose_recipe("IVF64,Bogus", 10_000, 32)


def test_ivf_list_count_keeps_39_points_a_list():
    for count in (50, 3000, 70_000, 10_000_000):
        assert ivf_list_count(count) * 39 <= count


def test_parse_memory():
    assert parse_memory("1.5GiB") == int(1.5 * 2**30)
    assert parse_memory("64k") == 65536
    with pytest.raises(ConfigError, match="512MB"):
        parse_memory("lots")
