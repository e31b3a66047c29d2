"""`semsearch index --engine local|ray` and the Ray flags that go with it (issue 18).

Kept apart from cli/index.py so that command only gains a decorator and a branch.
"""

from __future__ import annotations

import click

ENGINE_EXAMPLES = """\
  semsearch index wiki.txt --engine ray --concurrency 2
  semsearch index wiki.txt --engine ray --address ray://head-node:10001 --num-gpus 1
"""


def engine_options(command):
    """Add --engine, --address, --concurrency, --num-gpus and --shard-size to a command (passed
    on to `semsearch.index` as they are; it checks they go together)."""

    options = [
        click.option(
            "--engine",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: embed and build in this process. ray: embed the corpus in shards on a Ray "
            "cluster and build the index from the shards (needs `pip install "
            "'semsearch[distributed]'`); rerunning after a crash embeds only the missing shards.",
        ),
        click.option(
            "--address",
            default=None,
            metavar="ADDR",
            help="--engine ray: the cluster, auto, HOST:6379 or ray://HOST:10001 (default: start a "
            "local Ray on this machine).",
        ),
        click.option(
            "--concurrency",
            default=2,
            show_default=True,
            type=click.IntRange(min=1),
            help="--engine ray: encoder actors (each loads the model once).",
        ),
        click.option(
            "--num-gpus",
            default=0.0,
            show_default=True,
            type=click.FloatRange(min=0),
            help="--engine ray: GPUs each encoder actor uses (0: CPU).",
        ),
        click.option(
            "--shard-size",
            default=10_000,
            show_default=True,
            type=click.IntRange(min=1),
            metavar="DOCS",
            help="--engine ray: documents a shard (the unit that is embedded, retried and kept).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
