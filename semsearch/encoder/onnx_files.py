"""Where a model folder keeps its ONNX graphs and how a graph names the weights it came from:
the layout both the exporter (onnx_export, torch) and the runner (onnx_encoder, no torch) read,
kept below both so neither imports the other for it."""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "int8")
ONNX_DIR = "onnx"
ONNX_FILES = {"fp32": "model-fp32.onnx", "int8": "model-int8.onnx"}
FINGERPRINT_KEY = "semsearch_weights_fingerprint"  # ONNX metadata: the weights it came from


def onnx_path(folder: Path, precision: str) -> Path:
    """Where the ONNX graph of `precision` lives in a model folder.

    >>> onnx_path(Path("models/quick"), "int8").as_posix()
    'models/quick/onnx/model-int8.onnx'
    """
    return Path(folder) / ONNX_DIR / ONNX_FILES[precision]
