import gzip

import pytest

from semsearch.data import load_snli, load_stsb, sources
from semsearch.data import loaders as L
from semsearch.errors import DataError

# row counts as documented in ../shared/data/README.md
REAL = [
    ("stsbenchmark/sts-train.csv", L.read_stsb, 5749),
    ("stsbenchmark/sts-dev.csv", L.read_stsb, 1500),
    ("stsbenchmark/sts-test.csv", L.read_stsb, 1379),
    ("snli/snli_1.0_dev.jsonl.gz", L.read_snli, 9842),
    ("snli/snli_1.0_test.jsonl.gz", L.read_snli, 9824),
    ("flickr8k/Flickr8k.token.txt", L.read_flickr_captions, 40460),
    ("flickr30k/flickr30k_captions.token.gz", L.read_flickr_captions, 155070),
    ("coco/captions_val2017.json.gz", L.read_coco_json, 25014),
    ("coco/coco_dev_caps.txt", L.read_caption_lines, 5000),
    ("quora/quora_duplicate_pairs.tsv", L.read_quora, 10367),
    ("mrpc/msr_paraphrase_train.txt", L.read_mrpc, 2753),
]


@pytest.mark.parametrize("name, reader, count", REAL, ids=[r[0] for r in REAL])
def test_real_files_load_with_documented_counts(data_dir, name, reader, count):
    rows = reader(data_dir / name)
    assert len(rows) == count


def test_stsb_fields_and_scores(data_dir):
    rows = load_stsb("train", data_dir)
    assert rows[0].sentence1 == "A plane is taking off."
    assert rows[0].sentence2 == "An air plane is taking off."
    assert rows[0].score == 5.0
    assert all(0.0 <= r.score <= 5.0 for r in rows)


def test_snli_drops_no_consensus_rows(data_dir):
    rows = load_snli("dev", data_dir)
    assert {r.label for r in rows} == {"entailment", "neutral", "contradiction"}


def test_flickr8k_first_line_with_space_separator(data_dir):
    first = L.read_flickr_captions(data_dir / "flickr8k/Flickr8k.token.txt")[0]
    assert first.image == "1000268201_693b08cb0e.jpg"
    assert first.text.startswith("A child in a pink dress")


def test_mrpc_keeps_paraphrases_and_strips_bom(data_dir):
    rows = L.read_mrpc(data_dir / "mrpc/msr_paraphrase_train.txt")
    assert rows[0].anchor.startswith("Amrozi accused his brother")


def test_gzipped_and_plain_read_the_same(tmp_path):
    text = "g\tf\t2012\t1\t4.5\tA cat sits.\tA cat is sitting.\n" * 3
    (tmp_path / "a.csv").write_text(text)
    with gzip.open(tmp_path / "a.csv.gz", "wt") as handle:
        handle.write(text)
    assert L.read_stsb(tmp_path / "a.csv") == L.read_stsb(tmp_path / "a.csv.gz")


def test_extra_columns_are_ignored(tmp_path):
    (tmp_path / "s.csv").write_text("g\tf\t2012\t1\t3.0\tOne.\tTwo.\tsource-a\tsource-b\n")
    assert L.read_stsb(tmp_path / "s.csv")[0].sentence2 == "Two."


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        L.read_stsb(tmp_path / "nope.csv")


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="no usable rows"):
        L.read_stsb(tmp_path / "e.csv")


def test_undecodable_bytes_report_the_line(tmp_path):
    (tmp_path / "b.tsv").write_bytes(b"a\tb\nc\td\n\xff\xfe\tz\n")
    with pytest.raises(DataError, match="line 3 is not valid UTF-8"):
        L.read_quora(tmp_path / "b.tsv")


def test_mostly_malformed_file_reports_first_bad_line(tmp_path):
    (tmp_path / "m.csv").write_text("g\tf\t2012\t1\t4.0\tA.\tB.\nnot a row\nnor this\n")
    with pytest.raises(DataError, match="line 2"):
        L.read_stsb(tmp_path / "m.csv")


def test_one_stray_bad_line_is_skipped_with_a_warning(tmp_path):
    good = "g\tf\t2012\t1\t4.0\tA.\tB.\n" * 200
    (tmp_path / "s.csv").write_text(good + "broken\n")
    with pytest.warns(UserWarning, match="skipped 1 malformed"):
        assert len(L.read_stsb(tmp_path / "s.csv")) == 200


def test_snli_malformed_json(tmp_path):
    (tmp_path / "snli_1.0_dev.jsonl").write_text('{"gold_label": "entailment"\n')
    with pytest.raises(DataError, match="no usable rows"):
        L.read_snli(tmp_path / "snli_1.0_dev.jsonl")


def test_generic_pair_files_tsv_and_jsonl(tmp_path):
    (tmp_path / "p.tsv").write_text("anchor\tpositive\tnegative\nq\tp\tn\nq2\tp2\n")
    rows = L.read_pair_file(tmp_path / "p.tsv")
    assert [(r.anchor, r.positive, r.negative) for r in rows] == [("q", "p", "n"), ("q2", "p2", None)]
    (tmp_path / "p.jsonl").write_text('{"anchor": "a", "positive": "b"}\n')
    assert L.read_pair_file(tmp_path / "p.jsonl")[0].positive == "b"


def test_nli_pairs_take_contradiction_of_same_premise_as_negative():
    from semsearch.data.records import NliPair

    rows = [NliPair("P", "entailed", "entailment"), NliPair("P", "contra", "contradiction"),
            NliPair("Q", "e2", "entailment"), NliPair("Q", "n", "neutral")]
    pairs = L.nli_training_pairs(rows)
    assert [(p.anchor, p.positive, p.negative) for p in pairs] == [
        ("P", "entailed", "contra"), ("Q", "e2", None)]


def test_caption_pairs_stay_within_an_image():
    from semsearch.data.records import Caption

    captions = [Caption("i1", f"one {k}") for k in range(5)] + [Caption("i2", "two a"),
                                                                 Caption("i2", "two b")]
    pairs = L.caption_training_pairs(captions, "flickr", pairs_per_image=5)
    assert len(pairs) == 6
    assert all(p.anchor.split()[0] == p.positive.split()[0] for p in pairs)


def test_local_folder_is_preferred_and_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="stsbenchmark/sts-dev.csv"):
        load_stsb("dev", tmp_path)


def test_no_folder_and_no_hub_names_both(monkeypatch):
    import datasets

    monkeypatch.delenv("SEMSEARCH_DATA", raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="SEMSEARCH_DATA.*hub"):
        load_stsb("dev")


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        sources.resolve_data_dir(tmp_path / "nope")


def test_wikipedia_sentences_become_self_pairs(tmp_path):
    import gzip as gz

    folder = tmp_path / "wikipedia"
    folder.mkdir()
    with gz.open(folder / "sentences.txt.gz", "wt") as handle:
        handle.write("The first sentence.\n\nThe second one.\n")
    pairs = sources.load_training_pairs("wikipedia", ("all",), tmp_path, 4.0, 5)
    assert [(p.anchor, p.positive) for p in pairs] == [
        ("The first sentence.", "The first sentence."), ("The second one.", "The second one.")]
