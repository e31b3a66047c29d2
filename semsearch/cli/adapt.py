"""`semsearch adapt`: continue training a model on pairs mined from the user's documents."""

from __future__ import annotations

from pathlib import Path

import click

from semsearch.cli.common import data_dir_option, echo_json, info, json_option

# the short schedule: one epoch over the corpus pairs at a quarter of the quick preset's peak
# rate, no STS-B stage (the model already had one); --set overrides any of it
ADAPT_DEFAULTS = {"train.epochs": 1, "train.lr": 5e-4, "train.sts_epochs": 0,
                  "train.patience": 0, "data.max_pairs": 0}


@click.command()
@click.argument("model", metavar="MODEL")
@click.option("--corpus", "corpora", multiple=True, required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False),
              help="Documents to adapt to (any file `semsearch index` reads; repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Model folder to write (MODEL itself is never changed).")
@click.option("--mixture", default=None, metavar="SPECS",
              help="Also replay these general pairs (e.g. stsb:train,quora@3000), so the model "
                   "keeps what it knew; default: the corpus pairs alone.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. train.epochs=2 or train.lr=2e-4 (repeatable).")
@data_dir_option
@click.option("--device", default=None, help="cuda, mps, cpu or auto (default: the model's).")
@click.option("--resume", is_flag=True, help="Continue an interrupted adaptation in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing model folder at --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-epoch lines.")
@click.option("--no-calibrate", is_flag=True,
              help="Skip calibrating the adapted model's hybrid fusion afterwards.")
@json_option
def adapt(model, corpora, out, mixture, settings, data_dir, device, resume, overwrite, quiet,
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
    from semsearch.encoder.presets import (
        RunConfig,
        apply_overrides,
        parse_set_options,
        with_corpora,
    )
    from semsearch.encoder.store import read_config, resolve_model
    from semsearch.encoder.train import train_model
    from semsearch.errors import ConfigError

    source = resolve_model(model)
    if Path(out).resolve() == source.resolve():
        raise ConfigError(f"--out {out} is MODEL itself; write the adapted model to a new folder")
    if read_config(source).get("model", {}).get("kind") == "static":
        _adapt_static(source, corpora, out, mixture, settings, data_dir, resume, overwrite,
                      quiet, no_calibrate, as_json)
        return
    base = RunConfig.from_dict(read_config(source))
    overrides: dict = dict(ADAPT_DEFAULTS)
    overrides["data.sources"] = mixture or ""
    if device:
        overrides["train.device"] = device
    overrides.update(parse_set_options(settings))
    config = with_corpora(apply_overrides(base, overrides), corpora)
    if resume:
        info("resuming: the run's saved config is used; --set/--mixture are ignored")
    summary = train_model(config, Path(out), data_dir=data_dir, resume=resume, overwrite=overwrite,
                          progress=not quiet, log=(lambda _m: None) if quiet else info,
                          init=source)
    summary["adapted_from"] = str(source)
    if not as_json:
        info(f"saved {summary['model']} (adapted from {source}, {summary['steps']} steps)")
    from semsearch.calibration import calibrate_after

    summary["calibration"] = calibrate_after(Path(out), data_dir, skip=no_calibrate,
                                             log=(lambda _m: None) if quiet else info)
    if as_json:
        echo_json(summary)


# a static model adapts with bigger batches and a higher rate than a transformer: each step is
# cheap and only the rows of the corpus's tokens move (measured: docs/results.md, Training)
STATIC_ADAPT = {"epochs": "2", "lr": "1e-3", "batch_size": "512"}


def _adapt_static(source, corpora, out, mixture, settings, data_dir, resume, overwrite, quiet,
                  no_calibrate, as_json) -> None:
    from semsearch.calibration import calibrate_after
    from semsearch.encoder.presets import parse_set_options
    from semsearch.encoder.static_train import StaticTrainConfig, train_static

    config = StaticTrainConfig.with_overrides(STATIC_ADAPT | parse_set_options(settings))
    sources = tuple(mixture.split(",")) if mixture else ()
    sources += tuple(f"corpus:{path}" for path in corpora)
    log = (lambda _m: None) if quiet else info
    summary = train_static(Path(out), config, sources, data_dir, resume=resume,
                           overwrite=overwrite, progress=not quiet, log=log, init=source)
    summary["adapted_from"] = str(source)
    log(f"saved {summary['model']} (static, adapted from {source})")
    summary["calibration"] = calibrate_after(Path(out), data_dir, skip=no_calibrate, log=log)
    if as_json:
        echo_json(summary)
