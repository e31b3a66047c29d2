"""`semsearch train`: glue between Click and `semsearch.encoder.train.train_model`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from semsearch.cli.common import (
    data_dir_option,
    echo_json,
    info,
    json_option,
    progress_enabled,
)

PRESET_NAMES = ("production", "fastest", "max-quality", "quick", "distilled", "tiny",
                "static")  # see encoder/presets.py; static: encoder/static_train.py


@click.command()
@click.option("--preset", "preset_name", default="quick", show_default=True,
              type=click.Choice(PRESET_NAMES), help="Named configuration to start from.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. train.lr=5e-4 or model.layers=4 (repeatable).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file of overrides ({\"train\": {\"lr\": 5e-4}, ...}).")
@click.option("--mixture", default=None, metavar="NAME|SPECS",
              help="Training data: search (quick's: captions, NLI, paraphrases and query -> "
                   "passage pairs mined from Wikipedia), local (every labelled set in the data "
                   "folder), reference (SNLI train + STS-B train), small, or comma-separated "
                   "specs like snli:dev+test,quora@5000.")
@click.option("--corpus", "corpora", multiple=True, type=click.Path(exists=True, dir_okay=False),
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
def train(preset_name, settings, config_file, mixture, corpora, teacher, data_dir, out, device,
          resume, overwrite, show_config, quiet, no_calibrate, as_json):
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
    if preset_name == "static":
        _train_static(settings, mixture, corpora, teacher, data_dir, out, resume, overwrite,
                      quiet, no_calibrate, as_json)
        return
    from semsearch.encoder.presets import (
        apply_overrides,
        load_config_file,
        parse_set_options,
        preset,
        with_corpora,
    )
    from semsearch.encoder.store import models_dir
    from semsearch.errors import ConfigError

    overrides = load_config_file(Path(config_file)) if config_file else {}
    if mixture:
        overrides["data.sources"] = mixture
    if device:
        overrides["train.device"] = device
    if teacher:
        from semsearch.encoder.store import resolve_model

        overrides["train.teacher"] = str(resolve_model(teacher).resolve())
    overrides.update(parse_set_options(settings))
    config = apply_overrides(preset(preset_name), overrides)
    if preset_name == "distilled" and not config.train.teacher and not resume:
        raise ConfigError("--preset distilled learns from a teacher; pass --teacher MODEL_DIR "
                          "(e.g. all-MiniLM-L6-v2 imported with `semsearch import-model`)")
    if corpora:
        config = with_corpora(config, corpora)
    if show_config:
        echo_json(config.to_dict())
        return
    folder = Path(out) if out else models_dir() / preset_name
    if resume and (overrides or preset_name != "quick"):
        info("resuming: the run's saved config is used; --preset/--set/--config are ignored")

    from semsearch.encoder.train import train_model

    summary = train_model(config, folder, data_dir=data_dir, resume=resume, overwrite=overwrite,
                          progress=not quiet and progress_enabled(),
                          log=(lambda _m: None) if quiet else info)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return
    if not as_json:
        dev = summary["stsb_dev_spearman"]
        info(f"saved {summary['model']} (best epoch {summary['best_epoch']}"
             + (f", STS-B dev Spearman {dev:.2f}" if dev is not None else "") + ")")
    from semsearch.calibration import calibrate_after

    summary["calibration"] = calibrate_after(folder, data_dir, skip=no_calibrate,
                                             log=(lambda _m: None) if quiet else info)
    if as_json:
        echo_json(summary)


def _train_static(settings, mixture, corpora, teacher, data_dir, out, resume, overwrite, quiet,
                  no_calibrate, as_json) -> None:
    """`--preset static`: from scratch on pairs, or distilled with --teacher (distill's path)."""
    from semsearch.calibration import calibrate_after
    from semsearch.encoder.presets import parse_set_options
    from semsearch.encoder.static_train import (
        SCRATCH_DEFAULTS,
        STATIC_SOURCES,
        StaticTrainConfig,
        train_static,
    )
    from semsearch.encoder.store import models_dir

    if teacher:
        from semsearch.cli.distill import distill

        args = ["--teacher", teacher, "--preset", "static", *sum((["--set", s] for s in settings),
                                                                 [])]
        args += [a for path in corpora for a in ("--corpus", path)]
        args += (["--data-dir", data_dir] if data_dir else []) + (["--out", out] if out else [])
        args += (["--resume"] if resume else []) + (["--overwrite"] if overwrite else [])
        args += (["--no-calibrate"] if no_calibrate else []) + (["--json"] if as_json else [])
        distill.main(args, standalone_mode=False)
        return
    config = StaticTrainConfig.with_overrides(
        SCRATCH_DEFAULTS | {k: str(v) for k, v in parse_set_options(settings).items()})
    from semsearch.data.mixture import expand_sources

    sources = expand_sources(tuple(mixture.split(",")) if mixture else STATIC_SOURCES)
    sources += tuple(f"corpus:{path}" for path in corpora)
    folder = Path(out) if out else models_dir() / "static"
    log = (lambda _m: None) if quiet else info
    summary = train_static(folder, config, sources, data_dir, resume=resume, overwrite=overwrite,
                           progress=not quiet and progress_enabled(), log=log)
    log(f"saved {summary['model']} ({summary['seconds']:.0f}s)")
    summary["calibration"] = calibrate_after(folder, data_dir, skip=no_calibrate, log=log)
    if as_json:
        echo_json(summary)
