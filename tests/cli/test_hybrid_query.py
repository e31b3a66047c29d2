"""Hybrid, dense and lexical search, filters, and the lexical side kept in step with the vectors
through append, remove and a killed append: the CLI over real indexes (hash embedder, or the
tiny model where a subprocess needs a real model folder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from fakes import HashEmbedder

from semsearch.cli import main

ROWS = [
    {"id": "ml", "text": "Machine learning lets computers learn patterns from examples.", "lang": "en", "year": 2015},
    {"id": "dl", "text": "Deep neural networks learn layered representations.", "lang": "en", "year": 2016},
    {"id": "hummus", "text": "Hummus blends chickpeas with tahini, lemon and garlic.", "lang": "en", "year": 2015},
    {"id": "ml-fr", "text": "L'apprentissage automatique (machine learning) apprend des exemples.", "lang": "fr", "year": 2015},
    {"id": "tides", "text": "Ocean tides follow the moon.", "lang": "en", "year": 2014},
]


def run(*args):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result


def hits(result):
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


@pytest.fixture
def indexed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setattr(
        "semsearch.embedder.load_embedder",
        lambda model, **options: HashEmbedder(),
    )
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    result = run("index", "docs.jsonl", "--out", "idx")
    assert result.exit_code == 0, result.output
    return tmp_path


def test_every_mode_reports_both_sides_and_hybrid_is_the_default(indexed):
    lexical = hits(run("query", "machine learning", "--mode", "lexical", "--json", "--index", "idx"))
    assert {h["id"] for h in lexical} == {"ml", "ml-fr", "dl"}  # "learn" is stemmed
    assert all(h["lexical_rank"] == h["rank"] and h["dense_rank"] is None for h in lexical)
    dense = hits(run("query", "machine learning", "--mode", "dense", "--json", "--index", "idx"))
    assert all(h["dense_score"] == h["score"] and h["lexical_score"] is None for h in dense)
    hybrid = hits(run("query", "machine learning", "--json", "--index", "idx", "-k", "5"))
    assert hybrid[0]["id"] in {"ml", "ml-fr"}
    # candidates are fused by id; the hits shown get their text and metadata back
    text = {row["id"]: row["text"] for row in ROWS}
    assert all(h["text"] == text[h["id"]] and h["metadata"]["lang"] and h["chunks"] == 1
               for h in hybrid)
    assert "row" not in hybrid[0]
    assert any(h["dense_rank"] is not None and h["lexical_rank"] is not None for h in hybrid)
    rrf = hits(run("query", "machine learning", "--json", "--index", "idx", "--fusion", "rrf"))
    assert rrf[0]["score"] == pytest.approx(sum(
        1 / (60 + rank) for rank in (rrf[0]["dense_rank"], rrf[0]["lexical_rank"]) if rank))


def test_hybrid_equals_fusing_the_two_modes(indexed):
    from semsearch.index import SearchIndex
    from semsearch.index.fusion import FusionConfig
    from semsearch.querying import SearchOptions, fuse_hits, search

    opened = SearchIndex.open(indexed / "idx")
    try:
        embedder = HashEmbedder()
        fused = search(opened, embedder, ["learn patterns"], 3, options=SearchOptions())[0]
        depth = FusionConfig.from_dict(opened.manifest.fusion).depth
        dense = search(opened, embedder, ["learn patterns"], depth,
                       options=SearchOptions(mode="dense"))[0]
        lexical = search(opened, None, ["learn patterns"], depth,
                         options=SearchOptions(mode="lexical"))[0]
        expected = fuse_hits(dense, lexical, FusionConfig.from_dict(opened.manifest.fusion), 3)
        assert [(h.id, h.score) for h in fused] == [(h.id, h.score) for h in expected]
    finally:
        opened.close()


def test_filters_apply_to_both_sides_and_still_fill_k(indexed):
    for mode in ("hybrid", "dense", "lexical"):
        found = hits(run("query", "machine learning", "--mode", mode, "--where", "lang=fr",
                         "--json", "--index", "idx"))
        assert [h["id"] for h in found] == ["ml-fr"]
    found = hits(run("query", "ocean", "--mode", "dense", "--where", "year=2015", "-k", "3",
                     "--json", "--index", "idx"))
    assert sorted(h["id"] for h in found) == ["hummus", "ml", "ml-fr"]  # k hits when k match
    both = hits(run("query", "learning", "--where", "lang=en", "--where", "year=2016",
                    "--json", "--index", "idx"))
    assert [h["id"] for h in both] == ["dl"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "colour=red"], "no document has a metadata field 'colour'"),
        (["--where", "nonsense"], "FIELD=VALUE"),
        (["--mode", "lexical", "--", "the and of !!!"], "no searchable words"),
        (["--mode", "sideways"], "Invalid value for '--mode'"),
        (["--dense-weight", "nan"], "dense weight must be between 0 and 1"),
    ],
)
def test_bad_queries_get_one_clear_line(indexed, args, message):
    text = [] if "--" in args else ["machine"]
    result = run("query", *text, "--index", "idx", *args)
    assert result.exit_code != 0 and message in result.output


def test_a_wordless_lexical_query_in_a_batch_is_named_and_the_others_answered(indexed):
    """A query of stopwords alone fails with the hint; among others it has no hits and a note
    (the library gives it no hits either way, so the server answers alone and batched alike)."""
    (indexed / "queries.txt").write_text("the and of !!!\nmachine learning\n")
    result = run("query", "--queries", "queries.txt", "--mode", "lexical", "--json",
                 "--index", "idx")
    assert result.exit_code == 0, result.output
    assert "'the and of !!!' has no searchable words" in result.output
    assert {h["query"] for h in hits(result)} == {"machine learning"}


def test_query_syntax_and_stopwords_are_harmless(indexed):
    for text in ['"AND OR NEAR(', "the of and", "*:* OR 1=1"]:
        result = run("query", text, "--index", "idx", "--json")
        assert result.exit_code == 0, result.output  # hybrid falls back on the dense side


def test_words_no_document_has_find_nothing_without_an_error(indexed):
    result = run("query", "zeppelin", "--mode", "lexical", "--json", "--index", "idx")
    assert result.exit_code == 0 and hits(result) == [], result.output


def test_append_and_remove_keep_the_lexical_side_in_step(indexed):
    (indexed / "more.jsonl").write_text(json.dumps({"id": "reef", "text": "Coral reefs shelter fish."}) + "\n")
    assert run("index", "more.jsonl", "--append", "--out", "idx").exit_code == 0
    found = hits(run("query", "coral", "--mode", "lexical", "--json", "--index", "idx"))
    assert [h["id"] for h in found] == ["reef"]
    assert run("remove", "reef", "--index", "idx").exit_code == 0
    result = run("query", "coral", "--mode", "lexical", "--json", "--index", "idx")
    assert hits(result) == []


def test_an_index_without_a_lexical_part_searches_dense_and_says_how_to_add_it(indexed):
    folder = indexed / "idx"
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["lexical"] = None
    (folder / "manifest.json").write_text(json.dumps(manifest))
    import shutil

    shutil.rmtree(folder / "lexical")
    assert run("query", "machine learning", "--index", "idx").exit_code == 0
    result = run("query", "machine learning", "--index", "idx", "--mode", "hybrid")
    assert result.exit_code != 0 and "--add-lexical" in result.output
    assert run("index", "--add-lexical", "--out", "idx").exit_code == 0
    found = hits(run("query", "machine", "--mode", "lexical", "--json", "--index", "idx"))
    assert {h["id"] for h in found} == {"ml", "ml-fr"}


@pytest.mark.slow
def test_a_killed_append_leaves_vectors_store_and_lexical_index_at_the_old_version(tiny_model_dir, tmp_path):
    from semsearch.index import SearchIndex

    env = {**os.environ, "SEMSEARCH_INDEXES": str(tmp_path / "indexes")}
    cli = [sys.executable, "-m", "semsearch.cli"]
    (tmp_path / "small.txt").write_text("ocean tides follow the moon\nhummus with tahini\n")
    subprocess.run(cli + ["index", str(tmp_path / "small.txt"), "--model", str(tiny_model_dir),
                          "--out", str(tmp_path / "idx")], env=env, check=True, capture_output=True)
    words = "coral reef whale current harbour lighthouse storm kelp".split()
    (tmp_path / "big.txt").write_text(
        "".join(f"{words[i % 8]} {words[(i * 3) % 8]} number {i} of many lines\n" for i in range(20_000))
    )
    for wait in (0.5, 2.0):  # killed early (embedding) and later (writing the folder)
        process = subprocess.Popen(
            cli + ["index", str(tmp_path / "big.txt"), "--append", "--model", str(tiny_model_dir),
                   "--out", str(tmp_path / "idx")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".idx.tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(wait)
        process.send_signal(signal.SIGKILL)
        process.wait()
        opened = SearchIndex.open(tmp_path / "idx")
        try:
            assert opened.manifest.documents == 2 and opened.index.ntotal == 2
            assert len(opened.lexical) == 2 and opened.store.count_chunks() == 2
            assert opened.search_lexical(["coral"], 5) == [[]]
        finally:
            opened.close()


def test_bm25_scores_a_chunked_document_whole(indexed):
    filler = " ".join(f"filler{i}" for i in range(70))
    (indexed / "long.jsonl").write_text(
        json.dumps({"id": "long", "text": f"zebra {filler} quokka"}) + "\n"
        + json.dumps({"id": "short", "text": "zebra crossing"}) + "\n"
        + json.dumps({"id": "other", "text": "quokka selfies"}) + "\n")
    assert run("index", "long.jsonl", "--append", "--out", "idx").exit_code == 0
    def score(query):
        found = hits(run("query", query, "--mode", "lexical", "--json", "--index", "idx"))
        return {h["id"]: h for h in found}

    both, zebra, quokka = score("zebra quokka"), score("zebra"), score("quokka")
    assert both["long"]["chunks"] > 1  # the two words sit in different chunks ...
    # ... and the document is credited for both, as one text (a best-chunk score would not be)
    assert both["long"]["score"] == pytest.approx(
        zebra["long"]["score"] + quokka["long"]["score"], rel=1e-5)


def test_join_chunks_restores_the_text_the_store_split():
    from semsearch.corpora import ChunkConfig, chunk_documents
    from semsearch.index.lexical import join_chunks

    text = " ".join(f"w{i % 17}" for i in range(300))
    chunks = chunk_documents([text], HashEmbedder(max_seq_len=20).count_tokens,
                             ChunkConfig(max_tokens=20, overlap=0.2))[0]
    assert len(chunks) > 10 and join_chunks(chunks) == text
