"""The Python API: load, encode, similarity, top_k."""

import numpy as np
import pytest

from semsearch import api
from semsearch.errors import ModelError


def test_encode_gives_unit_float32_rows(tiny_model_dir):
    vectors = api.encode(["I love programming", "I enjoy coding", "Ocean waves"], model=tiny_model_dir)
    assert vectors.dtype == np.float32 and vectors.shape[0] == 3
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(TypeError):
        api.encode("one text", model=tiny_model_dir)


def test_load_is_cached_and_accepted_as_model(tiny_model_dir):
    encoder = api.load(tiny_model_dir)
    assert api.load(str(tiny_model_dir)) is encoder
    assert api.similarity("a dog", "a dog", model=encoder) == pytest.approx(1.0, abs=1e-5)


def test_similarity_is_a_float_in_range(tiny_model_dir):
    score = api.similarity("I love programming", "I enjoy coding", model=tiny_model_dir)
    assert isinstance(score, float) and -1.0 <= score <= 1.0


def test_top_k_orders_candidates(tiny_model_dir):
    candidates = ["Deep neural networks", "Beautiful sunset", "AI algorithms", "Ocean waves"]
    ranked = api.top_k("Machine learning and AI", candidates, k=2, model=tiny_model_dir)
    assert len(ranked) == 2 and {text for text, _ in ranked} <= set(candidates)
    assert ranked[0][1] >= ranked[1][1]
    assert api.top_k("x", [], model=tiny_model_dir) == []
    everything = api.top_k("Machine learning and AI", candidates, k=10, model=tiny_model_dir)
    assert len(everything) == 4


def test_missing_model_raises_model_error(tmp_path):
    with pytest.raises(ModelError):
        api.load(tmp_path / "nope")
    with pytest.raises(ModelError):
        api.similarity("a", "b")  # no models/ folder in this test (conftest isolates it)


def test_package_re_exports_the_api():
    import semsearch

    if not hasattr(semsearch, "__getattr__"):
        pytest.skip("semsearch/__init__.py does not re-export the API yet")
    assert semsearch.top_k is api.top_k and semsearch.similarity is api.similarity
    assert semsearch.load is api.load and semsearch.encode is api.encode


def test_model_given_as_a_string_path(tiny_model_dir):
    import semsearch

    ranked = semsearch.top_k("a dog runs", ["a dog is running", "a cat"], k=2,
                             model=str(tiny_model_dir))
    assert [text for text, _ in ranked] in (["a dog is running", "a cat"],
                                            ["a cat", "a dog is running"])
    assert isinstance(semsearch.similarity("a", "b", model=str(tiny_model_dir)), float)
    assert semsearch.encode(["a"], model=str(tiny_model_dir)).shape[0] == 1


def test_search_an_index_in_every_mode(tiny_model_dir, tmp_path, monkeypatch):
    from pathlib import Path

    import semsearch
    from semsearch.encoder import SentenceEncoder
    from semsearch.indexing import index_corpus

    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    docs = Path(__file__).resolve().parents[1] / "corpora" / "docs.txt"
    index_corpus(docs, SentenceEncoder.load(tiny_model_dir), tmp_path / "docs")
    lexical = semsearch.query("machine learning", index=tmp_path / "docs", k=3, mode="lexical")
    assert "machine learning" in lexical[0]["text"].lower() and lexical[0]["lexical_rank"] == 1
    both = semsearch.query(["machine learning", "ocean"], index=tmp_path / "docs", k=2)
    assert [len(hits) for hits in both] == [2, 2]
    assert all(hit["dense_rank"] or hit["lexical_rank"] for hits in both for hit in hits)
    dense = semsearch.query("machine learning", k=4, mode="dense")  # the latest index
    assert [hit["dense_rank"] for hit in dense] == [1, 2, 3, 4]


def test_load_takes_the_clis_backend_choice_and_default(tiny_model_dir, tmp_path):
    """`semsearch.load` runs where `semsearch index` does: ONNX Runtime on a CPU by default
    (where it is installed), torch when asked; both give the same vectors."""
    import shutil

    from semsearch.embedder import load_embedder
    from semsearch.errors import ConfigError

    folder = tmp_path / "tiny"  # a copy: the ONNX export is written into the folder
    shutil.copytree(tiny_model_dir, folder)
    default = api.load(folder)
    cli_default = load_embedder(folder, device=None)  # what the CLI loads with no --backend
    assert getattr(default, "backend", "torch") == getattr(cli_default, "backend", "torch")
    onnx_installed = __import__("importlib").util.find_spec("onnxruntime") is not None
    assert getattr(default, "backend", "torch") == ("onnx" if onnx_installed else "torch")
    torch_encoder = api.load(folder, backend="torch")
    assert getattr(torch_encoder, "backend", "torch") == "torch" and torch_encoder is not default
    assert api.load(folder, backend="torch") is torch_encoder  # cached per backend
    texts = ["a dog runs in the park", "the stock market fell"]
    cosines = (api.encode(texts, model=default) * api.encode(texts, model=torch_encoder)).sum(1)
    assert cosines.min() >= 0.9999
    with pytest.raises(ConfigError, match="unknown backend"):
        api.load(folder, backend="tensorflow")


def test_query_keeps_the_opened_index_and_notices_a_swapped_folder(tmp_path, monkeypatch):
    """semsearch.query opens an index once (as it loads a model once), from any thread, and
    opens it again only when a writer has swapped in a new version."""
    import threading

    import semsearch
    from semsearch.index import SearchIndex, remove_documents
    from semsearch.indexing import index_corpus

    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    (tmp_path / "a.txt").write_text("whales sing in the ocean\ncoral reefs need warm water\n")
    index_corpus(tmp_path / "a.txt", None, tmp_path / "bm25")  # BM25 alone: no model needed
    opens = []
    real_open = SearchIndex.open
    monkeypatch.setattr(SearchIndex, "open", classmethod(
        lambda cls, folder, read_only=True: (opens.append(folder), real_open(folder, read_only))[1]))

    def query(text, folder=tmp_path / "bm25"):
        before = len(opens)
        hits = semsearch.query(text, index=folder)
        return [h["id"] for h in hits], len(opens) - before

    assert query("ocean whales") == (["a:1"], 1)
    found = []
    thread = threading.Thread(target=lambda: found.append(query("coral", str(tmp_path / "bm25"))))
    thread.start()
    thread.join()
    assert found == [(["a:2"], 0)]  # kept, and searched from another thread
    (tmp_path / "b.txt").write_text("humpback whales migrate across the ocean\n")
    index_corpus(tmp_path / "b.txt", None, tmp_path / "bm25", append=True)
    ids, opened = query("whales")
    assert sorted(ids) == ["a:1", "b:1"] and opened == 1
    assert query("whales") == (ids, 0)
    remove_documents(tmp_path / "bm25", ["a:1"])
    assert query("whales") == (["b:1"], 1)
