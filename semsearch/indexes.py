"""The commands that write or verify an index folder, one public function each:
`semsearch.index` (embed a corpus and build or extend an index), `semsearch.remove` (delete
documents) and `semsearch.check` (verify a folder end to end). Each takes its command's options
under the names of its flags and returns the report the command prints (`to_dict()` for
--json). This module joins the encoder (through semsearch.embedder) and the index package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semsearch.corpora.chunking import MAX_CHUNKS
from semsearch.progress import Log, resolve_log


def index(
    corpus: str | Path | None = None,
    model: str | Path | None = None,
    type: str = "auto",
    max_memory: str | int | None = None,
    target_recall: float = 0.95,
    out: str | Path | None = None,
    append: bool = False,
    batch_size: int = 64,
    format: str | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    errors: str = "strict",
    add_lexical: bool = False,
    max_chunks: int = MAX_CHUNKS,
    rescore: str | Path | None = None,
    wait: float = 0.0,
    device: str | None = "auto",
    precision: str = "fp32",
    backend: str | None = None,
    engine: str = "local",
    address: str | None = None,
    concurrency: int = 2,
    num_gpus: float = 0.0,
    shard_size: int = 10_000,
    resume: bool = False,
    lexical_only: bool = False,
    log: Log | None = None,
    progress: bool = False,
):
    """Embed the documents of `corpus` and build an index folder (`semsearch index`), at `out`
    (default: indexes/<corpus name>), or with `append=True` add them to it; returns the
    IndexReport the command prints.

    `corpus` is a text file (one document a line), JSONL or CSV/TSV with a header, gzipped or
    not (`format`, `text_field`, `id_field` as the flags); `type` flat, hnsw, ivf, ivfpq, auto
    or a FAISS factory string; `max_memory` bytes or "2G"; `errors` strict, skip or replace
    for bad lines. `add_lexical=True` gives the index at `out` its BM25 part (no corpus).
    `rescore`: a model folder recorded as the index's second phase (`query` re-scores the first
    stage's top documents with it); "none" clears it; with `out` and no corpus, only the record
    of that existing index changes.
    `engine="ray"` embeds in shards on a Ray cluster (`address`, `concurrency`, `num_gpus`,
    `shard_size`). `resume=True` continues a build of the same corpus, folder, model and
    settings that was interrupted, without encoding again what it finished (without one, it
    builds from the start). `lexical_only=True` loads no model and makes no vectors: the
    folder holds the store and BM25 alone (an --append to such an index is one too). Raises DataError for a bad corpus, IndexError_ for a folder it cannot write.

    >>> report = semsearch.index("corpora/docs.txt", model="models/quick")   # doctest: +SKIP
    >>> report.documents_total, report.recipe["factory"]                     # doctest: +SKIP
    (20, 'Flat')
    """
    log = resolve_log(log)
    from semsearch.errors import ConfigError, UsageError

    if add_lexical:
        from semsearch.index import add_lexical as add_lexical_part

        if corpus is not None or out is None:
            raise UsageError("--add-lexical takes --out INDEX and no CORPUS")
        documents = add_lexical_part(Path(out))
        log(f"added a BM25 index of {documents} documents to {out}")
        return LexicalReport(Path(out), documents)
    recorded = None
    if rescore is not None and str(rescore) != "none":
        from semsearch.rescoring import describe_model

        recorded = describe_model(rescore)
    if rescore is not None and corpus is None:
        from semsearch.index import set_rescore

        if out is None:
            raise UsageError("--rescore without a CORPUS changes an existing index: give "
                             "--out INDEX")
        set_rescore(Path(out), recorded, wait)
        log(f"{out}: second phase {recorded['model_path'] if recorded else 'cleared'}")
        return RescoreRecord(Path(out), recorded)
    if corpus is None:
        raise UsageError("give a CORPUS file to index, e.g. semsearch index corpora/docs.txt")
    given = [name for name, value, default in (
        ("--address", address, None), ("--concurrency", concurrency, 2),
        ("--num-gpus", num_gpus, 0.0), ("--shard-size", shard_size, 10_000),
    ) if value != default]
    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine {engine!r}; use local or ray")
    if engine == "local" and given:
        raise UsageError(f"{', '.join(given)} only apply with --engine ray")
    if engine == "ray" and append:
        raise UsageError("--append runs locally; leave out --engine ray")
    if resume and append:
        raise UsageError("--resume continues a build; an --append is run again whole")
    if resume and engine == "ray":
        raise UsageError("--resume continues a local build; leave out --engine ray")
    from semsearch.corpora import ReaderOptions
    from semsearch.embedder import load_embedder, model_for_index
    from semsearch.index import Manifest, default_index_dir, parse_memory
    from semsearch.indexing import IndexOptions, index_corpus

    folder = Path(out) if out else default_index_dir(Path(corpus))
    options = IndexOptions(
        type=type,
        max_memory=parse_memory(max_memory) if isinstance(max_memory, str) else max_memory,
        target_recall=target_recall,
        batch_size=batch_size,
        reader=ReaderOptions(format, text_field, id_field, errors),
        max_chunks=max_chunks,
        wait=wait,
        rescore=recorded,
        resume=resume,
    )
    if append and type != "auto":
        log(f"--type {type} ignored: an appended index keeps the recipe it was built with")
    existing = (Manifest.read(folder / "manifest.json")
                if append and (folder / "manifest.json").is_file() else None)
    if existing is not None and not existing.has_vectors:
        lexical_only = model is None  # an index without vectors is appended to without a model
    if lexical_only and (engine == "ray" or model is not None):
        raise UsageError("--lexical-only loads no model and runs locally; leave out "
                         f"{'--model' if model is not None else '--engine ray'}")
    if existing is not None and model is None:
        model = model_for_index(existing, None)
    embedder = None if lexical_only else load_embedder(
        model, device=None if device == "auto" else device, precision=precision,
        backend=backend)
    if embedder is None:
        log(f"{'appending' if append else 'indexing'} {corpus} for BM25 alone (no model)")
    else:
        log(f"{'appending' if append else 'indexing'} {corpus} with model {embedder.name}"
            + (f" ({precision})" if precision != "fp32" else "")
            + f" on {getattr(embedder, 'backend', 'torch')}")
    if engine == "ray":
        from semsearch.distributed import RayOptions, index_corpus_ray

        ray = RayOptions(address=address, concurrency=concurrency, num_gpus=num_gpus,
                         partition_documents=shard_size)
        return index_corpus_ray(Path(corpus), embedder, folder, options, ray, log=log)
    from semsearch.progress import Meter, Metered

    if progress or embedder is None or getattr(embedder, "single_threaded", False):
        # a bar on a terminal, else a line a stage with its time (a static model encodes in
        # the build's worker processes, where a meter's count would be a worker's share)
        return index_corpus(Path(corpus), embedder, folder, options, append=append,
                            progress=progress, log=log)
    # no bar (not a terminal): a line every so often as the chunks are encoded
    with Meter(None, f"{'appending' if append else 'indexing'}: encoded", log,
               unit="chunk") as meter:
        return index_corpus(Path(corpus), Metered(embedder, meter), folder, options,
                            append=append, progress=progress, log=log)


@dataclass
class LexicalReport:
    """What `index(add_lexical=True)` did: the folder and the documents its BM25 part holds."""

    folder: Path
    lexical_documents: int

    def to_dict(self) -> dict:
        return {"index": str(self.folder), "lexical_documents": self.lexical_documents}


@dataclass
class RescoreRecord:
    """What `index(rescore=..., out=...)` without a corpus recorded: the second phase (None:
    cleared)."""

    folder: Path
    rescore: dict | None

    def to_dict(self) -> dict:
        return {"index": str(self.folder), "rescore": self.rescore}


@dataclass
class RemoveReport:
    """What `remove` deleted."""

    folder: Path
    documents_removed: int
    vectors_removed: int

    def to_dict(self) -> dict:
        return {"index": str(self.folder), "documents_removed": self.documents_removed,
                "vectors_removed": self.vectors_removed}


def remove(ids: Sequence[str], index: str | Path | None = None, wait: float = 0.0,
           log: Log | None = None) -> RemoveReport:
    """Delete the documents `ids` (all their chunks) from the index folder `index` (default:
    the latest written; `semsearch remove`). Flat and IVF indexes delete in place; an HNSW
    graph cannot, and IndexError_ says so with nothing changed. `wait`: seconds to wait for
    another process writing the folder.

    >>> semsearch.remove(["docs:12"], index="indexes/docs")      # doctest: +SKIP
    RemoveReport(folder=PosixPath('indexes/docs'), documents_removed=1, vectors_removed=1)
    """
    log = resolve_log(log)
    from semsearch.index import remove_documents, resolve_index_dir

    if isinstance(ids, str):
        ids = [ids]
    folder = resolve_index_dir(index)
    documents, vectors = remove_documents(folder, list(ids), wait=wait)
    log(f"removed {documents} documents ({vectors} vectors) from {folder}")
    return RemoveReport(folder, documents, vectors)


def check(index: str | Path | None = None, model: str | Path | None = None,
          sample: int = 1000, log: Log | None = None):
    """Verify the index folder `index` (default: the latest) without changing it (`semsearch
    check`): manifest, FAISS file, document store, re-rank file, the model's fingerprint
    (`model`, default the one it was built with), the fusion, the recorded second phase, and recall@10 against exact search
    on `sample` stored vectors. Returns the Verification: `.healthy`, `.checks`, `.to_dict()`.

    >>> semsearch.check("indexes/docs").healthy        # doctest: +SKIP
    True
    """
    log = resolve_log(log)
    from semsearch.index import resolve_index_dir
    from semsearch.index.verify import verify_index

    folder = resolve_index_dir(index)
    report = verify_index(folder, sample=sample)
    if report.manifest is not None:
        _check_fingerprint(report, model)
        if report.manifest.lexical and report.manifest.has_vectors:
            from semsearch.index.fusion import describe_fusion, index_fusion

            fusion = describe_fusion(*index_fusion(report.manifest))
            report.add("fusion", "ok" if fusion["calibrated"] else "warn",
                       f"hybrid {fusion['setting']}: {fusion['note']}")
        _check_rescore(report)
    log(f"{folder}: {'healthy' if report.healthy else 'NOT healthy'}")
    return report


def _check_rescore(report) -> None:
    """The second phase the index records (index --rescore): its model is there, unchanged."""
    from semsearch.rescoring import describe_model, recorded_model

    recorded = recorded_model(report.manifest)
    if recorded is None:
        return
    fix = (f"record it again with `semsearch index --rescore MODEL --out {report.folder}` or "
           "query with --no-rescore")
    try:
        now = describe_model(recorded["model_path"])
    except Exception as error:  # noqa: BLE001 - a missing or broken folder: one line
        report.add("rescore", "fail", f"rescoring model {recorded['model_path']}: {error}; {fix}")
        return
    if now["model_fingerprint"] != recorded.get("model_fingerprint"):
        report.add("rescore", "fail", f"rescoring model {now['model_path']} now has fingerprint "
                   f"{now['model_fingerprint']}, not the recorded "
                   f"{recorded.get('model_fingerprint')}; {fix}")
    else:
        report.add("rescore", "ok", f"second phase {now['model_path']} matches fingerprint "
                   f"{now['model_fingerprint']}")


def _check_fingerprint(report, model: str | Path | None) -> None:
    """The model the index was built with (or `model`) still gives the vectors it holds."""
    from semsearch.encoder.store import CONFIG, model_fingerprints, read_config
    from semsearch.errors import SemsearchError

    manifest = report.manifest
    if not manifest.has_vectors:
        report.add("model", "ok", "none needed: the index has no vectors (--lexical-only)")
        return
    folder = Path(model) if model else Path(manifest.model_path)
    if not (folder / CONFIG).is_file():
        report.add("model", "fail" if model else "warn",
                   f"model folder {folder} not found; pass --model DIR to check the fingerprint")
        return
    try:
        full, weights_only = model_fingerprints(folder, read_config(folder))
    except (SemsearchError, OSError) as error:
        report.add("model", "fail", f"{folder}: {error}")
        return
    if manifest.model_fingerprint == full:
        report.add("model", "ok", f"{folder} matches fingerprint {full}")
    elif manifest.model_fingerprint == weights_only:
        report.add("model", "warn", f"{folder} has the same weights; this index was built before "
                   "fingerprints covered tokenizer.json and config.json, so changes to those "
                   "cannot be detected: rebuild it to record the full fingerprint")
    else:
        report.add("model", "fail", f"{folder} (fingerprint {full}) is not the model this index "
                   f"was built with ({manifest.model_fingerprint}); rebuild the index or pass "
                   "--model with the original model")
