"""`semsearch check [INDEX]`: verify an index folder end to end, and measure its recall."""

from __future__ import annotations

import click

from semsearch.cli.common import echo_json, info, json_option

EXAMPLES = """\b
Examples:
  semsearch check
  semsearch check indexes/docs
  semsearch check docs --sample 200 --json
  semsearch check indexes/articles --model models/quick
"""


@click.command(epilog=EXAMPLES)
@click.argument("index_dir", required=False, metavar="[INDEX]")
@click.option(
    "--model",
    "model",
    default=None,
    metavar="DIR",
    help="Model folder to check the fingerprint against (default: the one the index was "
    "built with, when it is still there).",
)
@click.option(
    "--sample",
    default=1000,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Stored vectors used as queries to measure recall@10 against exact search (0: skip).",
)
@json_option
@click.pass_context
def check(ctx, index_dir, model, sample, as_json):
    """Verify INDEX (a folder, a name under indexes/, default the latest) without changing it.

    Checks the manifest, that index.faiss loads and matches the counts, the document store
    (SQLite's integrity_check, rows in step with the vectors), the re-rank file's length, the
    model fingerprint, and measures recall@10 of the index against exact search on a sample,
    beside the recall recorded when it was built or last tuned. Exit code 0 only when healthy;
    a recall well under the target means the index should be rebuilt.
    """
    from pathlib import Path

    from semsearch.cli.terminal import printable
    from semsearch.index import resolve_index_dir
    from semsearch.index.verify import verify_index

    folder = resolve_index_dir(index_dir)
    report = verify_index(folder, sample=sample)
    if report.manifest is not None:
        _check_fingerprint(report, model, Path)
        if report.manifest.lexical:
            from semsearch.index.fusion import describe_fusion, index_fusion

            fusion = describe_fusion(*index_fusion(report.manifest))
            report.add("fusion", "ok" if fusion["calibrated"] else "warn",
                       f"hybrid {fusion['setting']}: {fusion['note']}")
        _check_rescore(report)
    if as_json:
        echo_json(report.to_dict())
    else:
        for item in report.checks:
            click.echo(f"{item.status:<5} {item.name:<12} {printable(item.detail)}")
        verdict = "healthy" if report.healthy else "NOT healthy"
        info(f"{folder}: {verdict}")
    if not report.healthy:
        ctx.exit(1)


def _check_rescore(report) -> None:
    """The second phase the index records (index --rescore): its model is there, unchanged."""
    from semsearch.rescoring import describe_model, recorded_model

    recorded = recorded_model(report.manifest)
    if recorded is None:
        return
    fix = (f"record it again with `semsearch index --rescore MODEL --out {report.folder}` or "
           "query with --no-rescore")
    try:
        now = describe_model(recorded["model_path"])
    except Exception as error:  # noqa: BLE001 - a missing or broken folder: one line
        report.add("rescore", "fail", f"rescoring model {recorded['model_path']}: {error}; {fix}")
        return
    if now["model_fingerprint"] != recorded.get("model_fingerprint"):
        report.add("rescore", "fail", f"rescoring model {now['model_path']} now has fingerprint "
                   f"{now['model_fingerprint']}, not the recorded "
                   f"{recorded.get('model_fingerprint')}; {fix}")
    else:
        report.add("rescore", "ok", f"second phase {now['model_path']} matches fingerprint "
                   f"{now['model_fingerprint']}")


def _check_fingerprint(report, model, Path) -> None:
    """The model the index was built with (or --model) still gives the vectors it holds."""
    from semsearch.encoder.store import CONFIG, model_fingerprints, read_config
    from semsearch.errors import SemsearchError

    manifest = report.manifest
    folder = Path(model) if model else Path(manifest.model_path)
    if not (folder / CONFIG).is_file():
        report.add("model", "fail" if model else "warn",
                   f"model folder {folder} not found; pass --model DIR to check the fingerprint")
        return
    try:
        full, weights_only = model_fingerprints(folder, read_config(folder))
    except (SemsearchError, OSError) as error:
        report.add("model", "fail", f"{folder}: {error}")
        return
    if manifest.model_fingerprint == full:
        report.add("model", "ok", f"{folder} matches fingerprint {full}")
    elif manifest.model_fingerprint == weights_only:
        report.add("model", "warn", f"{folder} has the same weights; this index was built before "
                   "fingerprints covered tokenizer.json and config.json, so changes to those "
                   "cannot be detected: rebuild it to record the full fingerprint")
    else:
        report.add("model", "fail", f"{folder} (fingerprint {full}) is not the model this index "
                   f"was built with ({manifest.model_fingerprint}); rebuild the index or pass "
                   "--model with the original model")
