"""An IVF index built across Ray tasks from the shards' vectors, never all in one process
(autofaiss's distributed build): trained once at the driver on a sample, filled a shard a task
(each on its own copy of the trained index), and the copies' inverted lists merged in pairs,
round by round. Recipes that cannot merge lists (exact, HNSW) are built at the driver."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semsearch.distributed.session import MAX_RETRIES
from semsearch.distributed.shards import ShardInfo, read_shard
from semsearch.index import (
    VectorFile,
    build_index,
    create_index,
    train_index,
    training_sample,
    write_index,
)


class ShardBuildFailed(RuntimeError):
    """A Ray task of the build failed; `error` is Ray's (the caller words it)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def build_from_shards(ray, recipe, vectors: VectorFile, count: int, work: Path,
                       infos: list[ShardInfo]):
    """(index, vectors trained on): IVF recipes trained at the driver, filled a shard a Ray
    task and merged in rounds; others built at the driver from the vector file."""
    import faiss

    index = create_index(recipe, vectors.dim)
    if faiss.try_extract_index_ivf(index) is None or len(infos) == 1:
        return build_index(recipe, vectors, count)
    sample = training_sample(vectors, 0, count, recipe.train_size or count)
    train_index(index, sample)
    trained = ray.put(faiss.serialize_index(index))
    try:
        parts = [_add_shard.remote(trained, str(work), info.shard, vectors.dim) for info in infos]
        round_ = 0
        while len(parts) > 1:  # merge pairs in parallel, log2(shards) rounds
            merged = [_merge_pair.remote(parts[i], parts[i + 1], str(work), round_, i // 2)
                      for i in range(0, len(parts) - 1, 2)]
            parts = merged + (parts[-1:] if len(parts) % 2 else [])
            round_ += 1
        path = ray.get(parts[0])
    except ray.exceptions.RayError as error:
        raise ShardBuildFailed(error) from None
    return faiss.read_index(path), len(sample)


def _remote(function):
    """`function` as a Ray task (made on first use, so importing this module needs no Ray)."""
    holder: dict = {}

    class Lazy:
        @staticmethod
        def remote(*args):
            if "task" not in holder:
                import ray

                holder["task"] = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(function)
            return holder["task"].remote(*args)

    return Lazy


def add_shard_task(trained: np.ndarray, work: str, shard: int, dim: int) -> str:
    """Add one shard's vectors (under their row ids) to a copy of the trained index; write it."""
    import faiss

    index = faiss.deserialize_index(trained)
    rows, vectors = read_shard(Path(work), shard, dim)
    index.add_with_ids(np.ascontiguousarray(vectors), np.ascontiguousarray(rows))
    path = Path(work) / f"index-shard-{shard:05d}.faiss"
    _write_index_atomic(index, path)
    return str(path)


def merge_pair_task(first: str, second: str, work: str, round_: int, pair: int) -> str:
    """Move the inverted lists of `second` into `first` (faiss merge_into); write the result."""
    import faiss

    index, other = faiss.read_index(first), faiss.read_index(second)
    faiss.merge_into(index, other, False)  # ids kept: they are the global row ids already
    path = Path(work) / f"index-merge-{round_:02d}-{pair:05d}.faiss"
    _write_index_atomic(index, path)
    for used in (first, second):
        Path(used).unlink(missing_ok=True)
    return str(path)


def _write_index_atomic(index, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_index(index, temporary)
    os.replace(temporary, path)


_add_shard = _remote(add_shard_task)
_merge_pair = _remote(merge_pair_task)
