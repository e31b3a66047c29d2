"""`semsearch similarity`: the cosine similarity of two texts, or of each pair in a file."""

from __future__ import annotations

import click

from semsearch.cli.common import device_option, echo_json, json_option, model_option


@click.command()
@click.argument("texts", nargs=-1)
@model_option
@click.option(
    "--pairs",
    "pairs",
    default=None,
    metavar="FILE",
    help="Score each pair of a file instead, one a line: text_a<TAB>text_b, optionally "
    "<TAB>similar|dissimilar to check it.",
)
@device_option
@json_option
def similarity(texts, model, pairs, device, as_json):
    """Print the cosine similarity (-1 to 1) of two texts.

    With --pairs, print one line per pair: the score, and where the pair is labelled, whether
    it meets the target (similar > 0.7, dissimilar < 0.5). --json prints one JSON object a line.

    \b
    Examples:
      semsearch similarity "I love programming" "I enjoy coding"
      semsearch similarity --pairs corpora/pairs_example.tsv
      semsearch similarity "A cat sleeps" "Stocks fell" --model models/quick --json
    """
    from semsearch import similarity_pairs

    if pairs and texts:
        raise click.UsageError("give either two texts or --pairs FILE, not both")
    if not pairs and len(texts) != 2:
        raise click.UsageError(f"give two texts to compare (got {len(texts)}), or --pairs FILE")
    for row in similarity_pairs(pairs or [tuple(texts)], model, device):
        if as_json:
            echo_json(row.to_dict())
        elif not pairs:
            click.echo(f"{row.similarity:.4f}")
        else:
            mark = "" if row.passed is None else (
                f"  {row.expected:<10} {'pass' if row.passed else 'FAIL'}")
            click.echo(f"{row.similarity:7.4f}{mark}  {row.text_a} | {row.text_b}")
