"""`semsearch export MODEL --format FORMAT --out DIR`: the model for other tools."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from semsearch.cli.common import echo_json, info, json_option

EXAMPLES = """\b
Examples:
  semsearch export models/quick --format sentence-transformers --out exports/quick-st
  python -c "from sentence_transformers import SentenceTransformer as S; \\
             print(S('exports/quick-st').encode(['hello world']).shape)"
"""


def _sentence_transformers(model: str, out: str, overwrite: bool) -> dict[str, Any]:
    from semsearch.encoder.st_export import export_sentence_transformers

    return export_sentence_transformers(model, out, overwrite=overwrite)


# format name -> exporter(model, out, overwrite) -> summary; one entry a format
EXPORTERS: dict[str, Callable[[str, str, bool], dict[str, Any]]] = {
    "sentence-transformers": _sentence_transformers,
}


@click.command(epilog=EXAMPLES)
@click.argument("model", metavar="MODEL")
@click.option("--format", "format_", type=click.Choice(sorted(EXPORTERS)),
              default="sentence-transformers", show_default=True, help="What to write.")
@click.option("--out", required=True, metavar="DIR", help="Folder to write (must not exist, "
              "be empty, or be an earlier export with --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out.")
@json_option
def export(model, format_, out, overwrite, as_json):
    """Export the model folder MODEL for other tools.

    sentence-transformers: a folder `SentenceTransformer(DIR)` loads without
    trust_remote_code (semsearch's pre-LayerNorm encoder as RobertaPreLayerNormModel, imported
    BERT models as BertModel), giving the same vectors, with a model card README.md.
    """
    summary = EXPORTERS[format_](model, out, overwrite)
    if as_json:
        echo_json(summary)
        return
    info(f"wrote {summary['out']} ({summary['format']}"
         + (f", {summary['architecture']}" if summary.get("architecture") else "") + ")")
