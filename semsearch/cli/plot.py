"""`semsearch plot`: PNGs of a model's training curves and a t-SNE map of its embeddings."""

from __future__ import annotations

from pathlib import Path

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
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="Folder for the PNGs (default: plots/ in the model folder).")
@click.option("--groups", default=12, show_default=True, type=click.IntRange(min=2, max=40),
              help="SNLI premises on the t-SNE map, each with an entailed and a contradicting "
              "hypothesis.")
@data_dir_option
@device_option
@json_option
def plot(model, out_dir, groups, data_dir, device, as_json):
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
    from semsearch.eval import plots

    plots.require_plotting()  # before the heavy imports, so a missing extra is said at once

    from semsearch.api import load
    from semsearch.data import load_snli
    from semsearch.encoder import resolve_model
    from semsearch.errors import DataError

    folder = resolve_model(model)
    out = Path(out_dir) if out_dir else folder / "plots"
    written = []

    history_path = folder / "history.json"
    if history_path.is_file():
        written.append(plots.plot_history(
            plots.read_history(history_path), out / "training_curves.png", title=folder.name))
    else:
        info(f"no history.json in {folder}; skipping the training curves")

    texts, group_ids, roles = plots.snli_groups(load_snli("test", data_dir), groups)
    if len(texts) < 6:
        raise DataError("SNLI test has too few premises with both an entailed and a contradicting "
                        "hypothesis for a map; check the data folder (--data-dir)")
    encoder = load(folder, device=None if device == "auto" else device)
    info(f"t-SNE of {len(texts)} SNLI sentences")
    points = plots.tsne_2d(encoder.encode(texts))
    written.append(plots.plot_map(points, group_ids, roles, out / "tsne_snli.png",
                                  title=f"{folder.name}: SNLI premises and their hypotheses"))

    if as_json:
        echo_json({"files": [str(path) for path in written]})
    else:
        for path in written:
            click.echo(str(path))
