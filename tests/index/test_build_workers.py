"""The build's worker processes (windows chunked, BM25-counted and, for an encoder that runs on
one core, encoded in forked workers) make the folder the one-process build makes: the same
store rows, vectors and BM25 files, with a repeated id and long documents among the windows."""

from __future__ import annotations

import multiprocessing
import sqlite3

import numpy as np
import pytest
from fakes import HashEmbedder

from semsearch.corpora import ReaderOptions
from semsearch.index import SearchIndex
from semsearch.indexing import IndexOptions, index_corpus

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="worker processes are forked")


class OneCoreHashEmbedder(HashEmbedder):
    """The hash embedder declaring that it encodes on one core: workers encode its chunks."""

    single_threaded = True


def corpus_lines(count: int = 400) -> list[str]:
    words = "ocean tide moon gradient descent forest tree coral reef whale step loss".split()
    rng = np.random.default_rng(3)
    lines = []
    for i in range(count):
        size = int(rng.integers(3, 60))  # some longer than the 16-token window: chunked
        lines.append(" ".join(rng.choice(words, size)) + f" doc{i}")
    return lines


def store_rows(folder):
    with sqlite3.connect(folder / "documents.sqlite") as connection:
        return connection.execute("SELECT row, doc_id, chunk, text FROM chunks ORDER BY row"
                                  ).fetchall()


@pytest.mark.parametrize("embedder", [HashEmbedder(max_seq_len=16),
                                      OneCoreHashEmbedder(max_seq_len=16)])
def test_workers_build_the_folder_one_process_builds(tmp_path, monkeypatch, embedder):
    from semsearch import embed_chunks

    monkeypatch.setattr(embed_chunks, "WORKER_WINDOW", 64)
    started = []
    start = embed_chunks._Workers._start
    monkeypatch.setattr(embed_chunks._Workers, "_start",
                        lambda self: (started.append(self.processes), start(self)))
    corpus = tmp_path / "docs.txt"
    lines = corpus_lines()
    lines[250] = lines[10]  # a duplicate text is kept (a build skips only repeated ids)
    corpus.write_text("\n".join(lines) + "\n")
    folders = {}
    for workers in (0, 2):
        folders[workers] = tmp_path / f"w{workers}"
        # batch size 2: windows of 64 documents (the one-core encoder's: WORKER_WINDOW)
        options = IndexOptions(type="flat", batch_size=2, workers=workers)
        index_corpus(corpus, embedder, folders[workers], options, latest=False)
    assert started == [2]  # the one-process build forked none
    assert store_rows(folders[0]) == store_rows(folders[2])
    with sqlite3.connect(folders[2] / "documents.sqlite") as connection:  # made after the load
        assert {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")} == {
            "documents_sha256", "chunks_doc_id"}
    assert len(store_rows(folders[0])) > 400  # long documents were cut into chunks
    opened = [SearchIndex.open(folders[w]) for w in (0, 2)]
    try:
        vectors = [o.index.index.reconstruct_n(0, o.index.ntotal) for o in opened]
        np.testing.assert_array_equal(*vectors)
        for name in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(opened[0].lexical.scores[name],
                                          opened[1].lexical.scores[name])
        assert [h.id for h in opened[0].search_lexical(["coral reef doc7"], 5)[0]] == [
            h.id for h in opened[1].search_lexical(["coral reef doc7"], 5)[0]]
    finally:
        for o in opened:
            o.close()


def test_a_repeated_id_in_a_later_window_is_reported_as_before(tmp_path):
    import json

    rows = [{"id": f"d{i}", "text": line} for i, line in enumerate(corpus_lines(300))]
    rows[200]["id"] = "d5"
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from semsearch.errors import DataError

    strict = IndexOptions(type="flat", batch_size=2, workers=2,
                          reader=ReaderOptions("jsonl", id_field="id"))
    with pytest.raises(DataError, match="line 201: document id 'd5' appears again"):
        index_corpus(corpus, HashEmbedder(), tmp_path / "strict", strict, latest=False)
    assert not (tmp_path / "strict").exists()
    skip = IndexOptions(type="flat", batch_size=2, workers=2,
                        reader=ReaderOptions("jsonl", id_field="id", errors="skip"))
    report = index_corpus(corpus, HashEmbedder(), tmp_path / "skip", skip, latest=False)
    assert report.documents_added == 299 and report.lines_skipped == [
        (201, "document id 'd5' appears again (the first one is kept; ids must be unique: "
              "check --id-field)")]
