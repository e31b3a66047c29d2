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

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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
    """
    from semsearch.embedder import load_embedder
    from semsearch.encoder import resolve_model

    key = (resolve_model(model).resolve(), device, precision, backend)
    if key not in _loaded:
        _loaded[key] = load_embedder(key[0], device=device, precision=precision, backend=backend)
    return _loaded[key]


def encode(texts: Sequence[str], model=None) -> np.ndarray:
    """A float32 (len(texts), dim) array of L2-normalised embeddings, one row per text."""
    if isinstance(texts, str):
        raise TypeError("encode takes a list of texts; for one text use encode([text])")
    return _encoder(model).encode(list(texts))


def similarity(text_a: str, text_b: str, model=None) -> float:
    """Cosine similarity of two texts, from -1 to 1."""
    a, b = _encoder(model).encode([text_a, text_b])
    return float(a @ b)


def top_k(query: str, candidates: Sequence[str], k: int = 5, model=None) -> list[tuple[str, float]]:
    """The k candidates most similar to `query`, best first, as (text, cosine) pairs."""
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
    where: dict[str, str] | None = None,
    model=None,
    rescore=None,
    rescore_depth: int | None = None,
    rescore_weight: float | None = None,
) -> list[dict] | list[list[dict]]:
    """Search an index folder (default: the latest written) as `semsearch query --json` does.

    `mode` hybrid, dense or lexical (default: hybrid where the index has a lexical part);
    `fusion` weighted or rrf and `dense_weight` override the index's calibrated fusion; `where`
    keeps documents whose metadata has every field = value. One query gives a list of hits (dicts
    with rank, score, id, chunk, chunks, text, metadata and each side's score and rank), a list
    of queries a list of such lists.

    `rescore`: a second phase, as `semsearch query --rescore`: a model folder whose encoder
    re-scores the first stage's top `rescore_depth` documents (fused with BM25 by
    `rescore_weight`; both default to the pair's calibration), False for none, None for the
    one the index records (`semsearch index --rescore`), if any. The model is loaded once per
    process and its chunk vectors cached.

        >>> semsearch.query("ocean tides", index="indexes/docs", mode="lexical",
        ...                 rescore="models/minilm", rescore_depth=30)   # doctest: +SKIP
    """
    from semsearch.embedder import model_for_index
    from semsearch.index import SearchIndex, resolve_index_dir
    from semsearch.querying import SearchOptions, resolve_mode
    from semsearch.querying import search as run_search
    from semsearch.rescoring import Rescorer

    single = isinstance(queries, str)
    texts = [queries] if single else list(queries)
    options = SearchOptions(mode=mode, fusion=fusion, dense_weight=dense_weight,
                            where=tuple((str(f), str(v)) for f, v in (where or {}).items()),
                            rescore=False if rescore is False else None,
                            rescore_depth=rescore_depth, rescore_weight=rescore_weight)
    opened = SearchIndex.open(resolve_index_dir(index))
    try:
        encoder = None
        if resolve_mode(opened, mode) != "lexical":
            encoder = _encoder(model if model is not None
                               else model_for_index(opened.manifest, None))
        rescorer = rescore if isinstance(rescore, Rescorer) else _rescorer(opened, rescore)
        if rescorer is None and (rescore_depth is not None or rescore_weight is not None):
            from semsearch.errors import ConfigError

            raise ConfigError("rescore_depth and rescore_weight need a rescoring model: give "
                              "rescore=MODEL")
        results = run_search(opened, encoder, texts, k, options=options, rescorer=rescorer)
    finally:
        opened.close()
    found = [[hit.to_dict() for hit in hits] for hits in results]
    return found[0] if single else found


def _rescorer(opened, rescore):
    """The Rescorer for `rescore` (a model folder; None: the index's recorded one) or None."""
    if rescore is False:
        return None
    from semsearch.rescoring import check_recorded, rescore_model_for_index, shared_rescorer

    wanted = rescore_model_for_index(opened.manifest, opened.folder,
                                     None if rescore is None else rescore)
    if wanted is None:
        return None
    rescorer = shared_rescorer(wanted)
    if rescore is None:
        check_recorded(opened.manifest, rescorer, opened.folder)
    return rescorer


def _encoder(model) -> Embedder:
    # a path given as str has an .encode too (str.encode), so test for paths first
    if model is None or isinstance(model, (str, Path)):
        return load(model)
    return model
