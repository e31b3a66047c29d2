"""Corpus readers (semsearch.corpora) and chunking: every format, gzipped or not, bad bytes."""

import gzip
import json

import pytest

from semsearch.corpora import ChunkConfig, CorpusReader, ReaderOptions, chunk_documents, split_text
from semsearch.errors import DataError


def read(path, **options):
    return list(CorpusReader(path, ReaderOptions(**options)))


def write(path, text: str, compress: bool):
    data = text.encode("utf-8")
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_text_one_document_a_line_blank_lines_skipped(tmp_path, compress):
    path = write(tmp_path / "notes.txt", "\ufefffirst line\n\n  second  \r\n", compress)
    documents = read(path)
    assert [(d.id, d.text) for d in documents] == [("notes:1", "first line"), ("notes:3", "second")]


@pytest.mark.parametrize("compress", [False, True])
def test_jsonl_fields_ids_and_metadata(tmp_path, compress):
    lines = [{"id": 7, "body": "alpha", "lang": "en"}, {"id": "x", "body": "beta", "tags": [1]}]
    path = write(tmp_path / "docs.jsonl", "\n".join(map(json.dumps, lines)) + "\n", compress)
    documents = read(path, text_field="body")
    assert [(d.id, d.text, d.metadata) for d in documents] == [
        ("7", "alpha", {"lang": "en"}),
        ("x", "beta", {"tags": [1]}),
    ]
    assert [d.id for d in read(path, text_field="body", id_field="lang", errors="skip")] == ["en"]


def test_jsonl_without_the_text_field_names_the_fields(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"title": "a", "body": "b"}\n')
    with pytest.raises(DataError, match="line 1: no field 'text' .*title, body.*--text-field"):
        read(path)


@pytest.mark.parametrize(("name", "sep"), [("t.csv", ","), ("t.tsv", "\t")])
@pytest.mark.parametrize("compress", [False, True])
def test_csv_and_tsv_with_a_header(tmp_path, name, sep, compress):
    text = sep.join(["id", "text", "year"]) + "\n" + sep.join(["a1", '"hello, world"', "1999"])
    path = write(tmp_path / name, text + "\n" + sep.join(["a2", "bye", "2001"]) + "\n", compress)
    documents = read(path)
    assert [(d.id, d.text, d.metadata) for d in documents] == [
        ("a1", "hello, world", {"year": "1999"}),
        ("a2", "bye", {"year": "2001"}),
    ]
    with pytest.raises(DataError, match="no column 'body'.*id, text, year"):
        read(path, text_field="body")


def test_undecodable_bytes_name_the_line_and_skip_goes_on(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"good one\nbad \xff\xfe here\ngood two\n")
    with pytest.raises(
        DataError, match="mixed.txt line 2: bytes that are not UTF-8.*--errors skip"
    ):
        read(path)
    reader = CorpusReader(path, ReaderOptions(errors="skip"))
    assert [d.text for d in reader] == ["good one", "good two"]
    assert [line for line, _ in reader.skipped] == [2]
    assert read(path, errors="replace")[1].text == "bad \ufffd\ufffd here"


def test_missing_file_and_corrupt_gzip(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read(tmp_path / "nope.txt")
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(gzip.compress(b"one\ntwo\n" * 1000)[:-40])
    with pytest.raises(DataError, match="cannot be read"):
        read(broken)


def words(texts):
    return [len(t.split()) + 2 for t in texts]


def test_short_documents_stay_whole_and_long_ones_overlap_within_the_window():
    config = ChunkConfig(max_tokens=12, overlap=0.25)
    long = " ".join(f"w{i}" for i in range(50))
    short_chunks, long_chunks = chunk_documents(["just a few words", long], words, config)
    assert short_chunks == ["just a few words"]
    assert all(count <= 12 for count in words(long_chunks))
    assert long_chunks[0].split()[-2:] == long_chunks[1].split()[:2]  # 25% of 10 tokens
    covered = {word for chunk in long_chunks for word in chunk.split()}
    assert covered == set(long.split())


@pytest.mark.parametrize("length", [11, 13, 19, 27, 50])
def test_every_window_of_a_long_document_is_full_the_last_one_ending_at_its_end(length):
    text = " ".join(f"w{i}" for i in range(length))
    chunks = split_text(text, words, ChunkConfig(max_tokens=12, overlap=0.25))
    assert [len(chunk.split()) for chunk in chunks] == [10] * len(chunks)  # no short tail
    assert chunks[-1].split()[-1] == f"w{length - 1}"


def test_a_single_word_longer_than_the_window_is_cut():
    def characters(texts):  # one token per 4 characters, like a long URL
        return [len(t) // 4 + 2 for t in texts]

    chunks = split_text("x" * 400, characters, ChunkConfig(max_tokens=22))
    assert len(chunks) > 1 and all(count <= 22 for count in characters(chunks))
