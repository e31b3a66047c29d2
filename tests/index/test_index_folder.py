"""An index folder's life: build, reopen, append, remove, refuse what it must."""

import json
import os

import numpy as np
import pytest
from conftest import TableEmbedder
from fakes import HashEmbedder

from semsearch.embedder import check_model
from semsearch.errors import DataError, IndexError_
from semsearch.index import FORMAT_VERSION, SearchIndex, remove_documents, resolve_index_dir
from semsearch.indexing import IndexOptions, index_corpus
from semsearch.querying import search


def build(corpus, out, embedder=None, **options):
    return index_corpus(
        corpus, embedder or HashEmbedder(), out, IndexOptions(**options), progress=False
    )


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "pets.txt"
    path.write_text("cats purr and nap\n\ndogs bark at the mailman\nparrots repeat words\n")
    return path


def test_round_trip_gives_the_same_hits_and_writes_the_manifest(tmp_path, corpus):
    out = tmp_path / "indexes" / "pets"
    report = build(corpus, out)
    assert (report.documents_added, report.chunks_added) == (3, 3)
    assert sorted(os.listdir(out)) == ["documents.sqlite", "index.faiss", "lexical", "manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model_fingerprint"] == HashEmbedder().fingerprint
    assert (manifest["dim"], manifest["count"], manifest["documents"]) == (64, 3, 3)
    assert manifest["recipe"]["factory"] == "Flat"
    assert (
        manifest["corpora"][0]["path"] == str(corpus)
        and len(manifest["corpora"][0]["sha256"]) == 64
    )
    assert manifest["created"]
    first = SearchIndex.open(out)
    hits = search(first, HashEmbedder(), ["dogs bark"], k=2)[0]
    first.close()
    again = SearchIndex.open(out)
    assert search(again, HashEmbedder(), ["dogs bark"], k=2)[0] == hits
    again.close()
    assert (
        hits[0].id == "pets:3" and hits[0].rank == 1 and hits[0].text == "dogs bark at the mailman"
    )
    # the latest build is what query opens when not told
    assert resolve_index_dir(None).resolve() == out.resolve()


def test_k_larger_than_the_corpus_returns_every_document(tmp_path, corpus):
    build(corpus, tmp_path / "pets")
    opened = SearchIndex.open(tmp_path / "pets")
    assert len(search(opened, HashEmbedder(), ["words"], k=50)[0]) == 3
    with pytest.raises(DataError, match="empty query"):
        search(opened, HashEmbedder(), ["  "], k=1)
    opened.close()


def test_append_adds_new_documents_and_skips_exact_duplicates(tmp_path, corpus):
    out = tmp_path / "pets"
    build(corpus, out)
    more = tmp_path / "more.txt"
    more.write_text("parrots repeat words\nhamsters run on wheels\nhamsters run on wheels\n")
    report = index_corpus(more, HashEmbedder(), out, append=True, progress=False)
    assert (report.documents_added, report.duplicates_skipped) == (1, 2)
    assert (report.documents_total, report.vectors_total) == (4, 4)
    opened = SearchIndex.open(out)
    assert opened.manifest.next_row == 4 and len(opened.manifest.corpora) == 2
    assert search(opened, HashEmbedder(), ["hamsters wheels"], k=1)[0][0].id == "more:2"
    opened.close()
    nothing = index_corpus(more, HashEmbedder(), out, append=True, progress=False)
    assert nothing.chunks_added == 0 and nothing.duplicates_skipped == 3


def test_append_to_a_missing_index_says_to_build_first(tmp_path, corpus):
    with pytest.raises(IndexError_, match="build it first"):
        index_corpus(corpus, HashEmbedder(), tmp_path / "nope", append=True, progress=False)


@pytest.mark.parametrize("index_type", ["flat", "ivf", "ivfpq"])
def test_remove_deletes_documents_and_keeps_ids_stable(index_type, tmp_path, vectors, table_corpus):
    out = tmp_path / index_type
    embedder = TableEmbedder(vectors)
    build(table_corpus, out, embedder, type=index_type)
    assert remove_documents(out, ["corpus:1", "corpus:2"]) == (2, 2)
    opened = SearchIndex.open(out)
    assert opened.manifest.count == 1998 and opened.manifest.documents == 1998
    hits = opened.search(vectors[[0, 2]], 1, nprobe=1000)
    opened.close()
    assert hits[0][0].id != "corpus:1" and hits[1][0].id == "corpus:3"


