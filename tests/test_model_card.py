"""Every trained model folder carries a model card: data mixture with licences, recipe, figures."""

from semsearch.model_card import model_card


def test_training_writes_the_card(tiny_model_dir):
    card = (tiny_model_dir / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sentence-transformers")
    assert "## Training data" in card and "CC BY-SA 4.0" in card and "## Recipe" in card
    assert "semsearch evaluate" in card  # no eval.json yet: says how to get the figures


def test_card_carries_eval_figures_and_marks_unknown_licences():
    report = {"model": {"name": "m", "dim": 8}, "date": "2026-01-01", "semsearch_version": "0",
              "thresholds": {"similar": 0.7, "dissimilar": 0.3, "gap": 0.3},
              "sts": {"stsb_test": {"pairs": 10, "model": {"spearman": 80.123, "pearson": 79.0},
                                    "tfidf": {"spearman": 50.0, "pearson": 49.0}}},
              "separation": {}, "retrieval": {}}
    config = {"name": "m", "model": {"hidden": 8, "layers": 1, "heads": 1, "max_seq_len": 16},
              "data": {"sources": ["mystery:train"], "max_pairs": 10}}
    card = model_card(config, report)
    assert "80.12" in card and "see the data set's own terms" in card


def test_mined_negatives_are_a_sentence_not_a_source_row():
    config = {"name": "m", "model": {"hidden": 8, "layers": 1, "heads": 1, "max_seq_len": 16},
              "data": {"sources": ["quora"], "max_pairs": 10},
              "data_report": {"quora:all": {"kept": 10328},
                              "negatives:bm25": {"pairs_without": 18758, "mined": 12349,
                                                 "margin": 0.05}}}
    card = model_card(config)
    assert "| quora:all | 10328 |" in card and "| negatives:bm25" not in card
    assert "Hard negatives mined with bm25 for 12,349 of the 18,758 pairs" in card


def test_mined_passage_sources_carry_wikipedias_licence_and_no_cap_reads_as_every_pair():
    config = {"name": "m", "model": {"hidden": 8, "layers": 1, "heads": 1, "max_seq_len": 16},
              "data": {"sources": ["wikiict@12000", "corpus:/tmp/docs.jsonl"], "max_pairs": 0},
              "data_report": {"wikiict:all": {"kept": 12000}, "corpus:/tmp/docs.jsonl": {"kept": 7}}}
    card = model_card(config)
    assert "| wikiict:all | 12000 | CC BY-SA 3.0 |" in card
    assert "| corpus:/tmp/docs.jsonl | 7 | your file's own terms |" in card
    assert "Every pair (no cap)" in card and "At most 0" not in card
