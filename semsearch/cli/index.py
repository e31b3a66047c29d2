"""`semsearch index CORPUS`: embed a corpus file and build (or extend) a FAISS index folder."""

from __future__ import annotations

import click

from semsearch.cli.common import (
    FiniteFloatRange,
    backend_option,
    device_option,
    echo_json,
    info,
    is_tty,
    json_option,
    precision_option,
    wait_option,
)
from semsearch.cli.engine import ENGINE_EXAMPLES, engine_options
from semsearch.indexes import MAX_CHUNKS

EXAMPLES = """\b
Examples:
  semsearch index corpora/docs.txt
  semsearch index corpora/docs.txt --type hnsw --out indexes/docs-hnsw
  semsearch index articles.jsonl.gz --text-field text --id-field id --max-memory 2G
  semsearch index more.txt --append --out indexes/docs
  semsearch index reviews.csv --text-field review --errors skip --json
  semsearch index --add-lexical --out indexes/old   # BM25 for an index built before it had one
  semsearch index book.txt --max-chunks 5000 --wait 60
  semsearch index corpora/docs.txt --backend onnx --precision int8   # fastest on a CPU
  semsearch index corpora/docs.txt --model models/static --rescore models/minilm  # two stages
  semsearch index --rescore models/minilm --out indexes/docs   # record a second phase only
  semsearch index --rescore none --out indexes/docs            # ... or clear it
  semsearch index articles.jsonl --lexical-only     # BM25 alone: no model, no vectors
  semsearch index big.jsonl --out indexes/big --resume   # continue an interrupted build
""" + ENGINE_EXAMPLES


