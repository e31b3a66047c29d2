"""Bad parameters: FAISS recipes checked before FAISS sees them, numbers bounded, non-finite
floats refused; always a one-line error and a non-zero exit, never an abort or a traceback."""

from __future__ import annotations

import pytest
from faults_support import cli, run, write_corpus

from semsearch.errors import ConfigError
from semsearch.index.recipe import choose_recipe

# each aborted, hung, raised a traceback, or trained badly before
BAD_RECIPES = ["IVF0,Flat", "IVF1024,PQ32", "HNSW0,Flat", "IVF4_HNSW0,Flat", "NSG32,Flat", "PQ3",
               "IVF4,PQ8x20", "PQ4x8fs", "PCA1000,Flat", "OPQ5,IVF4,PQ5", "IVF-1,Flat",
               "IVF99999999999,Flat", "Flat,Flat", "LSH", "IVF4,SQ3", "", "HNSW32,Flat;rm"]


@pytest.mark.parametrize("factory", BAD_RECIPES)
def test_bad_recipes_are_refused_before_faiss_sees_them(factory):
    with pytest.raises(ConfigError) as error:
        choose_recipe(factory or " ", 300, 64)
    assert "--type" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("factory", ["HNSW0,Flat", "IVF1024,PQ32", "NSG32,Flat"])
def test_bad_recipes_exit_cleanly_from_a_real_process(workspace, factory):
    """HNSW0 aborted the process (SIGABRT, exit 134) inside FAISS; NSG could hang."""
    corpus = write_corpus(workspace / "docs.txt", 300)
    code, _, err = run(workspace, "index", corpus, "--type", factory, timeout=60)
    assert code == 1 and "--type" in err and "Traceback" not in err


def test_good_recipes_still_build(workspace):
    corpus = write_corpus(workspace / "docs.txt", 300)
    for factory in ("IVF4,Flat", "HNSW16,Flat", "IVF4,PQ8x4", "PCA32,IVF2,Flat", "IVF2,PQ16x4fs"):
        result = cli("index", corpus, "--type", factory, "--out", "x")
        assert result.exit_code == 0, (factory, result.output)


@pytest.mark.parametrize(
    "args",
    [
        ["query", "cats", "-k", "4294967301"],
        ["query", "cats", "-k", "0"],
        ["query", "cats", "--nprobe", str(2**40)],
        ["query", "cats", "--ef", str(2**32 + 5)],
        ["index", "docs.txt", "--target-recall", "nan"],
        ["index", "docs.txt", "--target-recall", "inf"],
        ["index", "docs.txt", "--target-recall", "1.5"],
        ["index", "docs.txt", "--wait", "nan"],
        ["index", "docs.txt", "--batch-size", str(2**31)],
        ["index", "docs.txt", "--max-chunks", "0"],
        ["remove", "docs:1", "--wait", "-1"],
    ],
)
def test_numbers_out_of_bounds_are_usage_errors(workspace, args):
    write_corpus(workspace / "docs.txt", 10)
    assert cli("index", "docs.txt").exit_code == 0
    result = cli(*args)
    assert result.exit_code == 2 and "Invalid value" in result.output, result.output


def test_the_library_bounds_k_and_ef_too(workspace):
    import numpy as np

    from semsearch.errors import IndexError_
    from semsearch.index import SearchIndex

    write_corpus(workspace / "docs.txt", 10)
    assert cli("index", "docs.txt", "--type", "hnsw").exit_code == 0
    opened = SearchIndex.open(workspace / "indexes" / "docs")
    query = np.ones((1, 64), dtype=np.float32) / 8
    for k, ef in ((2**32 + 5, None), (5, 2**32 + 5)):
        with pytest.raises(IndexError_):
            opened.search(query, k, ef_search=ef)
    assert len(opened.search(query, 5)[0]) == 5
    opened.close()
