"""Options and output helpers that mean the same in every command."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

model_option = click.option(
    "--model",
    "model",
    default=None,
    metavar="DIR",
    help="Model folder (default: the newest folder under models/).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
data_dir_option = click.option(
    "--data-dir",
    default=None,
    metavar="DIR",
    envvar="SEMSEARCH_DATA",
    help="Folder with the data sets in their official formats (default: $SEMSEARCH_DATA, "
    "else the Hugging Face hub).",
)
device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="cuda, mps, cpu, or auto (cuda, then mps, then cpu).",
)

precision_option = click.option(
    "--precision",
    type=click.Choice(["fp32", "int8"]),
    default="fp32",
    show_default=True,
    help="int8: the model's matrix products in int8 (dynamic quantization, ONNX Runtime's or "
    "PyTorch's; CPU only), faster on a CPU; the vectors move a little from fp32, by how much "
    "depends on the model (`semsearch evaluate --precision int8` shows what it costs).",
)
backend_option = click.option(
    "--backend",
    type=click.Choice(["torch", "onnx"]),
    default=None,
    help="What runs the encoder: onnx (ONNX Runtime, CPU; the graph is exported into the model "
    "folder on first use, or with `semsearch export MODEL --format onnx`) or torch. Default: "
    "onnx on a CPU when onnxruntime is installed (`pip install 'semsearch[onnx]'`), else torch.",
)


def echo_json(payload: Any) -> None:
    """Write one JSON document (one line) to stdout."""
    click.echo(json.dumps(payload, ensure_ascii=False))


def info(message: str) -> None:
    """A message for the person, on stderr, so stdout stays clean for results."""
    click.echo(message, err=True)


def is_tty() -> bool:
    return sys.stderr.isatty()
