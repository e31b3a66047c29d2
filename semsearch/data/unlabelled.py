"""Text without labels, for distillation: the student learns to reproduce its teacher's vectors
of these texts, so any text will do and no pair or query set is needed.

- `wiki-sentences@N`: N of the 704K Wikipedia sentences (`wikipedia/sentences.txt.gz`), drawn
  evenly through the file (a seeded shuffle would read it all the same);
- `wiki-passages@N`: N paragraphs of the Wikipedia articles (`wikipedia/articles.jsonl.gz`),
  the kind of text a search index holds;
- `questions@N`: N of the Quora questions (`quora/`; both sides of its duplicate pairs), the
  kind of text a search box receives;
- `captions@N`: N Flickr30k captions (`flickr30k/`), short descriptions of scenes;
- `paraphrases@N`: N sentences of MRPC's paraphrase pairs (`mrpc/`), news sentences;
  (these three never hold an STS-B dev or test sentence: about 11% of those occur among the
  captions, and STS-B is what a model's similarity is scored on)
- a `--text FILE`: one text a line (UTF-8; gzipped or not);
- a `--corpus FILE`: the user's own documents in any format `semsearch index` reads, cut into
  the windows `index` would cut them into (never a query set), so the student learns the
  geometry of the collection it will search.

Texts are deduplicated (first occurrence kept) and returned in a fixed order, so the teacher's
cached vectors are found again by the same request.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from semsearch.data.files import open_binary
from semsearch.errors import DataError

WIKI_SENTENCES = "wikipedia/sentences.txt.gz"
WIKI_ARTICLES = "wikipedia/articles.jsonl.gz"
# a line longer than this many characters is cut (a teacher window of 256 tokens reads ~1,500)
MAX_CHARS = 4000
# the default unlabelled mixture of `distill`: Wikipedia beside questions, captions and
# paraphrases, which lifted the static student on both dev collections and STS-B dev (0.334 /
# 0.452 / 84.20 against Wikipedia alone's 0.327 / 0.449 / 82.81; docs/results.md, Training)
DEFAULT_TEXT = ("wiki-sentences@80000", "wiki-passages@40000", "questions@20000",
                "captions@20000", "paraphrases@8000")
# the pair sources whose sentences serve as unlabelled text (semsearch.data.sources' names)
PAIR_TEXT = {"questions": "quora", "captions": "flickr30k", "paraphrases": "mrpc"}
SOURCES = ("wiki-sentences", "wiki-passages", *PAIR_TEXT)


def parse_spec(spec: str) -> tuple[str, int]:
    """'wiki-sentences@80000' -> ('wiki-sentences', 80000)."""
    name, _, count = spec.partition("@")
    if name not in SOURCES or not count.isdigit() or not int(count):
        raise DataError(f"unknown text source {spec!r}; use " + ", ".join(
            f"{source}@N" for source in SOURCES) + " (N > 0), or --text FILE")
    return name, int(count)


def evenly(items: Sequence[str], count: int) -> list[str]:
    """`count` items spread evenly through `items` (all of them when there are fewer).

    >>> evenly(list("abcdefgh"), 3)
    ['a', 'c', 'f']
    """
    if count >= len(items):
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def wiki_texts(spec: str, data_dir: Path) -> list[str]:
    name, count = parse_spec(spec)
    if name in PAIR_TEXT:
        return pair_texts(PAIR_TEXT[name], count, data_dir)
    if name == "wiki-sentences":
        path = data_dir / WIKI_SENTENCES
        if not path.is_file():
            raise DataError(f"{path} not found; point SEMSEARCH_DATA at the data folder")
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines = [line.strip() for line in handle if line.strip()]
        return evenly(lines, count)
    path = data_dir / WIKI_ARTICLES
    if not path.is_file():
        raise DataError(f"{path} not found; point SEMSEARCH_DATA at the data folder")
    paragraphs = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            paragraphs.extend(p.strip() for p in str(record.get("text", "")).split("\n")[1:]
                              if len(p.split()) >= 8)  # line 0 is the title; skip stubs
    return [p[:MAX_CHARS] for p in evenly(paragraphs, count)]


def pair_texts(source: str, count: int, data_dir: Path) -> list[str]:
    """`count` distinct sentences of a pair source's pairs (both sides), drawn evenly, none of
    them an STS-B dev or test sentence (after normalising case, spaces and punctuation)."""
    from semsearch.data import sources
    from semsearch.data.mixture import _evaluation_sentences, normalise

    blocked = _evaluation_sentences(data_dir)
    pairs = sources.load_training_pairs(source, tuple(sources.LAYOUT[source]), data_dir, 0.0, 5)
    texts = dict.fromkeys(
        " ".join(text.split())[:MAX_CHARS] for pair in pairs
        for text in (pair.anchor, pair.positive) if text and text.strip()
        and normalise(text) not in blocked)
    return evenly(list(texts), count)


def text_file(path: str | Path) -> list[str]:
    """The lines of a text file (gzipped or not), one text each; a clear DataError for a file
    that is missing, empty, binary or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--text {path}: not found; give a text file with one text a line")
    with open_binary(path) as handle:
        raw = handle.read()
    if b"\0" in raw[:1 << 20]:
        raise DataError(f"--text {path}: a binary file (NUL bytes); give a UTF-8 text file "
                        "with one text a line")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"--text {path}: not UTF-8 (byte {error.start}); convert it, e.g. "
                        f"`iconv -t utf-8 {path}`") from None
    lines = [line.strip()[:MAX_CHARS] for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"--text {path}: holds no text; give a file with one text a line")
    return lines


def corpus_chunks(path: str | Path, count_tokens: Callable[[list[str]], list[int]],
                  window: int) -> list[str]:
    """The documents of a corpus file cut into `window`-token chunks, as `index` cuts them."""
    from semsearch.corpora import CorpusReader
    from semsearch.corpora.chunking import ChunkConfig, chunk_documents

    texts = [doc.text for doc in CorpusReader(Path(path))]
    if not texts:
        raise DataError(f"--corpus {path}: holds no documents; give a file that `semsearch "
                        "index` reads (text, JSONL, CSV or TSV)")
    chunks = chunk_documents(texts, count_tokens, ChunkConfig(max_tokens=window))
    return [c for doc in chunks for c in doc]


def gather(specs: Sequence[str], text_files: Sequence[str | Path], corpora: Sequence[str | Path],
           data_dir: Path | None, count_tokens: Callable[[list[str]], list[int]],
           window: int) -> tuple[list[str], dict[str, int]]:
    """(deduplicated texts, count per source) of every source asked for."""
    texts: dict[str, None] = {}
    counts: dict[str, int] = {}
    for spec in specs:
        if data_dir is None:
            raise DataError(f"{spec} needs the data folder; set SEMSEARCH_DATA or --data-dir")
        found = wiki_texts(spec, data_dir)
        counts[spec] = len(found)
        texts.update(dict.fromkeys(found))
    for path in text_files:
        found = text_file(path)
        counts[f"text:{path}"] = len(found)
        texts.update(dict.fromkeys(found))
    for path in corpora:
        found = corpus_chunks(path, count_tokens, window)
        counts[f"corpus:{path}"] = len(found)
        texts.update(dict.fromkeys(found))
    if not texts:
        raise DataError("no text to distil on; give --text FILE, --corpus FILE or keep the "
                        "default Wikipedia text (SEMSEARCH_DATA)")
    return list(texts), counts
