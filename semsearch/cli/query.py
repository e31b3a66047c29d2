"""`semsearch query TEXT`: the nearest documents of an index, best first."""

from __future__ import annotations

import shutil

import click

from semsearch.cli.common import device_option, echo_json, info, json_option
from semsearch.cli.terminal import printable
from semsearch.limits import MAX_EF_SEARCH, MAX_K, MAX_NPROBE, MAX_RESCORE_DEPTH

EXAMPLES = """\b
Examples:
  semsearch query "Machine learning and AI" -k 2
  semsearch query "whales and coral reefs" --index indexes/docs --json
  semsearch query --queries questions.txt -k 3
  echo "healthy breakfast ideas" | semsearch query --queries - --json
  semsearch query "football" --nprobe 64      # IVF: search more lists
  semsearch query "transformer attention" --mode lexical     # BM25 alone
  semsearch query "ocean tides" --mode dense                  # vectors alone
  semsearch query "ocean tides" --fusion rrf                  # reciprocal-rank fusion
  semsearch query "tax law" --where lang=en --where year=2015 # metadata filters
  semsearch query "ocean tides" --rescore models/minilm       # a strong model re-scores the top
  semsearch query "ocean tides" --mode lexical --rescore models/minilm --rescore-depth 30
"""


@click.command(epilog=EXAMPLES)
@click.argument("text", required=False)
@click.option(
    "-k",
    "k",
    default=5,
    show_default=True,
    type=click.IntRange(1, MAX_K),
    help="Documents to return a query (fewer when the index holds fewer).",
)
@click.option(
    "--index",
    "index_dir",
    default=None,
    metavar="DIR",
    help="Index folder, or a name under indexes/ (default: the most recently written, "
    "recorded in indexes/.semsearch-latest).",
)
@click.option(
    "--model",
    "model",
    default=None,
    metavar="DIR",
    help="Model folder (default: the model the index was built with; it must have the "
    "same weights).",
)
@click.option(
    "--queries",
    "queries_file",
    type=click.File("r", encoding="utf-8"),
    default=None,
    metavar="FILE",
    help="Run every line of FILE as a query, in one batch ('-' reads "
    "stdin; blank lines are skipped).",
)
@click.option(
    "--nprobe",
    default=None,
    type=click.IntRange(1, MAX_NPROBE),
    help="IVF lists to search (more: slower, better recall; default: from the index).",
)
@click.option(
    "--ef",
    "ef",
    default=None,
    type=click.IntRange(1, MAX_EF_SEARCH),
    help="HNSW candidate list size (more: slower, better recall; default: from the index).",
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "lexical"]),
    default=None,
    help="hybrid: vectors and BM25 fused (the default where the index has a lexical part); "
    "dense: vectors alone; lexical: BM25 alone (no model needed).",
)
@click.option(
    "--fusion",
    type=click.Choice(["weighted", "rrf"]),
    default=None,
    help="How hybrid fuses: weighted (min-max normalised scores) or rrf (reciprocal ranks) "
    "(default: the index's, calibrated for its model by `semsearch evaluate`).",
)
@click.option(
    "--dense-weight",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Weighted fusion's share of the dense score, 0-1 (default: the index's).",
)
@click.option(
    "--depth",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Documents each side hands to fusion (default: the index's, 100).",
)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Only documents whose metadata FIELD equals VALUE (repeatable: all must hold); the "
    "fields are the JSONL/CSV columns other than id and text.",
)
@click.option(
    "--rescore",
    "rescore_model",
    default=None,
    metavar="MODEL",
    help="Second phase: MODEL re-encodes the query and the first stage's top documents and its "
    "cosine, fused with BM25, re-ranks them (default: the model the index records, if any).",
)
@click.option(
    "--rescore-depth",
    type=click.IntRange(1, MAX_RESCORE_DEPTH),
    default=None,
    metavar="N",
    help="First-stage documents the second phase re-scores (default: calibrated for the pair "
    "by `semsearch evaluate --rescore`, else 50).",
)
@click.option(
    "--rescore-weight",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="The rescoring cosine's share against BM25, 0-1 (default: calibrated, else 0.8).",
)
@click.option("--no-rescore", is_flag=True,
              help="First stage only, even where the index records a rescoring model.")
