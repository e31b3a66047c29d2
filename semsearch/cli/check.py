"""`semsearch check [INDEX]`: verify an index folder end to end, and measure its recall."""

from __future__ import annotations

import click

from semsearch.cli.common import echo_json, info, json_option
from semsearch.progress import silent

EXAMPLES = """\b
Examples:
  semsearch check
  semsearch check indexes/docs
  semsearch check docs --sample 200 --json
  semsearch check indexes/articles --model models/quick
"""


@click.command(epilog=EXAMPLES)
@click.argument("index_dir", required=False, metavar="[INDEX]")
@click.option(
    "--model",
    "model",
    default=None,
    metavar="DIR",
    help="Model folder to check the fingerprint against (default: the one the index was "
    "built with, when it is still there).",
)
@click.option(
    "--sample",
    default=1000,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Stored vectors used as queries to measure recall@10 against exact search (0: skip).",
)
@json_option
@click.pass_context
def check(ctx, index_dir, model, sample, as_json):
    """Verify INDEX (a folder, a name under indexes/, default the latest) without changing it.

    Checks the manifest, that index.faiss loads and matches the counts, the document store
    (SQLite's integrity_check, rows in step with the vectors), the re-rank file's length, the
    model fingerprint, and measures recall@10 of the index against exact search on a sample,
    beside the recall recorded when it was built or last tuned. Exit code 0 only when healthy;
    a recall well under the target means the index should be rebuilt.
    """
    from semsearch import check as run_check
    from semsearch.cli.terminal import printable

    report = run_check(index_dir, model, sample, log=silent if as_json else info)
    if as_json:
        echo_json(report.to_dict())
    else:
        for item in report.checks:
            click.echo(f"{item.status:<5} {item.name:<12} {printable(item.detail)}")
    if not report.healthy:
        ctx.exit(1)
