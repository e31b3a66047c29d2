"""IndexWriter, the one owner of an index folder's write: a commit swaps the new version in and
(asked) points the latest index at it; an error, or leaving without commit, leaves the old
version byte for byte and no staging folder behind; a second writer is refused."""

import pytest
from fakes import HashEmbedder

from semsearch.errors import IndexError_
from semsearch.index import IndexWriter, Manifest, SearchIndex, resolve_index_dir
from semsearch.index.folder import MANIFEST
from semsearch.indexing import IndexOptions, index_corpus


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    corpus = tmp_path / "pets.txt"
    corpus.write_text("cats purr and nap\ndogs bark at the mailman\nparrots repeat words\n")
    out = tmp_path / "indexes" / "pets"
    index_corpus(corpus, HashEmbedder(), out, IndexOptions(), progress=False, latest=False)
    return out


def folder_bytes(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.is_dir() and p != folder)


def renamed_copy(folder, note):
    """Stage a copy of `folder` whose manifest says `note`, through a writer; returns it."""
    writer = IndexWriter(folder)
    writer.__enter__()
    writer.stage(copy=True)
    manifest = Manifest.read(writer.path / MANIFEST)
    manifest.model_name = note
    writer.write_manifest(manifest)
    return writer


def test_commit_swaps_the_new_version_in_and_marks_it_latest(folder):
    writer = renamed_copy(folder, "new")
    writer.commit(latest=True)
    writer.__exit__(None, None, None)
    assert Manifest.read(folder / MANIFEST).model_name == "new"
    assert resolve_index_dir(None).resolve() == folder.resolve()
    assert siblings(folder) == []
    SearchIndex.open(folder).close()


@pytest.mark.parametrize("how", ["error", "no commit"])
def test_an_error_or_no_commit_leaves_the_old_version_and_no_staging_folder(folder, how):
    before = folder_bytes(folder)
    with pytest.raises(RuntimeError) if how == "error" else _nothing():
        with IndexWriter(folder) as writer:
            writer.stage(copy=True)
            (writer.path / MANIFEST).write_text("{}")
            if how == "error":
                raise RuntimeError("the embedding failed")
    assert folder_bytes(folder) == before
    assert siblings(folder) == []
    with pytest.raises(IndexError_, match="no index yet"):
        resolve_index_dir(None)  # nothing was marked latest


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(folder, tmp_path):
    import subprocess
    import sys

    with IndexWriter(folder):
        code = ("import sys; from semsearch.index import IndexWriter\n"
                f"with IndexWriter({str(folder)!r}): pass")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and "being written by another semsearch process" in done.stderr


def test_a_fresh_write_refuses_a_folder_that_is_not_an_index_before_locking(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(IndexError_, match="not a semsearch index folder"):
        IndexWriter(other, fresh=True).__enter__()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]  # no lock file beside it


def _nothing():
    from contextlib import nullcontext

    return nullcontext()


def test_a_staged_copy_links_what_is_replaced_whole_and_never_writes_through_a_link(tmp_path,
                                                                                    monkeypatch):
    """The FAISS index and the lexical files are hard links in a staged copy (and vectors.f32
    where the caller says it leaves it): writing the staged index, or rewriting the lexical
    part, leaves the live version's files as they were."""
    import os

    import numpy as np

    from semsearch.index import remove_documents
    from semsearch.index.folder import INDEX_FILE, VECTORS_FILE
    from semsearch.index.lexical import LEXICAL_DIR, LexicalConfig
    from semsearch.index.lexical_terms import TermCounts

    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    corpus = tmp_path / "docs.txt"
    corpus.write_text("".join(f"document {i} about topic {i % 13} and {i % 7}\n"
                              for i in range(3000)))
    folder = tmp_path / "idx"
    index_corpus(corpus, HashEmbedder(), folder, IndexOptions(type="ivfpq"), latest=False)
    before = folder_bytes(folder)
    with IndexWriter(folder) as writer:
        writer.stage(copy=True, linked=(VECTORS_FILE,))
        for name in (INDEX_FILE, VECTORS_FILE, f"{LEXICAL_DIR}/rows.npy"):
            assert os.path.samefile(writer.path / name, folder / name), name
        assert not os.path.samefile(writer.path / "documents.sqlite", folder / "documents.sqlite")
        index = writer.read_index()
        index.remove_ids(np.arange(100, dtype=np.int64))
        writer.write_index(index)
        terms = TermCounts.load(writer.path / LEXICAL_DIR)
        writer.write_lexical_terms(terms.without_rows(np.arange(100)), LexicalConfig())
        assert not os.path.samefile(writer.path / INDEX_FILE, folder / INDEX_FILE)
    assert folder_bytes(folder) == before  # nothing written through a link; staging gone
    vectors = os.stat(folder / VECTORS_FILE).st_ino
    remove_documents(folder, ["docs:1", "docs:2"])
    assert os.stat(folder / VECTORS_FILE).st_ino == vectors  # shared, not copied
    opened = SearchIndex.open(folder)
    assert opened.manifest.documents == 2998 and opened.index.ntotal == 2998
    opened.close()
