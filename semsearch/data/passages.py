"""Query -> passage training pairs mined from unlabelled text: no human labels, only structure.

An article is a title and its paragraphs (with the section heading of each, where the text has
headings). Four pair kinds, each a mixture source (see `sources.PASSAGE_SOURCES`):

- `title`: the title -> its lead paragraph (a topic query -> the passage that defines it);
- `section`: title + section heading (or the title alone when the text has no headings, as the
  WikiExtractor dump here has none) -> a later paragraph of that section;
- `ict`: the inverse cloze task (Lee et al. 2019; Chang et al. 2020): one sentence of a
  paragraph -> the rest of that paragraph without it (a short query -> the passage around it);
- `next`: a paragraph -> the paragraph after it in the same article.

The document side is cut to `passage_chars` characters at a word boundary (the encoder's token
window cuts again). Every pair of one article, of any kind, shares a group key, so two pairs of
the same article never meet in a batch as each other's in-batch negatives, and a mined negative
never comes from the pair's own article. Choices (which sentence of a paragraph) come from a
hash of the article and paragraph, so the pairs are the same on every run and every machine.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from semsearch.data.records import TrainingPair

PAIR_KINDS = ("title", "section", "ict", "next")
# a sentence ends at . ! or ? followed by space and an upper-case letter, digit or quote
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")  # a Markdown ATX heading
_MIN_WORDS = 5  # shorter paragraphs and sentences (captions, list items) make no useful pair


@dataclass(frozen=True)
class Article:
    """A titled text cut into paragraphs; `headings[i]` is paragraph i's section ("" = none)."""

    id: str
    title: str
    paragraphs: tuple[str, ...]
    headings: tuple[str, ...] = ()


def parse_article(doc_id: str, title: str, text: str) -> Article:
    """Split `text` into paragraphs (one per non-empty line), reading Markdown headings
    (`## Methods`) as the section of the paragraphs below them; without a title the first
    heading, if any, is the title.

    >>> a = parse_article("1", "", "# Tea\\nTea is a drink.\\n## History\\nIt came from China.")
    >>> a.title, a.paragraphs, a.headings
    ('Tea', ('Tea is a drink.', 'It came from China.'), ('', 'History'))
    """
    paragraphs, headings, section = [], [], ""
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        match = _HEADING.match(line)
        if match:
            if not title and len(match.group(1)) == 1 and not paragraphs:
                title = match.group(2)
            else:
                section = match.group(2)
            continue
        paragraphs.append(line)
        headings.append(section)
    return Article(doc_id, title.strip(), tuple(paragraphs), tuple(headings))


def split_sentences(paragraph: str) -> list[str]:
    """The sentences of a paragraph by a punctuation rule (an abbreviation like "Dr." splits too,
    and the ICT pair then drops a short fragment: `_MIN_WORDS` skips most of those).

    >>> split_sentences('It rains. "Why?" she asked. Then 3 left.')
    ['It rains.', '"Why?" she asked.', 'Then 3 left.']
    """
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def cut(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters at a word boundary (0 = no cut).

    >>> cut("one two three", 9)
    'one two'
    """
    if not max_chars or len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]
    space = head.rfind(" ")
    return head[:space].rstrip() if space > 0 else text[:max_chars]


def article_pairs(article: Article, kind: str, passage_chars: int, source: str,
                  origin: str = "", every_sentence: bool = False) -> Iterator[TrainingPair]:
    """The pairs of one `kind` (see PAIR_KINDS) that `article` gives; their group is the article
    (`origin:id`), the same for every kind, so pairs of one article never meet in a batch and a
    mined negative never comes from the article itself. `every_sentence`: ICT takes each
    sentence of a paragraph of 2+ sentences as a query, not one of 3+ (for a small corpus)."""
    group = f"{origin or source}:{article.id}"
    headings = article.headings or ("",) * len(article.paragraphs)
    kept = [(p, h) for p, h in zip(article.paragraphs, headings, strict=True)
            if _words(p) >= _MIN_WORDS]
    paragraphs = [p for p, _ in kept]

    def pair(query: str, passage: str) -> TrainingPair:
        return TrainingPair(query, cut(passage, passage_chars), source=source, group=group)

    if kind == "title":
        if article.title and paragraphs:
            yield pair(article.title, paragraphs[0])
    elif kind == "section":
        for paragraph, heading in kept[1:]:
            query = f"{article.title}: {heading}" if heading and article.title else (
                heading or article.title)
            if query:
                yield pair(query, paragraph)
    elif kind == "ict":
        for index, paragraph in enumerate(paragraphs):
            sentences = split_sentences(paragraph)
            if len(sentences) < (2 if every_sentence else 3):  # the rest must stay a passage
                continue
            choices = (range(len(sentences)) if every_sentence
                       else [_choice(f"{article.id}/{index}", len(sentences))])
            for chosen in choices:
                if _words(sentences[chosen]) >= _MIN_WORDS:
                    yield pair(sentences[chosen],
                               " ".join(sentences[:chosen] + sentences[chosen + 1:]))
    elif kind == "next":
        for first, second in zip(paragraphs, paragraphs[1:], strict=False):
            yield TrainingPair(cut(first, passage_chars), cut(second, passage_chars),
                               source=source, group=group)
    else:
        raise ValueError(f"unknown pair kind {kind!r}; choose from {', '.join(PAIR_KINDS)}")


def passage_pairs(articles: Iterable[Article], kind: str, passage_chars: int,
                  source: str, origin: str = "", every_sentence: bool = False) -> list[TrainingPair]:
    """The pairs of one kind from every article, in article order (see article_pairs)."""
    return [p for article in articles
            for p in article_pairs(article, kind, passage_chars, source, origin, every_sentence)]


def _choice(key: str, count: int) -> int:
    """A stable pseudo-random index in [0, count) from `key` (crc32: the same everywhere)."""
    return zlib.crc32(key.encode("utf-8")) % count


def _words(text: str) -> int:
    return len(text.split())
