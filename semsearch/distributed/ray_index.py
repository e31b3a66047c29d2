"""`semsearch index --engine ray`: embed a corpus on a Ray cluster in shards, then build the
normal index folder from the shards.

1. The driver reads the corpus in partitions of `partition_documents` documents, cuts long
   documents into chunks as `--engine local` does, gives every chunk its row id, and writes each
   partition's records to the work folder (shards.py).
2. Ray Data runs a pool of encoder actors (`map_batches` with a callable class, so each worker
   loads the model once); an actor embeds a whole partition and writes it as a shard, atomically.
   A rerun of the same command finds the finished shards and embeds only the others.
3. The index is built from the shards without holding every vector in one process: for IVF
   recipes (ivf, ivfpq, and auto beyond 50K vectors) the driver trains on a sample, one Ray task
   a shard adds that shard's vectors to its own copy of the trained index, and Ray tasks merge
   the copies' inverted lists in pairs, round by round (autofaiss's distributed build;
   merge_build.py). Exact and HNSW recipes, which cannot merge lists, are built at the driver
   from the vector file, as local.
4. nprobe / efSearch are tuned on encoded corpus spans as local; the folder gets the same files and
   manifest (plus `engine` and `shards`), so query, --append and remove work on it unchanged.

The folder is written through its IndexWriter, whose write lock is held for the whole build;
connecting to Ray, and its options, are session.py. The work folder is a hidden sibling of the
index folder, and on a cluster it must be on storage every node sees (the actors write shards
there, the tasks read them). It is deleted once the index folder is written, and kept after a
failure so the rerun resumes.
"""

from __future__ import annotations

import re
import shutil
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from semsearch.corpora import ChunkConfig, CorpusReader, chunk_documents
from semsearch.distributed.merge_build import ShardBuildFailed, build_from_shards
from semsearch.distributed.session import (
    MAX_RETRIES,
    RayOptions,
    ray_session,
    require_ray,
)
from semsearch.distributed.shards import (
    ShardInfo,
    chunk_rows,
    finished_shard,
    read_records,
    shard_vectors_path,
    work_folder,
    write_records,
    write_shard,
)
from semsearch.embed_chunks import EmbedStats, embed_texts
from semsearch.embedder import Embedder, load_embedder
from semsearch.encoder.store import sha256_file
from semsearch.errors import DataError, IndexError_, SemsearchError
from semsearch.index import (
    IndexWriter,
    VectorFile,
    choose_recipe,
)
from semsearch.index_tuning import tune_to_target, tuning_queries
from semsearch.indexing import IndexOptions, IndexReport, corpus_entry, new_manifest

# seconds to wait for the cluster to find room for the encoder actors (an autoscaling cluster
# may have to start nodes) before saying so
PLACEMENT_TIMEOUT = 600.0


def index_corpus_ray(
    corpus: Path,
    embedder: Embedder,
    out: Path,
    options: IndexOptions | None = None,
    ray_options: RayOptions | None = None,
    load: Callable[[], Embedder] | None = None,
    log: Callable[[str], None] | None = None,
) -> IndexReport:
    """Embed `corpus` on Ray in shards and write the index folder `out` (see the module doc).

    `embedder` is used at the driver to count tokens and to name the model; `load` makes the same
    encoder inside each actor (default: load_embedder of the embedder's folder on the CPU, or the
    GPU when num_gpus > 0). `log` gets one line a stage.
    """
    started = time.perf_counter()
    options = options or IndexOptions()
    ray_options = ray_options or RayOptions()
    log = log or (lambda _line: None)
    ray = require_ray()
    out = Path(out)
    # the folder's write lock is held for the whole build, as local; a path that is not an index
    # is refused here, before any work
    with IndexWriter(out, options.wait, fresh=True) as writer:
        reader = CorpusReader(corpus, options.reader)
        chunking = ChunkConfig(max_tokens=embedder.max_seq_len, overlap=options.overlap)
        key = {
            "corpus": sha256_file(reader.path),
            "reader": repr(options.reader),
            "model": embedder.fingerprint,
            "precision": getattr(embedder, "precision", "fp32"),
            "chunking": chunking.to_dict(),
            "partition_documents": ray_options.partition_documents,
        }
        work = work_folder(out, key)
        if load is None:
            device = "cuda" if ray_options.num_gpus > 0 else "cpu"
            load = partial(load_embedder, str(getattr(embedder, "path", embedder.name)), device,
                           None, getattr(embedder, "precision", "fp32"))
        try:
            with ray_session(ray, ray_options):  # first: an unreachable cluster fails at once
                work.mkdir(parents=True, exist_ok=True)
                shards, pending = _write_partitions(reader, embedder, work, chunking,
                                                    ray_options.partition_documents)
                if not shards:
                    skipped = (f" ({len(reader.skipped)} unreadable lines skipped)"
                               if reader.skipped else "")
                    raise DataError(f"corpus {reader.path} has no documents{skipped}; give a file "
                                    "with one document a line (blank lines are skipped)")
                log(f"{len(shards)} shards in {work}: {len(shards) - len(pending)} already embedded, "
                    f"{len(pending)} to embed")
                if pending:
                    _embed_shards(ray, pending, work, load, options.batch_size, ray_options, log)
                infos = [finished_shard(work, shard) for shard in range(len(shards))]
                missing = [str(i) for i, info in enumerate(infos) if info is None]
                if missing:
                    raise IndexError_(
                        f"shard(s) {', '.join(missing[:5])} of {len(infos)} were not written; rerun "
                        "the same command to embed them (finished shards are kept)")
                report = _write_folder(ray, writer, reader, embedder, options, chunking, work,
                                       infos, log)
        except OSError as error:  # a full disk, a folder that cannot be written
            _drop_if_empty(work)
            where = f" ({error.filename})" if error.filename else ""
            raise IndexError_(
                f"writing the index failed: {error.strerror or error}{where}; free space or fix the "
                f"folder and rerun the same command (finished shards are kept in {work})") from None
        except BaseException:
            _drop_if_empty(work)
            raise
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _drop_if_empty(work: Path) -> None:
    """Remove a work folder that holds no finished shard (nothing to resume from)."""
    if work.is_dir() and not any(work.glob("shard-*.json")):
        shutil.rmtree(work, ignore_errors=True)


