"""Which encoder runs, and whether it fits an index: the `Embedder` interface the indexing and
querying halves (semsearch.indexing, semsearch.querying) take, `load_embedder` (the backend
choice every entry point shares: CLI, Python API, server), and the check that an index's vectors
came from the encoder given.

The encoder package is imported only inside `load_embedder`, so this module stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from semsearch.errors import ConfigError, IndexError_

if TYPE_CHECKING:
    from semsearch.index import Manifest


class Embedder(Protocol):
    """What the index needs from an encoder (SentenceEncoder satisfies it)."""

    name: str
    dim: int
    fingerprint: str  # identifies the weights; an index refuses queries from other weights
    max_seq_len: int  # tokens a text may have, including the 2 special tokens

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    # optional: `single_threaded = True` says encode runs on one core, so `semsearch index`
    # encodes in one worker process a core (the static model); without it an encoder is taken
    # to spread one call over the cores itself (torch, ONNX Runtime) and encodes in the caller


def load_embedder(model: str | Path | None, device: str | None = None,
                  texts: int | None = None, precision: str = "fp32",
                  backend: str | None = None, threads: int | None = None,
                  one_shot: bool = False) -> Embedder:
    """The trained encoder at `model` (None: the newest under models/) on `device` (None: auto)
    in `precision` (fp32, or int8: CPU only), run by `backend`: "onnx" (ONNX Runtime, CPU),
    "torch", or None: onnx on a CPU when onnxruntime is installed, torch otherwise and on a GPU.

    For a few texts on the CPU in fp32 (`texts` <= NUMPY_MAX_TEXTS, as for a query) with no
    backend named, torch is never imported (its import is most of a query's wall time): the
    model's exported ONNX graph when it is there and current (faster than numpy a text once
    loaded), else the numpy forward pass; both give the torch vectors. `one_shot`: the process
    encodes these few texts and exits (a `semsearch query` from the shell), so start-up counts,
    and there numpy is the faster for up to ONE_SHOT_NUMPY_TEXTS texts (no ONNX Runtime import
    or session; docs/results.md, Speed)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use {' or '.join(BACKENDS[1:])}")
    if (backend is None and precision == "fp32" and device in (None, "cpu")
            and texts is not None and texts <= NUMPY_MAX_TEXTS):
        return _light_embedder(model, threads,
                               prefer_numpy=one_shot and texts <= ONE_SHOT_NUMPY_TEXTS)
    if backend is None:
        backend = "onnx" if _onnx_fits(device) else "torch"
    if backend == "onnx":
        if device not in (None, "auto", "cpu"):
            raise ConfigError(f"--backend onnx runs on the CPU, not on {device}; pass "
                              "--device cpu or --backend torch")
        from semsearch.encoder.onnx_encoder import OnnxEncoder

        return OnnxEncoder.load(model, precision=precision, threads=threads)
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    return SentenceEncoder.load(model, device=device, precision=precision)


# None: choose (onnx on a CPU when installed, else torch)
BACKENDS = (None, "torch", "onnx")


def _light_embedder(model: str | Path | None, threads: int | None,
                    prefer_numpy: bool = False) -> Embedder:
    """The torch-free encoder for a few texts: ONNX Runtime on an exported, current graph, else
    (or with `prefer_numpy`) numpy, which needs no export."""
    from semsearch.encoder.onnx_encoder import OnnxEncoder, available
    from semsearch.encoder.onnx_files import onnx_path
    from semsearch.encoder.store import resolve_model
    from semsearch.errors import ModelError

    folder = resolve_model(model)
    if not prefer_numpy and available() and onnx_path(folder, "fp32").is_file():
        try:
            return OnnxEncoder.load(folder, threads=threads, export=False)
        except ModelError:  # stale: the next `index` or `export` refreshes it
            pass
    from semsearch.encoder.numpy_encoder import NumpyEncoder

    return NumpyEncoder.load(folder)


def _onnx_fits(device: str | None) -> bool:
    """Whether the automatic backend is ONNX Runtime: it is installed and the work runs on the
    CPU (named, or auto with no GPU that torch can use)."""
    from semsearch.encoder.onnx_encoder import available

    if not available() or device not in (None, "auto", "cpu"):
        return False
    if device == "cpu":
        return True
    from semsearch.encoder.device import pick_device

    return pick_device("auto").type == "cpu"


NUMPY_MAX_TEXTS = 1000
# texts a one-shot process encodes on numpy even where an ONNX graph is exported: loading the
# encoder and encoding one query in a fresh process took 0.095 s on numpy against 0.17 s on ORT
# (quick), 0.29 s against 0.42 s (all-MiniLM-L6-v2), while a further query, warm, costs numpy
# 3-7 ms more (5.0 against 2.1 ms, 11.2 against 4.6 ms): numpy stays ahead to about 20 texts
ONE_SHOT_NUMPY_TEXTS = 16



def check_model(manifest: Manifest, embedder: Embedder, folder: Path) -> None:
    """Refuse an encoder other than the one the index was built with, saying how to fix it.

    An index built before the fingerprint covered the tokenizer and config recorded the
    weights' fingerprint alone: it matches an encoder with the same weights (a changed tokenizer
    or config cannot be told apart for it; `semsearch check` says so and suggests a rebuild)."""
    if embedder.dim == manifest.dim and manifest.model_fingerprint in (
        embedder.fingerprint, getattr(embedder, "weights_fingerprint", None)
    ):
        return
    given = getattr(embedder, "path", embedder.name)
    raise IndexError_(
        f"index {folder} was built with model {manifest.model_name} (fingerprint "
        f"{manifest.model_fingerprint}) but model {embedder.name} (fingerprint "
        f"{embedder.fingerprint}) was given; pass --model {manifest.model_path}, or rebuild with "
        f"`semsearch index CORPUS --model {given} --out {folder}`"
    )


def model_for_index(manifest: Manifest, model: str | Path | None) -> str | Path | None:
    """The model to embed queries with: the one asked for, else the one the index was built with
    (when its folder is still there), else None (the newest model)."""
    if model is not None:
        return model
    if not manifest.model_path:  # an index without vectors names no model
        return None
    built_with = Path(manifest.model_path)
    return built_with if built_with.is_dir() else None