def test_remove_refuses_hnsw_and_unknown_ids_without_touching_the_index(tmp_path, corpus):
    out = tmp_path / "graph"
    build(corpus, out, type="hnsw")
    before = (out / "index.faiss").read_bytes()
    with pytest.raises(IndexError_, match="cannot delete vectors.*--type flat"):
        remove_documents(out, ["pets:1"])
    flat = tmp_path / "flat"
    build(corpus, flat)
    with pytest.raises(IndexError_, match="no document with id pets:99"):
        remove_documents(flat, ["pets:1", "pets:99"])
    assert SearchIndex.open(flat).manifest.documents == 3
    assert (out / "index.faiss").read_bytes() == before


def test_a_failed_build_leaves_the_previous_index_intact(tmp_path, corpus):
    out = tmp_path / "pets"
    build(corpus, out)
    before = (out / "manifest.json").read_text()

    class Broken(HashEmbedder):
        def encode(self, texts, batch_size=64, progress=False):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(corpus, out, Broken())
    assert (out / "manifest.json").read_text() == before
    # only the lock files stay beside it (they must outlive any one writer to lock anything)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pets") and p.is_dir()] == []
    SearchIndex.open(out).close()


def test_refuses_to_overwrite_a_folder_that_is_not_an_index(tmp_path, corpus):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(IndexError_, match="not a semsearch index folder"):
        build(corpus, precious)
    assert (precious / "chapter1.tex").exists()


def test_an_interrupted_replacement_is_explained(tmp_path, corpus):
    out = tmp_path / "pets"
    build(corpus, out)
    out.rename(tmp_path / ".pets.old-abc123")
    with pytest.raises(IndexError_, match="mv .*pets.old-abc123"):
        SearchIndex.open(out)


def test_model_mismatch_is_refused_with_the_fix(tmp_path, corpus):
    out = tmp_path / "pets"
    build(corpus, out)
    opened = SearchIndex.open(out)
    other = HashEmbedder(name="other")
    with pytest.raises(
        IndexError_, match="built with model hash .* but model other .*--model hash"
    ):
        search(opened, other, ["cats"], k=1)
    with pytest.raises(IndexError_, match="fingerprint"):
        check_model(opened.manifest, other, out)
    opened.close()
    with pytest.raises(IndexError_, match="fingerprint"):
        index_corpus(corpus, other, out, append=True, progress=False)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda out: (out / "manifest.json").write_text("{not json"), "corrupt"),
        (lambda out: (out / "manifest.json").unlink(), "not an index folder"),
        (lambda out: (out / "index.faiss").write_bytes(b"garbage"), "corrupt"),
        (lambda out: (out / "index.faiss").unlink(), "missing"),
        (lambda out: (out / "documents.sqlite").write_bytes(b"garbage" * 100), "corrupt"),
        (lambda out: _edit_manifest(out, format_version=99), "format version 99"),
        (lambda out: _edit_manifest(out, count=7), "inconsistent"),
    ],
)
def test_missing_or_corrupt_pieces_are_one_line_errors(tmp_path, corpus, damage, message):
    out = tmp_path / "pets"
    build(corpus, out)
    damage(out)
    with pytest.raises(IndexError_, match=message) as raised:
        SearchIndex.open(out)
    assert "\n" not in str(raised.value) and "semsearch index" in str(raised.value)


def _edit_manifest(out, **changes):
    data = json.loads((out / "manifest.json").read_text())
    data.update(changes)
    (out / "manifest.json").write_text(json.dumps(data))


def test_long_documents_are_chunked_and_hits_name_the_chunk(tmp_path):
    corpus = tmp_path / "long.txt"
    words = [f"w{i}" for i in range(200)]
    corpus.write_text("short one\n" + " ".join(words) + "\n")
    out = tmp_path / "long"
    report = build(corpus, out)  # HashEmbedder window: 32 tokens
    assert report.documents_added == 2 and report.chunks_added > 7
    opened = SearchIndex.open(out)
    hits = search(opened, HashEmbedder(), ["w150 w151 w152"], k=2)[0]
    opened.close()
    assert hits[0].id == "long:2" and hits[0].chunks == report.chunks_added - 1
    assert "w151" in hits[0].text and hits[0].chunk > 0
    assert len({hit.id for hit in hits}) == 2  # one hit a document, not one a chunk


def test_an_empty_corpus_is_an_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n")
    with pytest.raises(DataError, match="no documents"):
        build(empty, tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_vectors_are_normalised_and_rows_follow_the_file(tmp_path, vectors, table_corpus):
    out = tmp_path / "ivfpq"
    build(table_corpus, out, TableEmbedder(vectors), type="ivfpq")
    stored = np.fromfile(out / "vectors.f32", dtype=np.float32).reshape(-1, 32)
    np.testing.assert_allclose(stored, vectors[:2000], atol=1e-6)
