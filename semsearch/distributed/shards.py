"""The shards of a distributed index build, on disk: what a partition of the corpus becomes.

A work folder (a hidden sibling of the index folder, named for what the build depends on) holds,
for partition i of the corpus:

    part-00000.jsonl   its documents and chunks, with the row id of each first chunk (driver)
    shard-00000.f32    the chunk vectors, float32 (chunks, dim), row order            (encoder)
    shard-00000.ids    their row ids, int64 (chunks,)                                  (encoder)
    shard-00000.json   written last: {"documents", "chunks", "first_row"}; its presence
                       means the shard is complete, so a rerun skips it

Every file is written to a temporary name and renamed, so a killed worker leaves no partial
shard. No pickle: JSON lines, raw float32 / int64 and JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORK_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardInfo:
    """What a finished shard holds."""

    shard: int
    documents: int
    chunks: int
    first_row: int  # row id of its first chunk; its rows are first_row .. first_row + chunks


def work_folder(index_folder: Path, key: dict) -> Path:
    """The hidden sibling of `index_folder` where the shards of a build with this `key` live.

    The key names everything the shards depend on (corpus hash, model fingerprint, chunking,
    partition size), so a rerun of the same command finds them and any change starts afresh.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(index_folder)
    return folder.parent / f".{folder.name}.shards-{digest}"


def _name(shard: int, suffix: str) -> str:
    return f"{'part' if suffix == 'jsonl' else 'shard'}-{shard:05d}.{suffix}"


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def write_records(work: Path, shard: int, records: list[dict]) -> None:
    """Write a partition's documents: one JSON object a line with id, text, metadata, chunks
    (list of chunk texts) and row (the row id of its first chunk)."""
    lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    _write_atomic(work / _name(shard, "jsonl"), lines.encode("utf-8"))


def read_records(work: Path, shard: int) -> Iterator[dict]:
    """The documents of a partition, as written by write_records."""
    with open(work / _name(shard, "jsonl"), encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def chunk_rows(records: list[dict]) -> tuple[list[str], np.ndarray]:
    """The chunk texts of a partition's records and their row ids, in row order."""
    texts: list[str] = []
    rows: list[int] = []
    for record in records:
        texts.extend(record["chunks"])
        rows.extend(range(record["row"], record["row"] + len(record["chunks"])))
    return texts, np.asarray(rows, dtype=np.int64)


def write_shard(work: Path, shard: int, documents: int, rows: np.ndarray,
                vectors: np.ndarray) -> ShardInfo:
    """Write a shard's vectors and row ids, then its JSON marker (last: the shard is complete)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    assert vectors.ndim == 2 and len(vectors) == len(rows), (vectors.shape, rows.shape)
    _write_atomic(work / _name(shard, "f32"), vectors.tobytes())
    _write_atomic(work / _name(shard, "ids"), rows.tobytes())
    first = int(rows[0]) if len(rows) else 0
    info = ShardInfo(shard, documents, len(rows), first)
    marker = {"documents": documents, "chunks": len(rows), "first_row": first,
              "format_version": WORK_FORMAT_VERSION}
    _write_atomic(work / _name(shard, "json"), json.dumps(marker).encode())
    return info


def finished_shard(work: Path, shard: int) -> ShardInfo | None:
    """The shard's info when it was completely written, else None."""
    path = work / _name(shard, "json")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if data.get("format_version") != WORK_FORMAT_VERSION:
        return None
    return ShardInfo(shard, int(data["documents"]), int(data["chunks"]), int(data["first_row"]))


def shard_vectors_path(work: Path, shard: int) -> Path:
    return work / _name(shard, "f32")


def read_shard(work: Path, shard: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A finished shard's (rows (n,), vectors (n, dim))."""
    rows = np.fromfile(work / _name(shard, "ids"), dtype=np.int64)
    vectors = np.fromfile(work / _name(shard, "f32"), dtype=np.float32).reshape(-1, dim)
    return rows, vectors
