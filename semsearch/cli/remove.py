"""`semsearch remove ID...`: delete documents from an index by id."""

from __future__ import annotations

import click

from semsearch.cli.common import echo_json, info, json_option, wait_option

EXAMPLES = """\b
Examples:
  semsearch remove docs:12
  semsearch remove docs:12 docs:40 --index indexes/docs
  semsearch remove 7f3a9c --index indexes/articles --json
  semsearch remove docs:12 --wait 30       # queue behind an index build still running
"""


@click.command(epilog=EXAMPLES)
@click.argument("ids", nargs=-1, required=True)
@click.option(
    "--index",
    "index_dir",
    default=None,
    metavar="DIR",
    help="Index folder, or a name under indexes/ (default: the most recently written).",
)
@wait_option
@json_option
def remove(ids, index_dir, wait, as_json):
    """Delete documents (all their chunks) from an index.

    IDS are document ids as `semsearch query` prints them (without any #chunk suffix). Flat and
    IVF indexes (including ivfpq) can delete in place; HNSW graphs cannot, and the command says
    so and changes nothing. The folder is rewritten atomically; no model is needed.
    """
    from semsearch import remove as run_remove

    report = run_remove(ids, index_dir, wait, log=info)
    if as_json:
        echo_json(report.to_dict())
