"""A model folder's encoder run by ONNX Runtime: semsearch's fast CPU path for many texts.

Same interface as `SentenceEncoder` (encode, dim, name, fingerprint, max_seq_len, count_tokens,
path, precision) and no torch at run time. The graph is the one `onnx_export.export_onnx` wrote
into the folder; a graph whose recorded fingerprint is not that of the folder's weights is never
run: it is exported again (`export=True`, needs torch) or refused with the command that fixes it.

Throughput beyond the kernels:
- texts are sorted by token length and cut into batches by a token budget (rows x longest row),
  not a fixed count, so short texts go in big batches and long ones in small batches, and no
  batch pads far past its real tokens;
- the next window of texts is tokenized (the tokenizers library, in Rust threads) while ONNX
  Runtime runs the current one;
- ONNX Runtime's intra-op threads default to the CPUs this process may run on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from semsearch.encoder.onnx_files import FINGERPRINT_KEY, PRECISIONS, onnx_path
from semsearch.encoder.store import (
    TOKENIZER,
    WEIGHTS,
    model_fingerprints,
    read_config,
    resolve_model,
)
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.errors import ConfigError, ModelError

# padded tokens (rows x longest row) a batch may hold: about where ORT's matrix products stop
# gaining from bigger batches on a small CPU (docs/results.md, Speed), and a bound on memory
TOKEN_BUDGET = 4096
# texts tokenized at a time; the next window is tokenized while the current one runs
WINDOW = 4096


def available() -> bool:
    """Whether ONNX Runtime is installed (the `onnx` extra)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def default_threads() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxEncoder:
    """Load with `OnnxEncoder.load(folder, precision)`; `encode` gives L2-normalised float32 rows."""

    def __init__(self, session: Any, tokenizer: Tokenizer, path: Path, config: dict[str, Any],
                 fingerprint: str, precision: str, graph: Path) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.path = path
        self.config = config
        self.fingerprint = fingerprint  # of weights, tokenizer and config, as SentenceEncoder's
        self.precision = precision
        self.graph = graph
        self.backend = "onnx"
        self.dim = int(config["model"]["hidden"])
        self.max_seq_len = int(config["model"]["max_seq_len"])

    @classmethod
    def load(cls, path: str | Path | None = None, precision: str = "fp32",
             threads: int | None = None, export: bool = True) -> OnnxEncoder:
        """The folder's ONNX graph of `precision` in an ONNX Runtime session of `threads`
        intra-op threads (default: the CPUs available). A missing or stale graph is exported
        first when `export` (this needs torch), else refused with a ModelError."""
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; use {' or '.join(PRECISIONS)}")
        if not available():
            raise ConfigError("--backend onnx needs ONNX Runtime: pip install 'semsearch[onnx]' "
                              "(or use --backend torch)")
        folder = resolve_model(path)
        config = read_config(folder)
        if config.get("model", {}).get("kind") == "static":  # no graph: its own numpy path
            from semsearch.encoder.static import StaticEncoder

            return StaticEncoder.load(folder)
        for name in (TOKENIZER, WEIGHTS):
            if not (folder / name).is_file():
                raise ModelError(f"{folder}: {name} is missing; retrain the model")
        full, weights = model_fingerprints(folder, config)  # hashes the weights once
        graph = onnx_path(folder, precision)
        session = _session(graph, threads) if graph.is_file() else None
        found = (session.get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY)
                 if session is not None else None)
        if found != weights:
            state = "missing" if session is None else f"stale (from weights {found})"
            if not export:
                raise ModelError(f"{graph}: ONNX graph {state}; export it with `semsearch "
                                 f"export {folder} --format onnx`")
            _export(folder, state)
            session = _session(graph, threads)
        encoder = cls(session, Tokenizer.load(folder / TOKENIZER), folder, config, full,
                      precision, graph)
        encoder.weights_fingerprint = weights  # what indexes built before recorded
        return encoder

    @property
    def name(self) -> str:
        return self.path.name

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Untruncated token counts, [CLS] and [SEP] included."""
        return [len(ids) for ids in self.tokenizer.encode(list(texts))]

    def similarity(self, text_a: str, text_b: str) -> float:
        """Cosine similarity of two texts."""
        a, b = self.encode([text_a, text_b])
        return float(a @ b)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
               token_budget: int = TOKEN_BUDGET) -> np.ndarray:
        """Embeddings of `texts`: float32, C-contiguous, (len(texts), dim), unit length.

        A batch holds at most `token_budget` padded tokens, and at least one and at most
        `max(batch_size, token_budget // 16)` texts (`batch_size` caps it only when larger)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        max_rows = max(batch_size, token_budget // 16)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="encoding", unit="text", leave=False)
        for start, ids in self._tokenized_windows(texts):
            for rows, tokens, mask in plan_batches(ids, token_budget, max_rows):
                out[start + rows] = self.session.run(
                    None, {"input_ids": tokens, "attention_mask": mask})[0]
                if bar is not None:
                    bar.update(len(rows))
        if bar is not None:
            bar.close()
        return out

    def _tokenized_windows(self, texts: list[str]) -> Iterator[tuple[int, list[list[int]]]]:
        """(start, token ids of texts[start:start + WINDOW]) per window, the next window
        tokenized in a thread while the caller encodes the current one."""
        def tokenize(start: int) -> list[list[int]]:
            return self.tokenizer.encode(texts[start:start + WINDOW], max_length=self.max_seq_len)

        starts = list(range(0, len(texts), WINDOW))
        if len(starts) <= 1:
            yield from ((s, tokenize(s)) for s in starts)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(tokenize, starts[0])
            for i, start in enumerate(starts):
                ids = pending.result()
                if i + 1 < len(starts):
                    pending = pool.submit(tokenize, starts[i + 1])
                yield start, ids


def plan_batches(ids: list[list[int]], token_budget: int, max_rows: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Length-sorted batches of at most `token_budget` padded tokens (and `max_rows` rows):
    (row indices into `ids`, input_ids (B, T) int64, attention_mask (B, T) int64) each.

    >>> [rows.tolist() for rows, _, _ in plan_batches([[1] * 5, [1] * 2, [1] * 3], 6, 8)]
    [[1, 2], [0]]
    """
    lengths = np.fromiter((len(s) for s in ids), dtype=np.int64, count=len(ids))
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        # rows sorted by length: a batch's width is its last row's length
        while (end < len(order) and end - start < max_rows
               and (end - start + 1) * lengths[order[end]] <= token_budget):
            end += 1
        rows = order[start:end]
        width = int(lengths[rows[-1]])
        tokens = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            n = len(ids[i])
            tokens[r, :n] = ids[i]
            mask[r, :n] = 1
        yield rows, tokens, mask
        start = end


def _session(graph: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings about unused initializers
    try:
        return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
        raise ModelError(f"{graph}: ONNX Runtime cannot load it ({str(error)[:200]}); export it "
                         f"again with `semsearch export {graph.parent.parent} --format onnx`"
                         ) from None


def _export(folder: Path, state: str) -> None:
    """Export the folder's graphs in place (needs torch)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise ModelError(f"{folder}: ONNX graph {state} and torch is not installed to export "
                         f"it; run `semsearch export {folder} --format onnx` where torch is")
    from semsearch.encoder.onnx_export import export_onnx

    try:
        export_onnx(folder)
    except PermissionError:
        raise ModelError(f"{folder}: ONNX graph {state}, and the folder is not writable to "
                         f"export it; run `semsearch export {folder} --format onnx` as its "
                         "owner") from None


AGREEMENT = 0.99  # mean cosine to fp32 a faster path must reach on the sample
SAMPLE = 256  # texts the paths are compared on


def fastest_agreeing(model: str | Path, sample: list[str], log: Callable[[str], None],
                     label: str):
    """(encoder, description) of the model's fastest path whose vectors agree with fp32's:
    ONNX Runtime int8 when its vectors of the first SAMPLE texts of `sample` reach a mean cosine
    of AGREEMENT to fp32's, else ONNX Runtime fp32 (PyTorch without onnxruntime; a static model
    runs on numpy). The choice is said through `log`, as "`label`: ...". Used for a teacher's
    vectors and for calibration's corpora, where thousands of texts are encoded once."""
    if not available():
        from semsearch.encoder.sentence_encoder import SentenceEncoder

        return SentenceEncoder.load(model, device="cpu"), "torch fp32"
    fp32 = OnnxEncoder.load(model, precision="fp32")
    if getattr(fp32, "kind", "transformer") == "static":
        return fp32, "static (numpy)"
    int8 = OnnxEncoder.load(model, precision="int8")
    sample = sample[:SAMPLE]
    cosine = (fp32.encode(sample) * int8.encode(sample)).sum(1)
    agree = float(cosine.mean())
    if agree >= AGREEMENT:
        log(f"{label}: ONNX Runtime int8 (mean cosine {agree:.4f} to fp32, min "
            f"{float(cosine.min()):.4f}, on {len(sample)} texts)")
        return int8, f"onnx int8 (cosine {agree:.4f})"
    log(f"{label}: ONNX Runtime fp32 (int8 agrees only to {agree:.4f} < {AGREEMENT})")
    return fp32, "onnx fp32"
