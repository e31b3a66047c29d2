"""The command line is glue over the Python API: each command calls one public function that
takes its options under the same names, and cli/ imports nothing else of the library."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import click
import pytest

import semsearch
from semsearch.cli import COMMANDS, _load

CLI = Path(semsearch.__file__).parent / "cli"
# what cli/ may import from the library: the public functions (through `semsearch` and the
# modules that hold them, for a constant a flag's choices need), the error family and the edge
# that turns a failed write into one line, the log callback's helpers, the query limits, and
# the HTTP front end that `serve` starts
ALLOWED = {"semsearch", "semsearch.errors", "semsearch.write_errors", "semsearch.progress",
           "semsearch.limits", "semsearch.models", "semsearch.indexes", "semsearch.api",
           "semsearch.serve", "semsearch.serve.app", "semsearch.serve.state"}
# command -> the public function it calls (serve starts a server, the HTTP layer's own)
FUNCTIONS = {"train": "train", "distill": "distill", "adapt": "adapt",
             "import-model": "import_model", "export": "export", "index": "index",
             "remove": "remove", "check": "check", "evaluate": "evaluate", "embed": "embed",
             "query": "query", "similarity": "similarity_pairs", "plot": "plot"}
CLI_ONLY = {"json", "quiet", "verbose", "help", "show_config"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "semsearch"}


def test_cli_imports_only_the_public_api():
    offenders = sorted(f"{path.name}: {module}" for path in CLI.glob("*.py")
                       for module in _imports(path)
                       if module not in ALLOWED and not module.startswith("semsearch.cli"))
    assert offenders == []


def test_every_command_but_serve_has_its_public_function():
    assert set(COMMANDS) - set(FUNCTIONS) == {"serve"}
    assert all(callable(getattr(semsearch, name)) for name in FUNCTIONS.values())


@pytest.mark.parametrize("command", sorted(FUNCTIONS))
def test_the_function_takes_the_commands_options_by_their_flag_names(command):
    options = [param for param in _load(COMMANDS[command]).params
               if isinstance(param, click.Option)]
    names = {max(param.opts, key=len).lstrip("-").replace("-", "_") for param in options}
    accepted = set(inspect.signature(getattr(semsearch, FUNCTIONS[command])).parameters)
    assert names - CLI_ONLY - accepted == set()


def test_semsearch_index_is_the_package_and_the_function():
    import semsearch.index as package
    from semsearch.indexes import index

    assert semsearch.index is package and callable(package)
    assert inspect.signature(semsearch.index) == inspect.signature(index)
    assert package.SearchIndex.__name__ == "SearchIndex"


def test_no_module_of_the_library_is_over_700_lines():
    """A module past 700 lines holds more than one job (issue 31): split it where each part has
    one you can name."""
    package = Path(semsearch.__file__).parent
    long = sorted(f"{path.relative_to(package)}: {lines}" for path in package.rglob("*.py")
                  if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 700)
    assert long == []
