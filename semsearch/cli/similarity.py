"""`semsearch similarity`: the cosine similarity of two texts, or of each pair in a file."""

from __future__ import annotations

import click

from semsearch.cli.common import device_option, echo_json, json_option, model_option


@click.command()
@click.argument("texts", nargs=-1)
@model_option
@click.option(
    "--pairs",
    "pairs_file",
    default=None,
    metavar="FILE",
    help="Score each pair of a file instead, one a line: text_a<TAB>text_b, optionally "
    "<TAB>similar|dissimilar to check it.",
)
@device_option
@json_option
def similarity(texts, model, pairs_file, device, as_json):
    """Print the cosine similarity (-1 to 1) of two texts.

    With --pairs, print one line per pair: the score, and where the pair is labelled, whether
    it meets the target (similar > 0.7, dissimilar < 0.5). --json prints one JSON object a line.

    \b
    Examples:
      semsearch similarity "I love programming" "I enjoy coding"
      semsearch similarity --pairs corpora/pairs_example.tsv
      semsearch similarity "A cat sleeps" "Stocks fell" --model models/quick --json
    """
    from semsearch.api import load
    from semsearch.eval.pairs import LabelledPair, read_pairs
    from semsearch.eval.runner import meets_expectation, score_pairs

    if pairs_file and texts:
        raise click.UsageError("give either two texts or --pairs FILE, not both")
    if pairs_file:
        pairs = read_pairs(pairs_file, require_label=False)
    elif len(texts) == 2:
        pairs = [LabelledPair(texts[0], texts[1])]
    else:
        raise click.UsageError(f"give two texts to compare (got {len(texts)}), or --pairs FILE")

    encoder = load(model, device=None if device == "auto" else device)
    scores = score_pairs(encoder.encode, [(p.text_a, p.text_b) for p in pairs])
    for pair, score in zip(pairs, scores, strict=True):
        verdict = meets_expectation(pair.expected, float(score))
        if as_json:
            row = {"text_a": pair.text_a, "text_b": pair.text_b, "similarity": round(float(score), 6)}
            if pair.expected:
                row |= {"expected": pair.expected, "pass": verdict}
            echo_json(row)
        elif not pairs_file:
            click.echo(f"{score:.4f}")
        else:
            mark = "" if verdict is None else f"  {pair.expected:<10} {'pass' if verdict else 'FAIL'}"
            click.echo(f"{score:7.4f}{mark}  {pair.text_a} | {pair.text_b}")
