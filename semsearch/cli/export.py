"""`semsearch export MODEL --format ...`: a model folder in another runtime's format."""

from __future__ import annotations

import click

from semsearch.cli.common import echo_json, info, json_option

FORMATS = ("onnx",)  # sentence-transformers: issue 16's exporter joins this dispatch


@click.command()
@click.argument("model", metavar="MODEL")
@click.option("--format", "export_format", type=click.Choice(FORMATS), required=True,
              help="onnx: the encoder as ONNX graphs (fp32 and int8) inside the model folder, "
              "which `--backend onnx` runs.")
@json_option
def export(model, export_format, as_json):
    """Export MODEL (a model folder, or a name under models/) to another format.

    --format onnx writes MODEL/onnx/model-fp32.onnx and MODEL/onnx/model-int8.onnx: token ids
    and attention mask in, L2-normalised sentence vectors out (mean pooling and normalisation
    inside the graph), dynamic batch and sequence axes, checked with onnx.checker, with ONNX
    Runtime's transformer fusions (attention, LayerNorm, GELU); int8 is ONNX Runtime's dynamic
    quantization, weights per channel, the feed-forward output layers kept in fp32. Each graph
    records the fingerprint of the weights it came from; semsearch never runs a stale one
    (`--backend onnx` re-exports it). Needs the onnx extra: pip install 'semsearch[onnx]'.

    \b
    Examples:
      semsearch export models/quick --format onnx
      semsearch export quick --format onnx --json
      semsearch index corpora/docs.txt --model models/quick --backend onnx --precision int8
    """
    import importlib.util

    from semsearch.encoder.store import resolve_model
    from semsearch.errors import ConfigError

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--format onnx needs {' and '.join(missing)}: "
                          "pip install 'semsearch[onnx]'")
    from semsearch.encoder.onnx_export import export_onnx

    folder = resolve_model(model)
    info(f"exporting {folder} to ONNX")
    report = export_onnx(folder)
    if as_json:
        echo_json(report)
        return
    info(f"fused: {', '.join(f'{op} x{n}' for op, n in report['fused_ops'].items()) or 'none'}")
    for precision, path in report["files"].items():
        click.echo(f"{precision}: {path}")
    info(f"try: semsearch index corpora/docs.txt --model {folder} --backend onnx")