@device_option
@json_option
def query(text, k, index_dir, model, queries_file, nprobe, ef, mode, fusion, dense_weight,
          depth, where, rescore_model, rescore_depth, rescore_weight, no_rescore, device,
          as_json):
    """Search an index for TEXT.

    Prints rank, score, document id and text, trimmed to the terminal; a document split into
    chunks shows its best chunk as id#chunk. The score is the cosine in dense mode, BM25 in
    lexical mode, and the fused score in hybrid mode. With --json, one JSON object a line:
    query, rank, score, id, chunk, chunks, text, metadata, and dense_score, dense_rank,
    lexical_score, lexical_rank (null where the document was not among that side's candidates),
    and with a second phase (--rescore) rescore_score, rescore_rank and first_rank.

    With --rescore MODEL (or a rescoring model the index records: `semsearch index --rescore`)
    the search runs in two stages: the index finds candidates as above, then MODEL re-scores
    the top --rescore-depth of them (a fast model, or BM25 alone with --mode lexical, finds;
    a strong one ranks).
    """
    from semsearch import query as run_query
    from semsearch.errors import DataError

    if queries_file is not None and text is not None:
        raise click.UsageError("give TEXT or --queries FILE, not both")
    if queries_file is not None:
        try:
            queries = [line.strip() for line in queries_file if line.strip()]
        except UnicodeDecodeError as error:
            raise DataError(
                f"{queries_file.name} is not UTF-8 text (byte {error.start + 1}); give a text "
                "file with one query a line"
            ) from None
        if not queries:
            raise DataError(f"no queries in {queries_file.name}; write one query a line")
    elif text is None:
        raise click.UsageError('give a query, e.g. semsearch query "ocean tides" -k 5')
    else:
        queries = [text]
    result = run_query(queries, index_dir, k, mode, fusion, dense_weight,
                       [parse_where(item) for item in where], model, depth, nprobe, ef, device,
                       rescore_model, rescore_depth, rescore_weight, no_rescore, keep=False,
                       log=info)
    if as_json:
        for line in result.json_lines():
            echo_json(line)
        return
    for line in result.notes:  # the fusion and second phase a search used (--json: with hits)
        info(line)
    if k > result.documents:
        info(f"the index holds {result.documents} documents; showing all of them")
    width = shutil.get_terminal_size((100, 20)).columns
    for number, (query_text, hits) in enumerate(zip(queries, result.hits, strict=True)):
        if len(queries) > 1:
            click.echo(("\n" if number else "") + f"query: {printable(query_text)}")
        for hit in hits:
            click.echo(format_hit(hit, width))


def parse_where(item: str) -> tuple[str, str]:
    """FIELD=VALUE as (field, value); the value may itself hold '='.

    >>> parse_where("lang=en")
    ('lang', 'en')
    """
    name, equals, value = item.partition("=")
    if not equals or not name.strip():
        raise click.BadParameter(f"{item!r} is not FIELD=VALUE, e.g. --where lang=en",
                                 param_hint="--where")
    return name.strip(), value


def format_hit(hit, width: int = 100) -> str:
    """One line: rank, score, id (#chunk for chunked documents), text trimmed to `width`."""
    label = printable(hit.id if hit.chunks <= 1 else f"{hit.id}#{hit.chunk}")
    head = f"{hit.rank:>3}  {hit.score:6.3f}  {label}  "
    room = max(20, width - len(head))
    text = printable(" ".join(hit.text.split()))
    return head + (text if len(text) <= room else text[: room - 1] + "…")
