"""`semsearch adapt`: continue training a model on pairs mined from the user's documents."""

from __future__ import annotations

import click

from semsearch.cli.common import data_dir_option, echo_json, info, json_option, progress_enabled
from semsearch.progress import silent


@click.command()
@click.argument("model", metavar="MODEL")
@click.option("--corpus", "corpus", multiple=True, required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="Documents to adapt to (any file `semsearch index` reads; repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Model folder to write (MODEL itself is never changed).")
@click.option("--mixture", default=None, metavar="SPECS",
              help="Also replay these general pairs (e.g. stsb:train,quora@3000), so the model "
                   "keeps what it knew; default: the corpus pairs alone.")
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. train.epochs=2 or train.lr=2e-4 (repeatable).")
@data_dir_option
@click.option("--device", default=None, help="cuda, mps, cpu or auto (default: the model's).")
@click.option("--resume", is_flag=True, help="Continue an interrupted adaptation in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing model folder at --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-epoch lines.")
@click.option("--no-calibrate", is_flag=True,
              help="Skip calibrating the adapted model's hybrid fusion afterwards.")
@json_option
def adapt(model, corpus, out, mixture, set_, data_dir, device, resume, overwrite, quiet,
          no_calibrate, as_json):
    """Adapt a trained model to your documents, without labels.

    Mines query/passage pairs from the corpus (title -> lead paragraph, heading -> paragraph,
    a sentence -> the rest of its paragraph, neighbouring paragraphs) and continues training
    MODEL on them with InfoNCE for a short schedule (one epoch at lr 5e-4), keeping its
    tokenizer and shape. The adapted model is written to --out.

    \b
    Examples:
      semsearch adapt models/quick --corpus docs.jsonl --out models/quick-docs
      semsearch adapt models/production --corpus notes.txt --out models/notes \\
          --mixture stsb:train,quora@3000 --set train.epochs=2
      semsearch adapt models/quick --corpus docs.jsonl --out models/quick-docs --resume
    """
    from semsearch import adapt as run_adapt

    report = run_adapt(model, corpus, out, mixture, set_, data_dir, device, resume, overwrite,
                       no_calibrate, log=silent if quiet else info,
                       progress=not quiet and progress_enabled())
    if as_json:
        echo_json(report.to_dict())
