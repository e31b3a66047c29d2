"""The commands that score a model, one public function each: `semsearch.evaluate` (the standard
numbers and the fusion calibration, saved as eval.json), `semsearch.similarity_pairs` (the
cosine of text pairs, checked against their labels) and `semsearch.plot` (training curves and a
t-SNE map). Each takes its command's options under the names of its flags and returns the
report the command prints (`to_dict()` for --json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semsearch.progress import Log, resolve_log


@dataclass
class EvaluationReport:
    """What `evaluate` measured (`report`, the eval.json document), where it saved it, and the
    model's fusion file when the run calibrated and saved the fusion (a full fp32 run)."""

    report: dict[str, Any]
    path: Path
    fusion_saved: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.report

    def table(self) -> str:
        """The report as tables for people (what `semsearch evaluate` prints)."""
        from semsearch.eval.report import format_report, format_rescoring

        text = format_report(self.report)
        if self.report.get("rescore"):
            text += "\n" + format_rescoring(self.report["rescore"])
        return text


def evaluate(
    model: str | Path | None = None,
    data_dir: str | Path | None = None,
    retrieval: Sequence[str | Path] = (),
    split: str | None = None,
    search: bool = True,
    pairs: str | Path | None = None,
    batch_size: int = 64,
    limit: int | None = None,
    clustering: bool = True,
    rescore: str | Path | None = None,
    rescore_mode: Sequence[str] = ("hybrid", "lexical"),
    rescore_window: int = 0,
    device: str | None = "auto",
    precision: str = "fp32",
    backend: str | None = None,
    log: Log | None = None,
    progress: bool = False,
) -> EvaluationReport:
    """Score the model folder `model` (default: the newest under models/) as `semsearch
    evaluate` does: STS-B test and dev, similarity separation, SNLI retrieval and clustering
    beside a TF-IDF baseline, and BM25, dense and hybrid search through the real index path on
    the data folder's retrieval collections (or each BEIR folder of `retrieval`, scored on
    `split`), with the hybrid fusion calibrated over them and, on a full fp32 run, saved as
    the model's fusion.json. `pairs`: a file of hand-written pairs to check too; `limit`: the
    first N pairs or queries of each set (a quick check, saved as eval-limitN.json).
    `rescore`: a model folder that re-scores the first stage's candidates (`semsearch evaluate
    --rescore`): the two-stage search is measured on each first stage of `rescore_mode`, its
    depth and weight calibrated (rescore.json in that model's folder) and reported out of fold;
    `rescore_window`: tokens of a candidate the rescoring model reads (0: its window).

    >>> result = semsearch.evaluate("models/quick", limit=200)          # doctest: +SKIP
    >>> result.report["sts"]["stsb_test"]["model"]["spearman"]           # doctest: +SKIP
    72.1
    """
    log = resolve_log(log)
    from semsearch.data.sources import resolve_data_dir
    from semsearch.embedder import load_embedder
    from semsearch.eval.pairs import read_pairs
    from semsearch.eval.report import report_path, write_report
    from semsearch.eval.runner import evaluate as run_evaluation
    from semsearch.eval.search_eval import default_split, shared_collections
    from semsearch.index.fusion import write_model_fusion

    labelled = read_pairs(pairs) if pairs else None
    search_sets = []
    if search and retrieval:
        search_sets = [(folder, split or default_split(folder)) for folder in retrieval]
    elif search:
        search_sets = shared_collections(resolve_data_dir(data_dir))
    if rescore is not None and not search_sets:
        from semsearch.errors import UsageError

        raise UsageError("--rescore measures the search collections; leave out --no-search "
                         "(and give --retrieval DIR or keep the data folder's)")
    if rescore is not None:
        from semsearch.rescoring import describe_model

        describe_model(rescore)  # a folder that is not a model fails before any work
    encoder = load_embedder(model, device=None if device == "auto" else device,
                            precision=precision, backend=backend)
    log(f"evaluating {encoder.path} on {getattr(encoder, 'backend', 'torch')}")
    report = run_evaluation(
        encoder,
        data_dir=data_dir,
        retrieval_dirs=() if search else tuple(retrieval),
        search_sets=search_sets,
        pairs=labelled,
        pairs_file=str(pairs) if pairs else None,
        batch_size=batch_size,
        limit=limit,
        clustering=clustering,
        progress=progress,
        log=log,
    )
    path = write_report(report, report_path(encoder.path, limit, precision))
    result = EvaluationReport(report, path)
    fusion = (report.get("search") or {}).get("fusion")
    if fusion and limit is None and precision == "fp32":
        from semsearch.index.fusion import FusionConfig

        calibrated = FusionConfig.from_dict(fusion)
        result.fusion_saved = write_model_fusion(encoder.path, encoder.fingerprint, calibrated,
                                                 report["search"]["collections"])
        log(f"hybrid fusion calibrated: {fusion['setting']} (saved to {result.fusion_saved}; "
            "indexes built from now on use it)")
    if rescore is not None:
        from semsearch.eval.rescore_eval import evaluate_rescoring

        report["rescore"] = evaluate_rescoring(encoder, rescore, search_sets, limit,
                                               tuple(rescore_mode), rescore_window, batch_size,
                                               save=limit is None and precision == "fp32",
                                               log=log)
        write_report(report, path)
    return result


