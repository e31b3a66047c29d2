"""The `semsearch` command line: a thin Click layer over the library.

Commands live one per module and are imported only when run, so `semsearch --help` stays instant
(no torch, no faiss). Library errors become a one-line message and exit code 1 here, at one edge.
"""

from __future__ import annotations

import importlib

import click

from semsearch import __version__
from semsearch.errors import SemsearchError, UsageError

# command name -> "module:attribute"; a module that does not exist yet is skipped.
COMMANDS = {
    "train": "semsearch.cli.train:train",
    "evaluate": "semsearch.cli.evaluate:evaluate",
    "similarity": "semsearch.cli.similarity:similarity",
    "plot": "semsearch.cli.plot:plot",
    "index": "semsearch.cli.index:index",
    "query": "semsearch.cli.query:query",
    "remove": "semsearch.cli.remove:remove",
    "import-model": "semsearch.cli.import_model:import_model",
    "adapt": "semsearch.cli.adapt:adapt",
    "check": "semsearch.cli.check:check",
    "embed": "semsearch.cli.embed:embed",
    "export": "semsearch.cli.export:export",
    "serve": "semsearch.cli.serve:serve",
    "distill": "semsearch.cli.distill:distill",
}


def _load(target: str) -> click.Command | None:
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None
        raise
    return getattr(module, attribute)


class LazyGroup(click.Group):
    """A group that imports each command's module on first use and turns SemsearchError into a
    one-line error."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if _exists(target))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from semsearch.cli.common import add_verbosity_options

        target = COMMANDS.get(cmd_name)
        command = _load(target) if target else None
        return add_verbosity_options(command) if command is not None else None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsageError as error:
            raise click.UsageError(str(error)) from None
        except SemsearchError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            # a write no staged transaction wrapped (LATEST, a lock file, a report): one line
            from pathlib import Path

            from semsearch.write_errors import write_failed

            failed = write_failed(error, Path(error.filename or "output"),
                                  "what was written before is untouched")
            if failed is None:
                raise
            raise click.ClickException(str(failed)) from None
        except Terminated:
            raise _Exit("terminated (SIGTERM); nothing half-written was left", 128 + 15) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every cleanup path (temporary index folders, training
    checkpoints) runs the same way."""


class _Exit(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _terminate(signum, frame) -> None:
    raise Terminated()


def _handle_sigterm() -> None:
    """Turn SIGTERM into Terminated in the main thread (where Python runs signal handlers)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def _exists(target: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="semsearch")
@click.option("-q", "--quiet", is_flag=True, help="Errors only (also after a command).")
@click.option("-v", "--verbose", count=True, help="Log what the library does (also after a "
              "command).")
def main(quiet: bool, verbose: int) -> None:
    """Train a sentence encoder from scratch, evaluate it, and search a corpus with it.

    \b
    Examples:
      semsearch train --preset quick
      semsearch evaluate
      semsearch index corpora/docs.txt
      semsearch query "Machine learning and AI" -k 2
    """
    from semsearch.cli.common import set_verbosity

    set_verbosity(quiet, verbose)  # each command's own -q / -v may raise it further
    _handle_sigterm()
