"""The scale collection: MLQuestions' passages among up to a million other texts from the data
folder, so a benchmark can ask whether search still finds the relevant passage at that size
(issue 30; bench/bench_million.py).

Documents in this order, each text whitespace-normalised and an exact repeat of an earlier one
dropped, until the collection holds `size` documents:

1. the MLQuestions passages (`beir/mlquestions/corpus.jsonl`, title + " " + text), their ids;
2. every paragraph of >= 20 words of the Wikipedia articles (`wikipedia/articles.jsonl.gz`;
   a paragraph is a line of `text`), id `wiki-<article id>-p<n>`;
3. every line of `wikipedia/sentences.txt.gz`, id `sent-<line>`;
4. both questions of each line of `quora/quora_duplicate_pairs.tsv`, id `quora-<line>-<1|2>`;
5. the Flickr30k captions (`flickr30k/flickr30k_captions.token.gz`, the text after the tab),
   id `flickr-<image>#<k>`.

Written as JSONL (`_id`, `text`) through a temporary file renamed at the end, so a partial file
never stands in for the collection. MLQuestions dev's queries and judgments then score search at
that size: every judged passage is in the collection (it comes first).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from semsearch.data.files import read_lines
from semsearch.errors import DataError

MLQUESTIONS = "beir/mlquestions/corpus.jsonl"
WIKI_ARTICLES = "wikipedia/articles.jsonl.gz"
WIKI_SENTENCES = "wikipedia/sentences.txt.gz"
QUORA = "quora/quora_duplicate_pairs.tsv"
FLICKR30K = "flickr30k/flickr30k_captions.token.gz"
# the sources in collection order, as named in a report
SOURCES = ("mlquestions", "wiki-paragraphs", "wiki-sentences", "quora", "flickr30k")
SIZE = 1_000_000
# a Wikipedia paragraph shorter than this many words (headings, list stubs) is left out
MIN_PARAGRAPH_WORDS = 20


@dataclass
class CollectionReport:
    """What `write_collection` wrote: documents a source, and the exact repeats dropped."""

    path: Path
    documents: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    repeats_dropped: int = 0

    def to_dict(self) -> dict:
        return {"path": str(self.path), "documents": self.documents,
                "by_source": self.by_source, "repeats_dropped": self.repeats_dropped}


def normalise_space(text: str) -> str:
    """Runs of whitespace as one space, none at the ends.

    >>> normalise_space("  a\\tb\\n c  ")
    'a b c'
    """
    return " ".join(text.split())


def source_texts(data_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(source, id, raw text) of every candidate document, in collection order."""
    data_dir = Path(data_dir)
    for _, line in read_lines(_need(data_dir, MLQUESTIONS)):
        if line.strip():
            row = json.loads(line)
            text = " ".join(p for p in (row.get("title") or "", row.get("text") or "") if p)
            yield "mlquestions", str(row["_id"]), text
    for _, line in read_lines(_need(data_dir, WIKI_ARTICLES)):
        if line.strip():
            article = json.loads(line)
            for number, paragraph in enumerate(article.get("text", "").split("\n")):
                if len(paragraph.split()) >= MIN_PARAGRAPH_WORDS:
                    yield "wiki-paragraphs", f"wiki-{article['id']}-p{number}", paragraph
    for number, line in read_lines(_need(data_dir, WIKI_SENTENCES)):
        yield "wiki-sentences", f"sent-{number}", line
    for number, line in read_lines(_need(data_dir, QUORA)):
        for side, question in enumerate(line.split("\t")[:2], start=1):
            yield "quora", f"quora-{number}-{side}", question
    for _, line in read_lines(_need(data_dir, FLICKR30K)):
        name, tab, caption = line.partition("\t")
        if tab:
            yield "flickr30k", f"flickr-{name}", caption


def write_collection(data_dir: Path, out: Path, size: int = SIZE) -> CollectionReport:
    """Write the first `size` documents of the scale collection (see the module doc) to `out`
    as JSONL; fewer when the sources run out (the report says how many)."""
    if size < 1:
        raise DataError(f"a collection needs at least one document, not {size}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = CollectionReport(out, by_source={name: 0 for name in SOURCES})
    seen: set[bytes] = set()  # 8-byte digests of the texts kept: 1M of them in ~100 MB
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            for source, doc_id, raw in source_texts(data_dir):
                text = normalise_space(raw)
                if not text:
                    continue
                digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
                if digest in seen:
                    report.repeats_dropped += 1
                    continue
                seen.add(digest)
                handle.write(json.dumps({"_id": doc_id, "text": text}, ensure_ascii=False) + "\n")
                report.by_source[source] += 1
                report.documents += 1
                if report.documents >= size:
                    break
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)
    return report


def _need(data_dir: Path, name: str) -> Path:
    path = data_dir / name
    if not path.is_file():
        raise DataError(f"{path} not found; the scale collection reads the data folder "
                        "($SEMSEARCH_DATA; its README.md lists the files)")
    return path
