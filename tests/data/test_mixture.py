import pytest

from semsearch.data import MixtureConfig, build_mixture, load_stsb, normalise
from semsearch.data.mixture import expand_sources, parse_source
from semsearch.errors import ConfigError


def test_parse_source_specs():
    assert parse_source("snli:dev+test@500").splits == ("dev", "test")
    assert parse_source("snli:dev+test@500").limit == 500
    assert parse_source("flickr30k").splits == ("all",)
    assert parse_source("file:/tmp/x.tsv@10").limit == 10


@pytest.mark.parametrize("spec", ["nope", "snli:bogus", "stsb:test"])
def test_bad_specs_are_refused(spec):
    with pytest.raises(ConfigError):
        parse_source(spec)


def test_named_mixture_expands():
    assert expand_sources(["reference"]) == ("snli:train", "stsb:train")
    assert "wikiict@12000" in expand_sources(["search"])


def test_normalise():
    assert normalise("A man,  playing  a Flute.") == "a man playing a flute"


@pytest.mark.slow
def test_local_mixture_never_contains_stsb_dev_or_test_sentences(data_dir):
    pairs, report = build_mixture(MixtureConfig(max_pairs=0), data_dir)
    blocked = {normalise(s) for split in ("dev", "test") for r in load_stsb(split, data_dir)
               for s in (r.sentence1, r.sentence2)}
    texts = {normalise(t) for p in pairs for t in (p.anchor, p.positive, p.negative) if t}
    assert not texts & blocked
    assert sum(r["dropped_eval_overlap"] for r in report.values()) > 0
    # Flickr8k images are nearly all in Flickr30k: most of its pairs are dropped as duplicates
    assert report["flickr8k:all"]["kept"] < 0.2 * report["flickr8k:all"]["loaded"]
    keys = [tuple(sorted((normalise(p.anchor), normalise(p.positive)))) for p in pairs]
    assert len(keys) == len(set(keys))


def test_stsb_threshold_and_cap(data_dir):
    config = MixtureConfig(sources=("stsb:train",), max_pairs=100, stsb_min_score=4.5)
    pairs, report = build_mixture(config, data_dir)
    assert len(pairs) == 100
    scores = {(r.sentence1, r.sentence2): r.score for r in load_stsb("train", data_dir)}
    assert all(scores[(p.anchor, p.positive)] >= 4.5 for p in pairs)


def test_self_pairs_survive_the_duplicate_filter(tmp_path, data_dir):
    import shutil

    shutil.copytree(data_dir / "stsbenchmark", tmp_path / "stsbenchmark")
    (tmp_path / "wikipedia").mkdir()
    (tmp_path / "wikipedia" / "sentences.txt").write_text("Tides follow the moon.\nBees dance.\n")
    pairs, report = build_mixture(MixtureConfig(sources=("wikipedia",), max_pairs=0), tmp_path)
    assert len(pairs) == 2 and all(p.anchor == p.positive for p in pairs)
