"""The shard files of a distributed build: written atomically, read back, keyed by what they
depend on. No Ray needed."""

import numpy as np

from semsearch.distributed.shards import (
    chunk_rows,
    finished_shard,
    read_records,
    read_shard,
    work_folder,
    write_records,
    write_shard,
)


def test_records_and_shard_round_trip(tmp_path):
    records = [
        {"id": "a:1", "text": "one", "chunks": ["one"], "row": 10, "metadata": {}},
        {"id": "a:2", "text": "two three", "chunks": ["two", "three"], "row": 11,
         "metadata": {"lang": "en"}},
    ]
    write_records(tmp_path, 3, records)
    assert list(read_records(tmp_path, 3)) == records
    texts, rows = chunk_rows(records)
    assert texts == ["one", "two", "three"] and rows.tolist() == [10, 11, 12]
    assert finished_shard(tmp_path, 3) is None  # records alone are not a finished shard
    vectors = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    info = write_shard(tmp_path, 3, len(records), rows, vectors)
    assert finished_shard(tmp_path, 3) == info
    assert (info.documents, info.chunks, info.first_row) == (2, 3, 10)
    read_rows, read_vectors = read_shard(tmp_path, 3, 4)
    assert read_rows.tolist() == [10, 11, 12] and np.array_equal(read_vectors, vectors)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_work_folder_changes_with_what_the_shards_depend_on(tmp_path):
    key = {"corpus": "abc", "model": "f00", "partition_documents": 10}
    first = work_folder(tmp_path / "idx", key)
    assert first.parent == tmp_path and first.name.startswith(".idx.shards-")
    assert work_folder(tmp_path / "idx", dict(key)) == first
    assert work_folder(tmp_path / "idx", {**key, "model": "bee"}) != first