def _write_partitions(reader: CorpusReader, embedder: Embedder, work: Path,
                      chunking: ChunkConfig, size: int) -> tuple[list[int], list[int]]:
    """Read the corpus in partitions of `size` documents and write each one's records (row ids
    assigned in corpus order, as local) unless its shard is already finished. Returns (all
    shards, shards to embed)."""
    shards: list[int] = []
    pending: list[int] = []
    row = 0
    batch = []

    def flush() -> None:
        nonlocal row
        shard = len(shards)
        shards.append(shard)
        done = finished_shard(work, shard)
        if done is not None and done.first_row == row and done.documents == len(batch):
            row += done.chunks
            return
        records = []
        for document, chunks in zip(
            batch, chunk_documents([d.text for d in batch], embedder.count_tokens, chunking),
            strict=True,
        ):
            records.append({"id": document.id, "text": document.text, "chunks": chunks,
                            "row": row, "metadata": document.metadata})
            row += len(chunks)
        write_records(work, shard, records)
        pending.append(shard)

    for document in reader:
        batch.append(document)
        if len(batch) >= size:
            flush()
            batch = []
    if batch:
        flush()
    return shards, pending


class ShardFailed(RuntimeError):
    """Embedding one shard failed (raised in a Ray worker, reported by the driver)."""


class ShardEncoder:
    """A Ray Data actor: loads the encoder once, then embeds whole partitions into shards.

    Called with a batch of shard numbers (one, as map_batches is given batch_size=1); returns
    each one's chunk count. `batch_size` is texts a forward pass inside the partition.
    """

    def __init__(self, load: Callable[[], Embedder], work: str, batch_size: int) -> None:
        self.embedder = load()
        self.work = Path(work)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        counts = []
        for shard in batch["shard"]:
            try:
                records = list(read_records(self.work, int(shard)))
                texts, rows = chunk_rows(records)
                vectors = embed_texts(self.embedder, texts, self.batch_size)
                info = write_shard(self.work, int(shard), len(records), rows, vectors)
            except Exception as error:  # name the shard; Ray wraps this in its own error
                raise ShardFailed(f"shard {int(shard)}: {type(error).__name__}: {error}") from None
            counts.append(info.chunks)
        return {"shard": np.asarray(batch["shard"]), "chunks": np.asarray(counts)}


def _embed_shards(ray, pending: list[int], work: Path, load, batch_size: int,
                  ray_options: RayOptions, log: Callable[[str], None]) -> None:
    """Embed the pending partitions with a pool of ShardEncoder actors (Ray Data), placed in a
    placement group of one bundle an actor. Removing the group at the end kills the actors
    then and there: Ray Data only lets go of its handles, and an actor lives, holding its CPUs
    or GPUs, until the last handle is garbage-collected, which a caller holding the error (or a
    reference cycle) can put off indefinitely; a second build in the same Ray session then
    waits for those CPUs forever."""
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    size = min(ray_options.concurrency, len(pending))
    bundle = {"CPU": ray_options.num_cpus}
    if ray_options.num_gpus:
        bundle["GPU"] = ray_options.num_gpus
    group = placement_group([bundle] * size, strategy="SPREAD")
    try:
        if not group.wait(timeout_seconds=PLACEMENT_TIMEOUT):
            each = " and ".join(f"{amount:g} {name}" for name, amount in bundle.items())
            free = ray.available_resources()
            raise IndexError_(
                f"the Ray cluster found no room for {size} encoder actor(s) of {each} each in "
                f"{PLACEMENT_TIMEOUT:g} s ({free.get('CPU', 0):g} CPU and {free.get('GPU', 0):g} "
                "GPU free); lower --concurrency or --num-gpus, or add nodes, and rerun")
        failure = _run_encoders(ray, pending, work, load, batch_size, ray_options, size,
                                PlacementGroupSchedulingStrategy(group), log)
    finally:
        remove_placement_group(group)
    if failure is not None:
        raise IndexError_(failure)  # here, not in the handler: the caller gets no Ray frames


