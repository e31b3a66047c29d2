"""`semsearch export MODEL --format FORMAT`: the model for other tools and runtimes."""

from __future__ import annotations

import click

from semsearch.cli.common import echo_json, info, json_option
from semsearch.models import EXPORT_FORMATS

EXAMPLES = """\b
Examples:
  semsearch export models/quick --format sentence-transformers --out exports/quick-st
  python -c "from sentence_transformers import SentenceTransformer as S; \\
             print(S('exports/quick-st').encode(['hello world']).shape)"
  semsearch export models/quick --format onnx
  semsearch index corpora/docs.txt --model models/quick --backend onnx --precision int8
"""


@click.command(epilog=EXAMPLES)
@click.argument("model", metavar="MODEL")
@click.option("--format", "format_", type=click.Choice(EXPORT_FORMATS),
              default="sentence-transformers", show_default=True, help="What to write.")
@click.option("--out", default=None, metavar="DIR", help="Folder to write, for "
              "sentence-transformers (must not exist, be empty, or be an earlier export with "
              "--overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out.")
@json_option
def export(model, format_, out, overwrite, as_json):
    """Export the model folder MODEL for other tools.

    sentence-transformers: a folder `SentenceTransformer(DIR)` loads without
    trust_remote_code (semsearch's pre-LayerNorm encoder as RobertaPreLayerNormModel, imported
    BERT models as BertModel), giving the same vectors, with a model card README.md.

    onnx: MODEL/onnx/model-fp32.onnx and model-int8.onnx: token ids and attention mask in,
    L2-normalised sentence vectors out (mean pooling and normalisation inside the graph),
    dynamic batch and sequence axes, checked with onnx.checker, with ONNX Runtime's transformer
    fusions; int8 is ONNX Runtime's dynamic quantization, weights per channel, the feed-forward
    output layers kept in fp32. Each graph records the fingerprint of the weights it came from;
    semsearch never runs a stale one. Needs pip install 'semsearch[onnx]'.
    """
    from semsearch import export as run_export

    report = run_export(model, format_, out, overwrite, log=info)
    if as_json:
        echo_json(report.to_dict())
        return
    for precision, path in report.details.get("files", {}).items():
        click.echo(f"{precision}: {path}")
