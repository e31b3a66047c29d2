"""The Python API in five names: load a model, encode texts, compare two, rank candidates, and
search an index folder (`semsearch.query("ocean tides", index="indexes/docs")`).

    >>> import semsearch
    >>> semsearch.similarity("I love programming", "I enjoy coding")        # doctest: +SKIP
    0.83
    >>> semsearch.top_k("Machine learning and AI",
    ...                 ["Deep neural networks", "Beautiful sunset", "AI algorithms"], k=2)  # doctest: +SKIP
    [('AI algorithms', 0.71), ('Deep neural networks', 0.64)]

`model` is everywhere a model folder (or a name under models/), None for the newest one under
models/, or an encoder that `load` returned. Folders are loaded once and kept for later calls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semsearch.progress import Log, resolve_log

if TYPE_CHECKING:
    from semsearch.embedder import Embedder

_loaded: dict[tuple[Path, str | None, str, str | None], Embedder] = {}


def load(model: str | Path | None = None, device: str | None = None,
         precision: str = "fp32", backend: str | None = None) -> Embedder:
    """The encoder in the model folder `model` (default: the newest under models/), in
    `precision` fp32 or int8 (CPU only), run by `backend` as the CLI's --backend: "onnx" (ONNX
    Runtime, CPU; the graph is exported into the folder on first use), "torch", or None (the
    default): ONNX Runtime on a CPU where it is installed, torch otherwise and on a GPU.

    Raises ModelError when the folder is missing, incomplete or of another format version, and
    ConfigError for an unknown precision or backend, or int8 on a GPU.

    >>> model = semsearch.load("models/minilm", precision="int8")      # doctest: +SKIP
    >>> semsearch.encode(["a sentence"], model=model).shape            # doctest: +SKIP
    (1, 384)
    """
    from semsearch.embedder import load_embedder
    from semsearch.encoder import resolve_model

    key = (resolve_model(model).resolve(), device, precision, backend)
    if key not in _loaded:
        _loaded[key] = load_embedder(key[0], device=device, precision=precision, backend=backend)
    return _loaded[key]


def encode(texts: Sequence[str], model=None) -> np.ndarray:
    """A float32 (len(texts), dim) array of L2-normalised embeddings, one row per text.

    >>> semsearch.encode(["a sentence", "another"]).dtype               # doctest: +SKIP
    dtype('float32')
    """
    if isinstance(texts, str):
        raise TypeError("encode takes a list of texts; for one text use encode([text])")
    return _encoder(model).encode(list(texts))


def similarity(text_a: str, text_b: str, model=None) -> float:
    """Cosine similarity of two texts, from -1 to 1.

    >>> round(semsearch.similarity("I love programming", "I enjoy coding",
    ...                            model="models/minilm"), 4)             # doctest: +SKIP
    0.8172
    """
    a, b = _encoder(model).encode([text_a, text_b])
    return float(a @ b)


def top_k(query: str, candidates: Sequence[str], k: int = 5, model=None) -> list[tuple[str, float]]:
    """The k candidates most similar to `query`, best first, as (text, cosine) pairs.

    >>> [text for text, _ in semsearch.top_k("Machine learning",
    ...                                      ["Deep neural networks", "Ocean waves"], k=1)]  # doctest: +SKIP
    ['Deep neural networks']
    """
    from semsearch.index.metrics import top_k_indices

    if isinstance(candidates, str):
        raise TypeError("top_k takes a list of candidate texts")
    candidates = list(candidates)
    if not candidates:
        return []
    vectors = _encoder(model).encode([query, *candidates])
    scores = vectors[1:] @ vectors[0]  # (candidates,)
    return [(candidates[i], float(scores[i])) for i in top_k_indices(scores[None, :], k)[0]]


def query(
    queries: str | Sequence[str],
    index: str | Path | None = None,
    k: int = 5,
    mode: str | None = None,
    fusion: str | None = None,
    dense_weight: float | None = None,
    where: dict[str, str] | Sequence[tuple[str, str]] | None = None,
    model=None,
    depth: int | None = None,
    nprobe: int | None = None,
    ef: int | None = None,
    device: str | None = "auto",
    rescore=None,
    rescore_depth: int | None = None,
    rescore_weight: float | None = None,
    no_rescore: bool = False,
    keep: bool = True,
    log: Log | None = None,
):
    """Search an index folder (default: the latest written) as `semsearch query` does.

    `mode` hybrid, dense or lexical (default: hybrid where the index has a lexical part);
    `fusion` weighted or rrf, `dense_weight` and `depth` override the index's calibrated fusion;
    `where` keeps documents whose metadata has every field = value; `nprobe` / `ef` widen an
    IVF / HNSW search. One query gives a list of hits (dicts with rank, score, id, chunk,
    chunks, text, metadata and each side's score and rank), a list of queries a list of such
    lists; either is a QueryResult, which also holds what the command prints beside the hits.
    `keep`: keep the model loaded, and the index opened, for later calls (the index is opened
    again once a writer has swapped in a new version); the command line, which searches once
    and exits, passes False and gets the fastest start instead.

    `rescore`: a second phase, as `semsearch query --rescore`: a model folder whose encoder
    re-scores the first stage's top `rescore_depth` documents (fused with BM25 by
    `rescore_weight`; both default to the pair's calibration), None for the one the index
    records (`semsearch index --rescore`), if any; `no_rescore=True` (or rescore=False) for
    none. The model is loaded once per process and its chunk vectors cached.

    >>> semsearch.query("ocean tides", index="indexes/docs", k=1)[0]["id"]   # doctest: +SKIP
    'docs:7'
    >>> semsearch.query("ocean tides", index="indexes/docs", mode="lexical",
    ...                 rescore="models/minilm", rescore_depth=30)   # doctest: +SKIP
    """
    from semsearch.querying import run_query

    log = resolve_log(log)
    if no_rescore and (rescore not in (None, False) or rescore_depth is not None
                       or rescore_weight is not None):
        from semsearch.errors import UsageError

        raise UsageError("--no-rescore turns the second phase off; leave out --rescore*")
    loader = None
    if keep or (model is not None and not isinstance(model, (str, Path))):
        loader = _encoder
    return run_query(queries, index, k, mode, fusion, dense_weight, where, model, depth, nprobe,
                     ef, None if device == "auto" else device, loader, log,
                     False if no_rescore else rescore, rescore_depth, rescore_weight,
                     opener=_opened if keep else None)


def embed(
    corpus: str | Path,
    out: str | Path,
    model=None,
    batch_size: int = 64,
    format: str | None = None,
    text_field: str = "text",
    id_field: str | None = None,
    errors: str = "strict",
    overwrite: bool = False,
    device: str | None = "auto",
    precision: str = "fp32",
    backend: str | None = None,
    progress: bool = False,
    log: Log | None = None,
):
    """Write the vector of every document of `corpus` (any file `index` reads; `format`,
    `text_field`, `id_field` and `errors` as there) to `out` (`semsearch embed`): vectors.npy
    with its ids in vectors.ids.txt, or vectors.parquet (columns id, embedding). One unit
    float32 vector a document (its first max_seq_len tokens), streamed to disk; an existing
    `out` is replaced only with `overwrite`. Progress: a bar with `progress` (a terminal),
    otherwise a line through `log` every 15 s. Returns the EmbedReport the command prints.

    >>> semsearch.embed("corpora/docs.txt", "docs.npy").documents      # doctest: +SKIP
    20
    """
    from semsearch.corpora import ReaderOptions
    from semsearch.embed_corpus import embed_corpus, output_format
    from semsearch.embedder import load_embedder

    output_format(Path(out))  # a bad `out` fails before the model loads
    embedder = model if hasattr(model, "encode") and not isinstance(model, (str, Path)) else (
        load_embedder(model, device=None if device == "auto" else device,
                      precision=precision, backend=backend))
    options = ReaderOptions(format=format, text_field=text_field, id_field=id_field,
                            errors=errors)
    return embed_corpus(corpus, embedder, out, options, batch_size=batch_size,
                        overwrite=overwrite, progress=progress, log=log)


# index folders opened by `query`, kept as models are: folder -> (index, identity, lock)
_indexes: dict = {}
_indexes_lock = threading.Lock()


def _opened(folder: Path):
    """The index in `folder`, opened on first use and kept for later calls (opening one of a
    million documents cost 30 ms a query); opened again when a writer has swapped in a new
    version (`--append`, `remove`, a rebuild), which its identity (the folder's and manifest's
    inodes and the manifest's time) shows at the cost of two stat calls."""
    from semsearch.index import SearchIndex
    from semsearch.index.search_index import folder_identity

    key = Path(os.path.abspath(folder))
    identity = folder_identity(key)  # before opening: a swap during the open shows next time
    with _indexes_lock:
        kept = _indexes.get(key)
        if kept is not None and identity is not None and kept[1] == identity:
            return kept[0], kept[2]
        opened = SearchIndex.open(key)
        if kept is not None:
            with kept[2]:  # a search still running on the old version finishes first
                kept[0].close()
        _indexes[key] = (opened, identity, threading.Lock())
        return opened, _indexes[key][2]


def _encoder(model) -> Embedder:
    # a path given as str has an .encode too (str.encode), so test for paths first
    if model is None or isinstance(model, (str, Path)):
        return load(model)
    return model