@click.command(epilog=EXAMPLES)
@click.argument("corpus", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--model",
    "model",
    default=None,
    metavar="DIR",
    help="Model folder (default: the newest folder under models/; with --append, the model the "
    "index was built with).",
)
@click.option(
    "--type",
    "type_",
    default="auto",
    show_default=True,
    metavar="TYPE",
    help="flat (exact), hnsw, ivf, ivfpq, auto, or any FAISS factory string such as "
    "'IVF1024,PQ32'. auto: exact search up to 50,000 vectors, else fast-scan IVF-PQ codes in "
    "about sqrt(n) lists, re-ranked exactly against the float32 vectors kept on disk.",
)
@click.option(
    "--max-memory",
    default=None,
    metavar="SIZE",
    help="RAM the index may use, e.g. 2G or 500MB (auto and ivfpq; default: half the machine's).",
)
@click.option(
    "--target-recall",
    default=0.95,
    show_default=True,
    type=FiniteFloatRange(0.0, 1.0),
    help="Tune an approximate index's nprobe / efSearch to the cheapest value whose recall@10 "
    "on short runs of words cut from the corpus reaches this (0: keep the recipe's default).",
)
@click.option(
    "--out",
    default=None,
    metavar="DIR",
    help="Index folder to write (default: indexes/<corpus name>, under $SEMSEARCH_INDEXES if set).",
)
@click.option(
    "--append",
    is_flag=True,
    help="Add the corpus to an existing index, skipping documents whose text is already in it.",
)
@click.option(
    "--batch-size",
    default=64,
    show_default=True,
    type=click.IntRange(1, 65_536),
    help="Texts encoded per batch.",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["txt", "jsonl", "csv", "tsv"]),
    default=None,
    help="Corpus format (default: from the file name; .gz is read "
    "through; anything unknown is one document a line).",
)
@click.option(
    "--text-field",
    default="text",
    show_default=True,
    metavar="NAME",
    help="JSONL field or CSV/TSV column holding the text.",
)
@click.option(
    "--id-field",
    default=None,
    metavar="NAME",
    help="JSONL field or CSV/TSV column holding the document id (default: 'id' when "
    "present, else <file name>:<line number>).",
)
@click.option(
    "--errors",
    "errors",
    type=click.Choice(["strict", "skip", "replace"]),
    default="strict",
    show_default=True,
    help="A bad line (bytes that are not UTF-8, malformed JSON, a ragged or unclosed CSV "
    "record, a null or non-text text field, a repeated id): stop and name it, skip it and "
    "report it, or (for bytes) replace them with U+FFFD.",
)
@click.option(
    "--add-lexical",
    is_flag=True,
    help="Give the --out index, built before semsearch had keyword search, its BM25 part from "
    "the chunks it stores (no corpus, no re-embedding).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue a build of the same CORPUS into the same --out, with the same model and "
    "settings, that was interrupted (Ctrl-C, kill, a full disk): what it finished is kept and "
    "not encoded again. Without one to continue, build from the start.",
)
@click.option(
    "--lexical-only",
    is_flag=True,
    help="Index for keyword (BM25) search alone: no model is loaded and no vectors are made; "
    "`query` searches it in --mode lexical (--append, remove, check and serve work on it).",
)
@click.option(
    "--max-chunks",
    default=MAX_CHUNKS,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Chunks kept of one document (a window of the model's tokens each); the rest of a "
    "longer document is not indexed, and every cut is reported.",
)
@click.option(
    "--rescore",
    "rescore",
    default=None,
    metavar="MODEL",
    help="Record MODEL as the index's second phase: `query` and `serve` re-score the first "
    "stage's top documents with it unless told --no-rescore ('none' clears it; with --out and "
    "no CORPUS, only the record of an existing index changes).",
)
@wait_option
@device_option
@precision_option
@backend_option
@json_option
@engine_options
def index(
    corpus,
    model,
    type_,
    max_memory,
    target_recall,
    out,
    append,
    batch_size,
    format_,
    text_field,
    id_field,
    errors,
    add_lexical,
    resume,
    lexical_only,
    max_chunks,
    rescore,
    wait,
    device,
    precision,
    backend,
    as_json,
    engine,
    address,
    concurrency,
    num_gpus,
    shard_size,
):
    """Embed CORPUS and build a search index.

    CORPUS is a text file with one document a line (blank lines skipped), a JSONL file, or a
    CSV/TSV file with a header; each may be gzipped. Documents longer than the model's window
    are cut into overlapping chunks. The index folder holds index.faiss, documents.sqlite and
    manifest.json (model fingerprint, index recipe, corpus hash); it is written to a temporary
    folder and renamed, so an interrupted run leaves the previous index as it was.
    `semsearch query` uses the most recently written index (recorded in indexes/.semsearch-latest) unless
    given --index.
    """
    from semsearch import index as run_index
    from semsearch.cli.terminal import printable

    report = run_index(corpus, model, type_, max_memory, target_recall, out, append, batch_size,
                       format_, text_field, id_field, errors, add_lexical, max_chunks, rescore,
                       wait, device, precision, backend, engine, address, concurrency, num_gpus,
                       shard_size, resume=resume, lexical_only=lexical_only, log=info,
                       progress=is_tty() and not as_json)
    if corpus is None:  # --add-lexical, or --rescore recorded on an existing index
        if as_json:
            echo_json(report.to_dict())
        return
    folder = report.folder
    for line, reason in report.lines_skipped[:5]:
        info(f"skipped line {line}: {printable(reason)}")
    if len(report.lines_skipped) > 5:
        info(f"... {len(report.lines_skipped) - 5} more lines skipped")
    for line, reason in report.documents_cut[:5]:
        info(f"line {line}: {printable(reason)}; the rest of it is not searchable")
    if len(report.documents_cut) > 5:
        info(f"... {len(report.documents_cut) - 5} more documents cut (raise --max-chunks)")
    if report.stale_removed:
        info(f"removed {report.stale_removed} temporary folders left by interrupted runs")
    if as_json:
        echo_json(report.to_dict())
        return
    recipe = report.recipe
    if append and not report.chunks_added:
        info(f"nothing new: all {report.duplicates_skipped} documents are already in {folder}")
        return
    duplicates = f", {report.duplicates_skipped} duplicates skipped" if append else ""
    made = "no vectors" if report.lexical_only else f"{report.chunks_added} vectors"
    info(
        f"{'added' if append else 'indexed'} {report.documents_added} documents "
        f"({made}{duplicates}) in {report.seconds:.1f}s"
    )
    if append:
        info(f"index: {recipe['factory']} (as built; rebuild to re-size it for the new total)")
        if report.recall_change:
            setting, old, new, before, after = report.recall_change
            target = recipe.get("target_recall")
            if new != old:
                info(f"recall@10 on a sample fell to {before:.3f} (target {target}): {setting} "
                     f"{old} -> {new} gives {after:.3f}"
                     + ("" if after >= (target or 0) else "; rebuild the index to restore it"))
            else:
                info(f"recall@10 on a sample: {before:.3f} (target {target}), {setting} {old}")
    elif report.lexical_only:
        info("index: BM25 alone (no model, no vectors; query it with --mode lexical)")
    else:
        info(f"index: {recipe['factory']}  ({recipe['reason']})")
    info(f"wrote {folder} ({report.documents_total} documents, {report.vectors_total} vectors)")
    info(f'try: semsearch query "your question" -k 5 --index {folder}')
