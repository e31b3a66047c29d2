import json

import pytest

from semsearch.data import MixtureConfig, build_mixture
from semsearch.data.passages import (
    Article,
    article_pairs,
    cut,
    parse_article,
    passage_pairs,
    split_sentences,
)
from semsearch.data.sources import PASSAGE_SOURCES, read_corpus_articles

LEAD = "Tea is an aromatic drink made from the leaves of an evergreen shrub."
HISTORY = ("Tea drinking began in southwest China during the Shang dynasty. It spread to Japan "
           "with Buddhist monks around the ninth century. Portuguese traders brought it to Europe "
           "much later in the sixteenth century.")
TEXT = f"# Tea\n{LEAD}\n## History\n{HISTORY}\nshort line\n"


def write_docs(path):
    row = {"id": "a", "title": "Tea", "text": f"{LEAD}\n{HISTORY}"}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")


def test_parse_article_reads_markdown_headings():
    article = parse_article("7", "", TEXT)
    assert article.title == "Tea"
    assert article.paragraphs == (LEAD, HISTORY, "short line")
    assert article.headings == ("", "History", "History")


def test_each_kind_on_one_article():
    article = parse_article("7", "", TEXT)
    pairs = {kind: list(article_pairs(article, kind, 0, "src")) for kind in
             ("title", "section", "ict", "next")}
    assert [(p.anchor, p.positive) for p in pairs["title"]] == [("Tea", LEAD)]
    # the 2-word line is too short to be a passage
    assert [(p.anchor, p.positive) for p in pairs["section"]] == [("Tea: History", HISTORY)]
    [ict] = pairs["ict"]
    sentences = split_sentences(HISTORY)
    assert ict.anchor in sentences and ict.anchor not in ict.positive
    assert ict.positive == " ".join(s for s in sentences if s != ict.anchor)
    assert [(p.anchor, p.positive) for p in pairs["next"]] == [(LEAD, HISTORY)]
    # one article, one group: its pairs never meet as in-batch negatives
    assert {p.group for kind in pairs.values() for p in kind} == {"src:7"}
    assert next(article_pairs(article, "ict", 0, "wikiict", "wikipedia")).group == "wikipedia:7"


def test_pairs_are_deterministic_and_cut():
    articles = [parse_article(str(i), f"T{i}", HISTORY) for i in range(20)]
    first = passage_pairs(articles, "ict", 60, "src")
    assert first == passage_pairs(articles, "ict", 60, "src")
    assert len({p.anchor for p in first}) > 1  # the chosen sentence varies by article
    assert all(len(p.positive) <= 60 for p in first)


def test_cut_and_sentences():
    assert cut("alpha beta gamma", 10) == "alpha beta"
    assert cut("alpha", 0) == "alpha"
    assert split_sentences("One sentence here. Another one! A third?") == [
        "One sentence here.", "Another one!", "A third?"]


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        list(article_pairs(Article("1", "t", ("a b c d e f",)), "bogus", 0, "s"))


def test_corpus_file_in_any_index_format(tmp_path):
    write_docs(tmp_path / "docs.jsonl")
    (tmp_path / "notes.txt").write_text(HISTORY + "\n", encoding="utf-8")
    [article] = read_corpus_articles(tmp_path / "docs.jsonl")
    assert article.title == "Tea" and article.paragraphs == (LEAD, HISTORY)
    [note] = read_corpus_articles(tmp_path / "notes.txt")
    assert note.id == "notes:1" and note.title == ""


def test_corpus_source_in_a_mixture(tmp_path, data_dir):
    write_docs(tmp_path / "docs.jsonl")
    config = MixtureConfig(sources=(f"corpus:{tmp_path / 'docs.jsonl'}",), max_pairs=0)
    pairs, report = build_mixture(config, data_dir)
    assert {p.source for p in pairs} == {"corpus"}
    assert ("Tea", LEAD) in {(p.anchor, p.positive) for p in pairs}
    # title, section (title -> 2nd paragraph), next, and each of the 3 history sentences -> the
    # other two (ICT, every sentence)
    assert report[f"corpus:{tmp_path / 'docs.jsonl'}"]["kept"] == len(pairs) == 6


@pytest.mark.slow
def test_wikipedia_passage_sources_on_real_articles(data_dir):
    names = tuple(f"{name}@300" for name in PASSAGE_SOURCES)
    pairs, report = build_mixture(MixtureConfig(sources=names, max_pairs=0), data_dir)
    again, _ = build_mixture(MixtureConfig(sources=names, max_pairs=0), data_dir)
    assert pairs == again
    for name in PASSAGE_SOURCES:
        assert report[f"{name}:all"]["kept"] == 300
        assert report[f"{name}:all"]["loaded"] >= 6000  # one title pair per article and more
    # every kind groups by the article, so one article's pairs never meet in a batch
    assert all(p.group.startswith("wikipedia:") for p in pairs)
    titles = [p for p in pairs if p.source == "wikititle"]
    assert all(len(p.anchor) < 100 and len(p.positive) <= 600 for p in titles)


def test_bm25_negatives_respect_group_and_margin():
    from semsearch.data.negatives import mine_bm25_negatives
    from semsearch.data.records import TrainingPair

    pairs = [
        TrainingPair("tea history china", "Tea history began in China long ago.", group="a"),
        TrainingPair("tea leaves", "Tea history in China and its leaves.", group="a"),
        TrainingPair("coffee history", "Coffee history began in Ethiopia.", group="b"),
        TrainingPair("ocean waves", "Waves roll over the ocean.", group="c"),
    ]
    mined, count = mine_bm25_negatives(pairs, margin=0.05)
    # never the pair's own positive, nor a positive of the same group (a likely false negative):
    # the tea pair's best other candidate is the coffee passage
    assert mined[0].negative == "Coffee history began in Ethiopia."
    assert mined[1].negative is None  # its only lexical match is its own group's passage
    assert mined[3].negative is None  # nothing else shares a term with "ocean waves"
    assert count == sum(p.negative is not None for p in mined) >= 2
    assert mined == mine_bm25_negatives(pairs, margin=0.05)[0]  # deterministic
    # a margin of 0.99 keeps only candidates scoring under 1% of the positive: fewer or none
    assert mine_bm25_negatives(pairs, margin=0.99)[1] < count
