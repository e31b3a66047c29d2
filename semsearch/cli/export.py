"""`semsearch export MODEL --format FORMAT`: the model for other tools and runtimes."""

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
  semsearch export models/quick --format onnx
  semsearch index corpora/docs.txt --model models/quick --backend onnx --precision int8
"""


def _sentence_transformers(model: str, out: str | None, overwrite: bool) -> dict[str, Any]:
    from semsearch.encoder.st_export import export_sentence_transformers

    if out is None:
        raise click.UsageError("--format sentence-transformers needs --out DIR")
    return export_sentence_transformers(model, out, overwrite=overwrite)


def _onnx(model: str, out: str | None, overwrite: bool) -> dict[str, Any]:
    import importlib.util

    from semsearch.encoder.store import resolve_model
    from semsearch.errors import ConfigError

    if out is not None:
        raise click.UsageError("--format onnx writes into the model folder; leave out --out")
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--format onnx needs {' and '.join(missing)}: "
                          "pip install 'semsearch[onnx]'")
    from semsearch.encoder.onnx_export import export_onnx

    folder = resolve_model(model)
    info(f"exporting {folder} to ONNX")
    return {"format": "onnx", "out": str(folder / "onnx"), **export_onnx(folder)}


# format name -> exporter(model, out, overwrite) -> summary; one entry a format
EXPORTERS: dict[str, Callable[[str, str | None, bool], dict[str, Any]]] = {
    "sentence-transformers": _sentence_transformers,
    "onnx": _onnx,
}


@click.command(epilog=EXAMPLES)
@click.argument("model", metavar="MODEL")
@click.option("--format", "format_", type=click.Choice(sorted(EXPORTERS)),
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
    summary = EXPORTERS[format_](model, out, overwrite)
    if as_json:
        echo_json(summary)
        return
    if format_ == "onnx":
        fused = summary.get("fused_ops", {})
        info(f"fused: {', '.join(f'{op} x{n}' for op, n in fused.items()) or 'none'}")
        for precision, path in summary.get("files", {}).items():
            click.echo(f"{precision}: {path}")
        return
    info(f"wrote {summary['out']} ({summary['format']}"
         + (f", {summary['architecture']}" if summary.get("architecture") else "") + ")")
