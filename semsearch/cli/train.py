"""`semsearch train`: glue between Click and `semsearch.train`."""

from __future__ import annotations

import click

from semsearch.cli.common import (
    data_dir_option,
    echo_json,
    info,
    json_option,
    progress_enabled,
)
from semsearch.models import PRESET_NAMES
from semsearch.progress import silent


@click.command()
@click.option("--preset", "preset", default="quick", show_default=True,
              type=click.Choice(PRESET_NAMES), help="Named configuration to start from.")
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. train.lr=5e-4 or model.layers=4 (repeatable).")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="JSON file of overrides ({\"train\": {\"lr\": 5e-4}, ...}).")
@click.option("--mixture", default=None, metavar="NAME|SPECS",
              help="Training data: search (quick's: captions, NLI, paraphrases and query -> "
                   "passage pairs mined from Wikipedia), local (every labelled set in the data "
                   "folder), reference (SNLI train + STS-B train), small, or comma-separated "
                   "specs like snli:dev+test,quora@5000.")
@click.option("--corpus", "corpus", multiple=True, type=click.Path(exists=True, dir_okay=False),
              metavar="FILE",
              help="Also train on query/passage pairs mined from your documents (any file "
                   "`semsearch index` reads): title -> lead paragraph, heading -> paragraph, "
                   "sentence -> rest of its paragraph, neighbouring paragraphs (repeatable).")
@click.option("--teacher", default=None, metavar="MODEL_DIR",
              help="Distil from this model folder too: the student also learns its vectors "
                   "(needed by --preset distilled; import one with `semsearch import-model`).")
@data_dir_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Model folder to write (default: models/<preset>).")
@click.option("--device", default=None, help="cuda, mps, cpu or auto (default: the preset's).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing model folder.")
@click.option("--show-config", is_flag=True, help="Print the resolved config as JSON and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-epoch lines.")
@click.option("--no-calibrate", is_flag=True,
              help="Skip calibrating the hybrid fusion on the data folder's retrieval sets "
                   "(done after training otherwise, so the model is search-ready).")
@json_option
def train(preset, set_, config, mixture, corpus, teacher, data_dir, out, device, resume,
          overwrite, show_config, quiet, no_calibrate, as_json):
    """Train a sentence encoder from scratch with InfoNCE on human-annotated pairs and passage
    pairs mined from unlabelled text (and, with --corpus, from your own documents).

    The model folder (weights, config.json, tokenizer.json, history.json) is written under
    models/<preset> unless --out says otherwise. Ctrl-C saves a checkpoint; --resume continues.

    \b
    Examples:
      semsearch train --preset tiny --out models/smoke
      semsearch train --preset quick
      semsearch train --preset production --set train.epochs=3 --set train.lr=3e-4
      semsearch train --preset production --mixture reference --data-dir ~/data
      semsearch train --preset quick --corpus docs.jsonl --out models/mine
      semsearch train --preset distilled --teacher models/minilm --out models/distilled
      semsearch train --out models/quick --resume
      semsearch train --preset static                  # no transformer: ~5 min on 2 cores
      semsearch train --preset static --teacher models/minilm   # = semsearch distill
    """
    from semsearch import train as run_train

    report = run_train(preset, set_, config, mixture, corpus, teacher, data_dir, out, device,
                       resume, overwrite, show_config, no_calibrate,
                       log=silent if quiet else info, progress=not quiet and progress_enabled())
    if show_config:
        echo_json(report.config)
    elif as_json and report.summary:
        echo_json(report.to_dict())
