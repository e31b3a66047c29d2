"""Options and output helpers that mean the same in every command."""

from __future__ import annotations

import json
import math
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
    help="int8: the model's Linear layers in int8 (PyTorch dynamic quantization; CPU only), "
    "usually faster on a CPU; the vectors move a little from fp32, by how much depends on the "
    "model (`semsearch evaluate --precision int8` shows what it costs).",
)

class FiniteFloatRange(click.FloatRange):
    """A float within bounds that is also finite: click's FloatRange lets `nan` through (every
    comparison with nan is false), and `inf` where a side is open."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


wait_option = click.option(
    "--wait",
    default=0.0,
    show_default=True,
    type=FiniteFloatRange(0, 86_400),
    metavar="SECONDS",
    help="When another semsearch process is writing the same index, wait up to this long for it "
    "(0: refuse at once and change nothing).",
)


def echo_json(payload: Any) -> None:
    """Write one JSON document (one line) to stdout."""
    click.echo(json.dumps(payload, ensure_ascii=False))


def info(message: str) -> None:
    """A message for the person, on stderr, so stdout stays clean for results."""
    click.echo(message, err=True)


def is_tty() -> bool:
    return sys.stderr.isatty()
