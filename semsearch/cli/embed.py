"""`semsearch embed FILE --out vectors.npy|vectors.parquet`: a corpus file's vectors and ids."""

from __future__ import annotations

import click

from semsearch.cli.common import (
    backend_option,
    device_option,
    echo_json,
    info,
    json_option,
    precision_option,
    progress_enabled,
)
from semsearch.progress import silent

EXAMPLES = """\b
Examples:
  semsearch embed corpora/docs.txt --out docs.npy          # docs.npy + docs.ids.txt
  semsearch embed articles.jsonl.gz --out articles.parquet --model models/quick
  semsearch embed big.txt --out big.npy --backend onnx --precision int8   # fastest on a CPU
  python -c "import numpy as np; print(np.load('docs.npy').shape)"
"""


@click.command(epilog=EXAMPLES)
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("--out", required=True, metavar="FILE",
              help="vectors.npy (ids in vectors.ids.txt, one a line, same order) or "
              "vectors.parquet (columns id, embedding).")
@click.option("--model", default=None, metavar="DIR",
              help="Model folder (default: the newest folder under models/).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Texts encoded per batch.")
@click.option("--format", "format_", type=click.Choice(["txt", "jsonl", "csv", "tsv"]),
              default=None, help="Corpus format (default: from the file name, as `index`).")
@click.option("--text-field", default="text", show_default=True, metavar="NAME",
              help="JSONL field or CSV/TSV column holding the text.")
@click.option("--id-field", default=None, metavar="NAME",
              help="JSONL field or CSV/TSV column holding the id (default: 'id' when present, "
              "else <file name>:<line number>).")
@click.option("--errors", "errors", type=click.Choice(["strict", "skip", "replace"]),
              default="strict", show_default=True,
              help="A line that is not UTF-8 or valid JSON: stop, skip it, or replace the bytes.")
@click.option("--overwrite", is_flag=True, help="Replace --out (and its ids file) if present.")
@device_option
@precision_option
@backend_option
@json_option
def embed(corpus, out, model, batch_size, format_, text_field, id_field, errors, overwrite,
          device, precision, backend, as_json):
    """Write the vectors of every document in CORPUS (any format `index` reads) with their ids.

    One L2-normalised float32 vector a document (its first max_seq_len tokens), streamed to
    disk a window at a time, in the layouts embedding-reader and autofaiss read.
    """
    from semsearch import embed as run_embed

    report = run_embed(corpus, out, model, batch_size, format_, text_field, id_field, errors,
                       overwrite, device, precision, backend,
                       progress=progress_enabled() and not as_json,
                       log=silent if as_json else info)
    if as_json:
        echo_json(report.to_dict())
        return
    skipped = f", {report.lines_skipped} lines skipped" if report.lines_skipped else ""
    ids = f" and {report.ids}" if report.ids else ""
    info(f"wrote {report.documents} vectors of dimension {report.dim} to {report.out}{ids}"
         f"{skipped}")