def _run_encoders(ray, pending, work, load, batch_size, ray_options, size, placement,
                  log) -> str | None:
    """Run the actor pool over the pending shards; the failure's one-line message, or None."""
    dataset = ray.data.from_items([{"shard": shard} for shard in pending],
                                  override_num_blocks=len(pending))
    with warnings.catch_warnings():  # max_restarts goes through Ray's deprecated **kwargs
        warnings.simplefilter("ignore", DeprecationWarning)
        embedded = dataset.map_batches(
            ShardEncoder,
            fn_constructor_kwargs={"load": load, "work": str(work), "batch_size": batch_size},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=ray_options.num_cpus,
            num_gpus=ray_options.num_gpus,
            scheduling_strategy=placement,
            # a worker that dies (killed, out of memory) is restarted and its partition redone,
            # a few times, not forever (Ray Data's default); a shard is written atomically, so a
            # half-done one is never taken for finished
            max_restarts=MAX_RETRIES,
            max_task_retries=MAX_RETRIES,
        )
    started, done, chunks = time.perf_counter(), 0, 0
    try:
        for row in embedded.iter_rows():
            done += 1
            chunks += int(row["chunks"])
            log(f"embedded shard {int(row['shard'])} ({done}/{len(pending)}, {chunks:,} chunks, "
                f"{chunks / (time.perf_counter() - started):,.0f} chunks/s)")
    except ray.exceptions.RayError as error:
        return _ray_failure("embedding", error, work)
    return None


def _ray_failure(stage: str, error: BaseException, work: Path) -> str:
    """One line for a failed Ray stage: the innermost error's last line, and how to resume."""
    named = re.findall(r"ShardFailed: (shard \d+: .*)", str(error))
    cause = error
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:
        cause = cause.cause
    if named:  # the worker's own exception, with its shard
        detail = named[-1].strip()[:200]
    elif isinstance(cause, SemsearchError):
        detail = str(cause)
    else:
        lines = [line for line in str(cause).strip().splitlines() if line.strip()]
        detail = lines[-1][:200] if lines else type(cause).__name__
    return (f"{stage} on Ray failed: {detail}; rerun the same command to resume (finished shards "
            f"are kept in {work})")


def _write_folder(ray, writer: IndexWriter, reader, embedder, options, chunking, work,
                  infos, log) -> IndexReport:
    """Build the index folder from the finished shards and commit it, as local does."""
    count = sum(info.chunks for info in infos)
    documents = sum(info.documents for info in infos)
    recipe = choose_recipe(options.type, count, embedder.dim, options.max_memory)
    writer.stage()
    store = writer.documents()
    try:
        for info in infos:  # a shard's documents in one insert
            store.add_documents([(record["id"], record["text"], record["chunks"], record["row"],
                                  record["metadata"])
                                 for record in read_records(work, info.shard)])
        vectors = _concatenate(work, infos, writer.vectors(embedder.dim))
        log(f"building {recipe.factory} from {len(infos)} shards ({count:,} vectors)")
        try:
            index, trained_on = build_from_shards(ray, recipe, vectors, count, work, infos)
        except ShardBuildFailed as failed:
            raise IndexError_(_ray_failure("building the index", failed.error, work)) from None
        recipe = tune_to_target(
            index, recipe, vectors, count, options.target_recall,
            lambda: tuning_queries(store, embedder, np.arange(count, dtype=np.int64)))
        writer.write_index(index)
        if not recipe.rerank:
            vectors.path.unlink()
        manifest = new_manifest(
            embedder, index, store, recipe, chunking,
            corpus_entry(reader, EmbedStats(documents, count, 0), embedder), count, trained_on,
            writer.write_lexical(store), engine="ray", shards=len(infos))
        manifest.rescore = options.rescore
        store.commit()
        writer.write_manifest(manifest)
    finally:
        store.close()
    writer.commit(latest=True)
    return IndexReport(writer.folder, recipe.to_dict(), documents, count, 0, reader.skipped,
                       manifest.documents, manifest.count)


def _concatenate(work: Path, infos: list[ShardInfo], vectors: VectorFile) -> VectorFile:
    """The shards' vectors in row order in one file (the re-rank vectors, and tuning's input);
    streamed shard by shard, so no more than one shard is in memory."""
    row = 0
    with open(vectors.path, "wb") as target:
        for info in infos:
            if info.first_row != row and info.chunks:
                raise IndexError_(f"shard {info.shard} starts at row {info.first_row}, expected "
                                  f"{row}; delete {work} and rerun")
            with open(shard_vectors_path(work, info.shard), "rb") as source:
                shutil.copyfileobj(source, target, 16 << 20)
            row += info.chunks
    if len(vectors) != row:
        raise IndexError_(f"the shards in {work} hold {len(vectors)} vectors, their markers say "
                          f"{row}; delete {work} and rerun")
    return vectors
