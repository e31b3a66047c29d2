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
    "retrieval_dirs",
    multiple=True,
    metavar="DIR",
    help="Search a BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) through "
    "the real index and query path: BM25, dense and hybrid side by side; repeatable "
    "(default: the shared collections beir/mlquestions and beir/arguana of the data folder).",
)
@click.option("--split", default=None, metavar="NAME",
              help="qrels split of the --retrieval folders (default: dev where qrels/dev.tsv "
              "exists, else test).")
@click.option("--search/--no-search", "run_search", default=True, show_default=True,
              help="Run the retrieval collections through the search path and calibrate the "
              "model's hybrid fusion (writes fusion.json in the model folder on a full run).")
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
@click.option("--rescore", "rescore_model", default=None, metavar="MODEL",
              help="Also measure a two-stage search: the model's index finds candidates, MODEL "
              "re-scores them; calibrates the pair's depth and weight (rescore.json in MODEL's "
              "folder, where `query --rescore` finds them) and reports them out of fold.")
@click.option("--rescore-mode", "rescore_modes", multiple=True, default=("hybrid", "lexical"),
              show_default=True, type=click.Choice(["hybrid", "dense", "lexical"]),
              help="First stages to measure under --rescore (repeatable; lexical: BM25 alone).")
@click.option("--rescore-window", default=0, type=click.IntRange(0, 8192), metavar="TOKENS",
              help="Tokens of a candidate's chunk the rescoring model reads (0: its window).")
@device_option
@precision_option
@backend_option
@json_option
def evaluate(model, data_dir, retrieval_dirs, split, run_search, pairs_file, batch_size, limit,
             clustering, rescore_model, rescore_modes, rescore_window, device, precision,
             backend, as_json):
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
    from semsearch.data.sources import resolve_data_dir
    from semsearch.eval.pairs import read_pairs
    from semsearch.eval.report import format_report, report_path, write_report
    from semsearch.eval.runner import evaluate as run_evaluation
    from semsearch.eval.search_eval import shared_collections
    from semsearch.index.fusion import write_model_fusion

    pairs = read_pairs(pairs_file) if pairs_file else None
    search_sets = []
    if run_search and retrieval_dirs:
        search_sets = [(folder, split or _default_split(folder)) for folder in retrieval_dirs]
    elif run_search:
        search_sets = shared_collections(resolve_data_dir(data_dir))
    from semsearch.embedder import load_embedder

    if rescore_model is not None and not search_sets:
        raise click.UsageError("--rescore measures the search collections; leave out "
                               "--no-search (and give --retrieval DIR or keep the data folder's)")
    if rescore_model is not None:
        from semsearch.rescoring import describe_model

        describe_model(rescore_model)  # a folder that is not a model fails before any work
    encoder = load_embedder(model, device=None if device == "auto" else device,
                            precision=precision, backend=backend)
    info(f"evaluating {encoder.path} on {getattr(encoder, 'backend', 'torch')}")
    report = run_evaluation(
        encoder,
        data_dir=data_dir,
        retrieval_dirs=() if run_search else retrieval_dirs,
        search_sets=search_sets,
        pairs=pairs,
        pairs_file=pairs_file,
        batch_size=batch_size,
        limit=limit,
        clustering=clustering,
        progress=is_tty() and not as_json,
        log=info,
    )
    path = write_report(report, report_path(encoder.path, limit, precision))
    fusion = (report.get("search") or {}).get("fusion")
    if fusion and limit is None and precision == "fp32":
        from semsearch.index.fusion import FusionConfig

        calibrated = FusionConfig.from_dict(fusion)
        saved = write_model_fusion(encoder.path, encoder.fingerprint, calibrated,
                                   report["search"]["collections"])
        info(f"hybrid fusion calibrated: {fusion['setting']} (saved to {saved}; indexes built "
             "from now on use it)")
    if rescore_model is not None:
        from semsearch.eval.rescore_eval import evaluate_rescoring

        report["rescore"] = evaluate_rescoring(encoder, rescore_model, search_sets, limit,
                                               rescore_modes, rescore_window, batch_size,
                                               save=limit is None and precision == "fp32",
                                               log=info)
        path = write_report(report, report_path(encoder.path, limit, precision))
    if as_json:
        echo_json(report)
    else:
        click.echo(format_report(report))
        if rescore_model is not None:
            click.echo(format_rescoring(report["rescore"]))
    info(f"report saved to {path}")


def _default_split(folder) -> str:
    from pathlib import Path

    return "dev" if (Path(folder) / "qrels" / "dev.tsv").is_file() else "test"


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
