"""`semsearch evaluate`: the model's standard numbers beside a TF-IDF baseline, saved as eval.json."""

from __future__ import annotations

import click

from semsearch.cli.common import (
    data_dir_option,
    device_option,
    echo_json,
    info,
    is_tty,
    json_option,
    model_option,
    precision_option,
)


@click.command()
@model_option
@data_dir_option
@click.option(
    "--retrieval",
    "retrieval_dirs",
    multiple=True,
    metavar="DIR",
    help="Also score retrieval on a BEIR-layout folder (corpus.jsonl, queries.jsonl, "
    "qrels/test.tsv); repeatable.",
)
@click.option(
    "--pairs",
    "pairs_file",
    default=None,
    metavar="FILE",
    help="Hand-written pairs to check, one a line: text_a<TAB>text_b<TAB>similar|dissimilar.",
)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="Texts encoded per batch.")
@click.option("--limit", default=None, type=click.IntRange(min=1), metavar="N",
              help="Use only the first N pairs or queries of each set: a quick check, saved as "
              "eval-limitN.json so the full eval.json stays.")
@click.option("--clustering/--no-clustering", default=True, show_default=True,
              help="Also score k-means on Wikipedia sentences grouped by article (V-measure).")
@device_option
@precision_option
@json_option
def evaluate(model, data_dir, retrieval_dirs, pairs_file, batch_size, limit, clustering, device,
             precision, as_json):
    """Score a model: STS-B, retrieval, vs TF-IDF.

    Reports STS-B test and dev Spearman and Pearson (x100) of cosine against gold; the mean
    cosine of clearly similar (gold >= 4) and dissimilar (gold <= 1) STS-B test pairs against
    the targets 0.7 / 0.5 / gap 0.2; recall@1, recall@10, MRR@10 and nDCG@10 on SNLI test
    (each premise a query over all entailed hypotheses) and on any --retrieval folder; each
    beside a TF-IDF cosine baseline; and the V-measure of k-means on Wikipedia sentences grouped
    by their article (clustering; skipped when the articles are not in the data folder). The report is saved as eval.json in the model folder.

    \b
    Examples:
      semsearch evaluate
      semsearch evaluate --model models/quick --pairs corpora/pairs_example.tsv
      semsearch evaluate --retrieval data/scifact --json
      semsearch evaluate --limit 200      # a quick check
      semsearch evaluate --precision int8 # int8 encoding, saved as eval-int8.json
    """
    from semsearch.api import load
    from semsearch.eval.pairs import read_pairs
    from semsearch.eval.report import format_report, report_path, write_report
    from semsearch.eval.runner import evaluate as run_evaluation

    pairs = read_pairs(pairs_file) if pairs_file else None
    encoder = load(model, device=None if device == "auto" else device, precision=precision)
    info(f"evaluating {encoder.path}")
    report = run_evaluation(
        encoder,
        data_dir=data_dir,
        retrieval_dirs=retrieval_dirs,
        pairs=pairs,
        pairs_file=pairs_file,
        batch_size=batch_size,
        limit=limit,
        clustering=clustering,
        progress=is_tty() and not as_json,
        log=info,
    )
    path = write_report(report, report_path(encoder.path, limit, precision))
    if as_json:
        echo_json(report)
    else:
        click.echo(format_report(report))
    info(f"report saved to {path}")
