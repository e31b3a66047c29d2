"""The model card (README.md) of a model folder: what it is, how it was trained, on which data
under which licences, and the figures of its eval.json. Written by `semsearch train` and by
`semsearch export` (there with the sentence-transformers usage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from semsearch.data.sources import PASSAGE_SOURCES

CARD = "README.md"

# each training source's licence, from ../shared/data/README.md (the data sets' own terms)
LICENCES = {
    "snli": "CC BY-SA 4.0",
    "stsb": "scores CC BY-SA 4.0; sentences under their sources' terms (STS-B LICENSE.txt)",
    "flickr30k": "non-commercial research only",
    "flickr8k": "research use only",
    "coco": "CC BY 4.0",
    "quora": "Quora's terms (non-commercial)",
    "mrpc": "Microsoft Research licence (research use)",
    "wikipedia": "CC BY-SA 3.0",
}


def model_card(config: dict[str, Any], report: dict[str, Any] | None = None,
               usage: str | None = None) -> str:
    r"""Markdown for a model folder's config.json (and eval.json `report`, if there is one).

    >>> print(model_card({"name": "m", "model": {"hidden": 8, "layers": 1, "heads": 1,
    ...                    "max_seq_len": 16, "prenorm": True}}).split("\n\n")[1])
    # m
    """
    name = config.get("name", "model")
    model = config.get("model", {})
    source = config.get("source")
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
             "tags:", "- semsearch", "- sentence-transformers", "- feature-extraction",
             "- sentence-similarity", "---", "", f"# {name}", ""]
    kind = "pre-LayerNorm" if model.get("prenorm", True) else "post-LayerNorm (BERT)"
    parameters = config.get("parameters", {}).get("total")
    if model.get("kind") == "static":
        run = config.get("run") or {}
        made = (f"distilled from {run['teacher']} on unlabelled text ("
                + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                            for k, v in (run.get("texts") or {}).items()) + ")"
                if run.get("teacher") else
                "trained with InfoNCE on " + " + ".join(run.get("sources") or []))
        lines.append(
            f"A semsearch static embedding model (no transformer): {model.get('vocab_size'):,} "
            f"token vectors of {model.get('hidden')} dimensions, a text's vector the weighted "
            f"sum of its first {model.get('max_seq_len')} tokens' rows, L2-normalised"
            + (f", {parameters:,} parameters" if parameters else "") + f"; {made}.")
        if usage:
            lines += ["", "## Usage", "", usage.strip()]
        return "\n".join(lines)
    lines.append(
        f"A semsearch sentence encoder: a {model.get('layers')}-layer {kind} transformer, "
        f"{model.get('hidden')}-dim, {model.get('heads')} heads"
        + (f", {model.get('experts')} experts (top {model.get('expert_top_k')})"
           if model.get("experts") else "")
        + f", {model.get('max_seq_len')} tokens, mean pooling, L2-normalised"
        + (f", {parameters:,} parameters" if parameters else "") + ".")
    if source:
        lines += ["", f"Imported from {source.get('name_or_path') or source.get('imported_from')}"
                  f" ({source.get('kind')}); training data: {source.get('training_data')}."]
    if usage:
        lines += ["", "## Usage", "", usage.strip()]
    data = config.get("data")
    if data:
        lines += ["", "## Training data", "", f"Mixture {' + '.join(data.get('sources', []))}:",
                  "", "| source | pairs after filtering | licence |", "|---|---|---|"]
        report_rows = config.get("data_report") or {}
        # the report's "negatives:MINER" entry is what mining did, not a source of pairs
        mining = {name_: row for name_, row in report_rows.items()
                  if name_.startswith("negatives:")}
        for name_ in [n for n in report_rows if n not in mining] or data.get("sources", []):
            kept = report_rows.get(name_, {}).get("kept", "")
            lines.append(f"| {name_} | {kept} | {_licence(name_)} |")
        cap = data.get("max_pairs")
        lines += ["", f"{f'At most {cap:,} pairs' if cap else 'Every pair (no cap)'}; "
                  f"{config.get('train_pairs', '?')} "
                  f"training and {config.get('val_pairs', '?')} validation pairs. The STS-B test "
                  "split is never trained on. Check each licence before using this model "
                  "commercially."]
        for name_, row in mining.items():
            mined, without = (f"{row[key]:,}" if isinstance(row.get(key), int) else "?"
                              for key in ("mined", "pairs_without"))
            lines.append(f"Hard negatives mined with {name_.partition(':')[2]} for {mined} of "
                         f"the {without} pairs that had none (margin {row.get('margin')}).")
    train = config.get("train")
    if train:
        keys = ("epochs", "batch_size", "lr", "scale", "sts_epochs", "sts_lr", "sts_loss", "seed")
        recipe = ", ".join(f"{key} {train[key]}" for key in keys if key in train)
        lines += ["", "## Recipe", "", f"InfoNCE with in-batch negatives, then an STS-B stage: "
                  f"{recipe}. The full configuration is in config.json."]
        if config.get("best"):
            best = config["best"]
            lines.append(f"Best epoch {best.get('epoch')} (STS-B dev Spearman "
                         f"{_number(best.get('stsb_dev_spearman'))}).")
    lines += ["", "## Evaluation", ""]
    if report:
        from semsearch.eval.report import format_report

        lines += ["From eval.json (`semsearch evaluate`):", "", "```",
                  format_report(report), "```"]
    else:
        lines.append("Not evaluated yet: run `semsearch evaluate --model DIR` (writes eval.json).")
    lines += ["", f"Made with semsearch {config.get('package_version', '')}.".replace(" .", "."),
              ""]
    return "\n".join(lines)


def write_model_card(folder: str | Path, usage: str | None = None,
                     out: str | Path | None = None) -> Path:
    """Write the card of the model folder `folder` as `out` (default: folder/README.md)."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    report = None
    if (folder / "eval.json").is_file():
        try:
            report = json.loads((folder / "eval.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            report = None
    path = Path(out) if out is not None else folder / CARD
    text = model_card(config, report, usage)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


def _licence(source: str) -> str:
    name = source.split(":")[0].lower()
    if name in ("file", "corpus"):
        return "your file's own terms"
    if name in PASSAGE_SOURCES:  # wikititle, wikiict, ...: pairs mined from the Wikipedia articles
        name = "wikipedia"
    return LICENCES.get(name, "see the data set's own terms")


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
