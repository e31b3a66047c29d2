"""Options and output helpers that mean the same in every command."""

from __future__ import annotations

import json
import math
import os
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


# set by -q / -v on every command (see cli/__init__.py), reset at each invocation
_verbosity = {"quiet": False, "verbose": 0}


def info(message: str) -> None:
    """A message for the person, on stderr, so stdout stays clean for results (not with -q)."""
    if not _verbosity["quiet"]:
        click.echo(message, err=True)


def verbosity() -> dict:
    """{"quiet": bool, "verbose": count} as -q / -v set them for this command."""
    return dict(_verbosity)


def progress_enabled() -> bool:
    """Progress bars only on a terminal, never with -q or TQDM_DISABLE=1."""
    disabled = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")
    return sys.stderr.isatty() and not disabled and not _verbosity["quiet"]


is_tty = progress_enabled  # the older name


def set_verbosity(quiet: bool = False, verbose: int = 0) -> None:
    """-q: errors only; -v: the library's INFO log lines, -vv: DEBUG. The library logs through
    the `semsearch` logger and attaches no handler; the command line attaches one to stderr."""
    import logging

    _verbosity.update(quiet=quiet, verbose=verbose)
    logger = logging.getLogger("semsearch")
    for handler in [h for h in logger.handlers if getattr(h, "_semsearch_cli", False)]:
        logger.removeHandler(handler)
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO)[min(verbose, 1)]
    if verbose >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._semsearch_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        set_verbosity(True, _verbosity["verbose"])


def _verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        set_verbosity(_verbosity["quiet"], value)


def add_verbosity_options(command: click.Command) -> click.Command:
    """Give a command -q/--quiet and -v/--verbose, unless it defines them itself."""
    taken = {opt for param in command.params for opt in getattr(param, "opts", [])}
    if getattr(command, "_semsearch_verbosity", False):
        return command
    if "-q" not in taken and "--quiet" not in taken:
        command.params.append(click.Option(
            ["-q", "--quiet"], is_flag=True, expose_value=False, is_eager=True, callback=_quiet,
            help="Errors only: no progress bars or messages on stderr."))
    if "-v" not in taken and "--verbose" not in taken:
        command.params.append(click.Option(
            ["-v", "--verbose"], count=True, expose_value=False, is_eager=True,
            callback=_verbose, help="Log what the library does on stderr (-vv: more)."))
    command._semsearch_verbosity = True  # type: ignore[attr-defined]
    return command
