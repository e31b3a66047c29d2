"""`semsearch evaluate`: the model's standard numbers beside a TF-IDF baseline, saved as eval.json."""

from __future__ import annotations

import click

from semsearch.cli.common import (
    backend_option,
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
    "retrieval",
    multiple=True,
    metavar="DIR",
    help="Search a BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) through "
    "the real index and query path: BM25, dense and hybrid side by side; repeatable "
    "(default: the shared collections beir/mlquestions and beir/arguana of the data folder).",
)
@click.option("--split", default=None, metavar="NAME",
              help="qrels split of the --retrieval folders (default: dev where qrels/dev.tsv "
              "exists, else test).")
@click.option("--search/--no-search", "search", default=True, show_default=True,
              help="Run the retrieval collections through the search path and calibrate the "
              "model's hybrid fusion (writes fusion.json in the model folder on a full run).")
@click.option(
    "--pairs",
    "pairs",
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
@click.option("--rescore", "rescore", default=None, metavar="MODEL",
              help="Also measure a two-stage search: the model's index finds candidates, MODEL "
              "re-scores them; calibrates the pair's depth and weight (rescore.json in MODEL's "
              "folder, where `query --rescore` finds them) and reports them out of fold.")
@click.option("--rescore-mode", "rescore_mode", multiple=True, default=("hybrid", "lexical"),
              show_default=True, type=click.Choice(["hybrid", "dense", "lexical"]),
              help="First stages to measure under --rescore (repeatable; lexical: BM25 alone).")
@click.option("--rescore-window", default=0, type=click.IntRange(0, 8192), metavar="TOKENS",
              help="Tokens of a candidate's chunk the rescoring model reads (0: its window).")
@device_option
@precision_option
@backend_option
@json_option
def evaluate(model, data_dir, retrieval, split, search, pairs, batch_size, limit, clustering,
             rescore, rescore_mode, rescore_window, device, precision, backend, as_json):
    """Score a model: STS-B, retrieval, vs TF-IDF.

    Reports STS-B test and dev Spearman and Pearson (x100) of cosine against gold; the mean
    cosine of clearly similar (gold >= 4) and dissimilar (gold <= 1) STS-B test pairs against
    the targets 0.7 / 0.5 / gap 0.2; recall@1, recall@10, MRR@10 and nDCG@10 on SNLI test
    (each premise a query over all entailed hypotheses), beside a TF-IDF cosine baseline; the
    V-measure of k-means on Wikipedia sentences grouped by their article (clustering; skipped
    when the articles are not in the data folder); and on MLQuestions dev and ArguAna (or each
    --retrieval folder), through the real index and search path, nDCG@10, recall@100 and
    MRR@10 of BM25, dense and hybrid search, with the hybrid fusion calibrated for the model
    over those collections (saved as fusion.json in the model folder, where `semsearch index`
    picks it up). The report is saved as eval.json.

    \b
    Examples:
      semsearch evaluate
      semsearch evaluate --model models/quick --pairs corpora/pairs_example.tsv
      semsearch evaluate --retrieval data/scifact --split test --json
      semsearch evaluate --limit 200      # a quick check
      semsearch evaluate --precision int8 # int8 encoding, saved as eval-int8.json
      semsearch evaluate --backend torch  # encode with PyTorch instead of ONNX Runtime
      semsearch evaluate --model models/static --rescore models/minilm   # two stages
    """
    from semsearch import evaluate as run_evaluate

    result = run_evaluate(model, data_dir, retrieval, split, search, pairs, batch_size, limit,
                          clustering, rescore, rescore_mode, rescore_window, device, precision,
                          backend, log=info, progress=is_tty() and not as_json)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(result.table())
    info(f"report saved to {result.path}")
