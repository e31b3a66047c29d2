"""`semsearch plot`: PNGs of a model's training curves and a t-SNE map of its embeddings."""

from __future__ import annotations

import click

from semsearch.cli.common import (
    data_dir_option,
    device_option,
    echo_json,
    info,
    json_option,
    model_option,
)


@click.command()
@model_option
@click.option("--out", "out", default=None, metavar="DIR",
              help="Folder for the PNGs (default: plots/ in the model folder).")
@click.option("--groups", default=12, show_default=True, type=click.IntRange(min=2, max=40),
              help="SNLI premises on the t-SNE map, each with an entailed and a contradicting "
              "hypothesis.")
@data_dir_option
@device_option
@json_option
def plot(model, out, groups, data_dir, device, as_json):
    """Draw training curves and a t-SNE map (PNG).

    training_curves.png shows train/val loss, STS-B dev Spearman, learning rate and speed by
    epoch. tsne_snli.png places SNLI test premises with an entailed and a contradicting
    hypothesis each, coloured by premise: a good model keeps each premise near its entailed
    hypothesis. Needs the optional extra: pip install 'semsearch[plot]'.

    \b
    Examples:
      semsearch plot
      semsearch plot --model models/quick --out figures/
    """
    from semsearch import plot as run_plot

    report = run_plot(model, out, groups, data_dir, device, log=info)
    if as_json:
        echo_json(report.to_dict())
    else:
        for path in report.files:
            click.echo(str(path))
