"""The evaluation report on disk (eval.json, written atomically) and as a table for people."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from semsearch.eval.runner import RETRIEVAL_METRICS
from semsearch.permissions import set_default_mode

METHODS = (("model", "model"), ("tfidf", "TF-IDF"))


def report_path(model_path: str | Path, limit: int | None = None,
                precision: str = "fp32") -> Path:
    """Where a report goes: `eval.json` in the model folder, `eval-limitN.json` for a quick
    `--limit N` run and `eval-int8.json` for int8 encoding, so neither overwrites the full fp32
    report."""
    name = "eval" + ("" if precision == "fp32" else f"-{precision}")
    name += "" if limit is None else f"-limit{limit}"
    return Path(model_path) / f"{name}.json"


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write `report` as indented JSON to `path` atomically (temporary file, then rename)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        set_default_mode(temporary)  # mkstemp makes it 0600; a report is an ordinary file
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2, ensure_ascii=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def format_report(report: dict[str, Any]) -> str:
    """The report as plain-text tables: STS correlations, separation, pairs, retrieval."""
    model = report["model"]
    precision = model.get("precision", "fp32")
    lines = [
        f"semsearch evaluate · model {model['name']} ({model['dim']}-dim"
        f"{'' if precision == 'fp32' else ', ' + precision}) · {report['date']} · "
        f"semsearch {report['semsearch_version']}"
    ]
    if model.get("kind"):
        lines.append(f"model kind: {model['kind']}")
    if report.get("limit") is not None:
        lines.append(
            f"quick check: the first {report['limit']:,} pairs or queries of each set only; "
            "not comparable with a full run"
        )
    thresholds = report["thresholds"]

    rows = [["STS, cosine vs gold (x100)", "pairs", "model", "TF-IDF"]]
    for task, label in (("stsb_test", "STS-B test"), ("stsb_dev", "STS-B dev")):
        if task in report["sts"]:
            result = report["sts"][task]
            for metric in ("spearman", "pearson"):
                rows.append(
                    [f"  {label} {metric.capitalize()}", f"{result['pairs']:,}"]
                    + [_number(result[m][metric], 2) for m, _ in METHODS]
                )
    lines += ["", *_table(rows)]

    if "stsb_test" in report["separation"]:
        lines += ["", *_separation_table("Separation on STS-B test", report["separation"]["stsb_test"], thresholds, "gold >= 4", "gold <= 1")]

    if "pairs" in report:
        pairs = report["pairs"]
        title = f"Hand-written pairs ({pairs.get('file') or 'given'})"
        lines += ["", *_separation_table(title, pairs, thresholds, "labelled similar", "labelled dissimilar")]
        lines.append(
            f"  pairs meeting their label (similar > {thresholds['similar']}, dissimilar < "
            f"{thresholds['dissimilar']}): model {pairs['model']['met']}/{len(pairs['pairs'])}, "
            f"TF-IDF {pairs['tfidf']['met']}/{len(pairs['pairs'])}"
        )
        rows = [["  model", "TF-IDF", "expected", "pair"]]
        for row in pairs["pairs"]:
            rows.append(
                [f"  {row['model']:.3f}", f"{row['tfidf']:.3f}", row["expected"] or "-",
                 _shorten(f"{row['text_a']} | {row['text_b']}", 70)]
            )
        lines += _table(rows, left={0, 3})

    for name, result in report["retrieval"].items():
        rows = [[f"Retrieval {name} ({result['queries']:,} queries, {result['corpus']:,} documents)", "model", "TF-IDF"]]
        for metric in RETRIEVAL_METRICS:
            rows.append([f"  {metric}"] + [_number(result[m].get(metric), 3) for m, _ in METHODS])
        lines += ["", *_table(rows)]

    for name, result in (report.get("clustering") or {}).items():
        rows = [[f"Clustering {name} ({result['texts']:,} sentences, {result['clusters']} "
                 "articles; k-means)", "model", "TF-IDF"],
                ["  V-measure"] + [_number(result[m]["v_measure"], 3) for m, _ in METHODS]]
        lines += ["", *_table(rows)]
    search = report.get("search") or {}
    for name, result in search.get("collections", {}).items():
        rows = [[f"Search {name} ({result['queries']:,} queries, {result['corpus']:,} documents)",
                 "BM25", "dense", f"hybrid ({search['fusion']['setting']})"]]
        for metric in ("ndcg@10", "recall@100", "mrr@10"):
            rows.append([f"  {metric}"] + [_number(result[side].get(metric), 3)
                                           for side in ("bm25", "dense", "hybrid")])
        lines += ["", *_table(rows)]
    speed = report.get("speed")
    if speed:
        lines += ["", f"encode speed: {speed['texts_per_s']:,.0f} texts/s ({speed['texts']:,} "
                  f"{speed['collection']} passages, {speed['backend']})"]
    if search.get("fusion"):
        lines += ["", f"hybrid fusion for this model: {search['fusion']['setting']} (the grid's "
                  "setting with the smallest shortfall against the better side, over these "
                  "collections)"]

    for warning in report.get("warnings", []):
        lines += ["", f"warning: {warning}"]
    return "\n".join(lines)


def format_rescoring(report: dict) -> str:
    """The second phase's table: per first stage and collection, the first stage alone, the
    cascade at the calibrated setting (through the real path) and out of fold."""
    lines = [f"\nSecond phase: {report['model']} ({report['precision']}) re-scoring "
             f"{report['first_stage_model']}'s first stage"]
    lines.append(f"  {'first stage':<10} {'collection':<14} {'alone':>7} {'cascade':>8} "
                 f"{'out of fold':>12} {'recall@depth':>13}  setting")
    for mode, section in report["modes"].items():
        for name, c in section["collections"].items():
            lines.append(f"  {mode:<10} {name:<14} {c['first_stage']['ndcg@10']:7.3f} "
                         f"{c['cascade']['ndcg@10']:8.3f} "
                         f"{c['cascade_out_of_fold_ndcg@10']:12.3f} "
                         f"{c['recall_at_depth']:13.3f}  {section['setting']}")
    return "\n".join(lines)


def _separation_table(title, result, thresholds, similar_label, dissimilar_label) -> list[str]:
    rows = [[f"{title}, mean cosine", "pairs", "model", "TF-IDF", "target", "verdict"]]
    for key, label, target in (
        ("similar", f"similar ({similar_label})", f"> {thresholds['similar']}"),
        ("dissimilar", f"dissimilar ({dissimilar_label})", f"< {thresholds['dissimilar']}"),
        ("gap", "gap", f"> {thresholds['gap']}"),
    ):
        count = "" if key == "gap" else f"{result['model'][f'{key}_pairs']:,}"
        mean_key = "gap" if key == "gap" else f"{key}_mean"
        rows.append(
            [f"  {label}", count]
            + [_number(result[m][mean_key], 3) for m, _ in METHODS]
            + [target, _verdict(result["model"]["pass"][key])]
        )
    return _table(rows)


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "-"}[passed]


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[list[str]], left: set[int] = frozenset({0})) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