@dataclass
class PairScore:
    """One pair's cosine, and whether it meets its label (None for an unlabelled pair)."""

    text_a: str
    text_b: str
    similarity: float
    expected: str | None = None
    passed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        row = {"text_a": self.text_a, "text_b": self.text_b,
               "similarity": round(self.similarity, 6)}
        if self.expected:
            row |= {"expected": self.expected, "pass": self.passed}
        return row


def similarity_pairs(pairs: str | Path | Sequence[tuple[str, str]], model=None,
                     device: str | None = "auto") -> list[PairScore]:
    """The cosine of each pair (`semsearch similarity`): `pairs` a file of
    text_a<TAB>text_b[<TAB>similar|dissimilar] lines, or (text_a, text_b) tuples; a labelled
    pair is checked against its target (similar > 0.7, dissimilar < 0.5).

    >>> semsearch.similarity_pairs([("A cat sleeps", "A kitten naps")])[0].similarity  # doctest: +SKIP
    0.71
    """
    from semsearch.api import load
    from semsearch.eval.pairs import LabelledPair, read_pairs
    from semsearch.eval.runner import meets_expectation, score_pairs

    if isinstance(pairs, (str, Path)):
        labelled = read_pairs(pairs, require_label=False)
    else:
        labelled = [LabelledPair(a, b) for a, b in pairs]
    encoder = model if hasattr(model, "encode") and not isinstance(model, (str, Path)) else load(
        model, device=None if device == "auto" else device)
    scores = score_pairs(encoder.encode, [(p.text_a, p.text_b) for p in labelled])
    return [PairScore(p.text_a, p.text_b, float(score), p.expected,
                      meets_expectation(p.expected, float(score)))
            for p, score in zip(labelled, scores, strict=True)]


@dataclass
class PlotReport:
    """The PNG files `plot` wrote."""

    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"files": [str(path) for path in self.files]}


def plot(model: str | Path | None = None, out: str | Path | None = None, groups: int = 12,
         data_dir: str | Path | None = None, device: str | None = "auto",
         log: Log | None = None) -> PlotReport:
    """Draw the model's training curves (training_curves.png, from history.json) and a t-SNE map
    of `groups` SNLI premises with an entailed and a contradicting hypothesis each
    (tsne_snli.png) into `out` (default: plots/ in the model folder; `semsearch plot`). Needs
    pip install 'semsearch[plot]'.

    >>> semsearch.plot("models/quick").files          # doctest: +SKIP
    [PosixPath('models/quick/plots/training_curves.png'), PosixPath('models/quick/plots/tsne_snli.png')]
    """
    log = resolve_log(log)
    from semsearch.eval import plots

    plots.require_plotting()  # before the heavy imports, so a missing extra is said at once

    from semsearch.api import load
    from semsearch.data import load_snli
    from semsearch.encoder import resolve_model
    from semsearch.errors import DataError

    folder = resolve_model(model)
    target = Path(out) if out else folder / "plots"
    report = PlotReport()
    history_path = folder / "history.json"
    if history_path.is_file():
        report.files.append(plots.plot_history(
            plots.read_history(history_path), target / "training_curves.png", title=folder.name))
    else:
        log(f"no history.json in {folder}; skipping the training curves")
    texts, group_ids, roles = plots.snli_groups(load_snli("test", data_dir), groups)
    if len(texts) < 6:
        raise DataError("SNLI test has too few premises with both an entailed and a contradicting "
                        "hypothesis for a map; check the data folder (--data-dir)")
    encoder = load(folder, device=None if device == "auto" else device)
    log(f"t-SNE of {len(texts)} SNLI sentences")
    points = plots.tsne_2d(encoder.encode(texts))
    report.files.append(plots.plot_map(points, group_ids, roles, target / "tsne_snli.png",
                                       title=f"{folder.name}: SNLI premises and their hypotheses"))
    return report
