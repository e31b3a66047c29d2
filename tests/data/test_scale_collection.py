"""The scale collection of bench/bench_million.py, small: the same code over the first lines of
each source (a data folder cut down to a few thousand documents), in the issue's order, spaces
normalised, exact repeats dropped; and the benchmark run end to end on it."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semsearch.data.scale_collection import SOURCES, write_collection

REPO = Path(__file__).resolve().parents[2]


def head(source: Path, target: Path, lines: int) -> None:
    """The first `lines` lines of a data file (gzipped as the original is)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as read, opener(target, "wt",
                                                                encoding="utf-8") as write:
        for number, line in enumerate(read):
            if number >= lines:
                break
            write.write(line)


@pytest.fixture(scope="module")
def small_data(data_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small-data")
    mlq = data_dir / "beir" / "mlquestions"
    head(mlq / "corpus.jsonl", folder / "beir/mlquestions/corpus.jsonl", 1500)
    shutil.copy(mlq / "queries.jsonl", folder / "beir/mlquestions/queries.jsonl")
    (folder / "beir/mlquestions/qrels").mkdir()
    shutil.copy(mlq / "qrels" / "dev.tsv", folder / "beir/mlquestions/qrels/dev.tsv")
    head(data_dir / "wikipedia/articles.jsonl.gz", folder / "wikipedia/articles.jsonl.gz", 3)
    head(data_dir / "wikipedia/sentences.txt.gz", folder / "wikipedia/sentences.txt.gz", 1200)
    head(data_dir / "quora/quora_duplicate_pairs.tsv", folder / "quora/quora_duplicate_pairs.tsv",
         400)
    head(data_dir / "flickr30k/flickr30k_captions.token.gz",
         folder / "flickr30k/flickr30k_captions.token.gz", 2000)
    return folder


def test_the_collection_takes_each_source_in_order_until_full(small_data, tmp_path):
    out = tmp_path / "corpus.jsonl"
    report = write_collection(small_data, out, size=4000)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert report.documents == len(rows) == 4000
    assert list(report.by_source) == list(SOURCES) and all(report.by_source.values())
    sources = [row["_id"].split("-")[0] for row in rows]
    # in the order: MLQuestions, paragraphs, sentences, Quora, then captions to fill up
    order = ["mlq", "wiki", "sent", "quora", "flickr"]
    assert [order.index(s) for s in sources] == sorted(order.index(s) for s in sources)
    assert sources.count("mlq") == 1500 and rows[0]["_id"] == "mlq-p0"
    assert report.by_source["flickr30k"] < 2000  # cut at 4,000 documents
    texts = [row["text"] for row in rows]
    assert len(set(texts)) == len(texts) and report.repeats_dropped > 0  # Quora repeats itself
    assert all(text == " ".join(text.split()) and text for text in texts)
    assert len({row["_id"] for row in rows}) == len(rows)
    paragraphs = [t for row, t in zip(rows, texts, strict=True) if row["_id"].startswith("wiki")]
    assert paragraphs and min(len(t.split()) for t in paragraphs) >= 20
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_on_a_small_collection(small_data, tmp_path):
    """bench_million.py on 3,000 documents, BM25 alone: build, quality, latency, a JSON row."""
    out = tmp_path / "million.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_million.py"), "--arm", "lexical",
         "--size", "3000", "--work", str(tmp_path / "work"), "--data-dir", str(small_data),
         "--latency-queries", "10", "--shell-runs", "1", "--serve-queries", "5",
         "--append", "50", "--remove", "10", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    arm = result["arms"][0]
    assert result["collection"]["documents"] == 3000 and arm["modes"] == ["lexical"]
    assert arm["build"]["documents"] == 3000 and arm["build"]["vectors"] == 0
    assert {"read, chunk, encode, store", "bm25"} <= set(arm["build"]["stages"])
    # the dev questions whose passage is among the first 1,500 find it often
    assert arm["quality"]["lexical"]["recall@100"] > 0.5
    assert arm["latency_ms"]["lexical"]["p50"] > 0 and arm["shell"]["lexical"]["p50_s"] > 0
    assert arm["serve_ms"]["lexical"]["requests"] == 5
    assert arm["update"]["appended"] == 50 and arm["update"]["removed"] == 10
    assert arm["update"]["after"] == 3050
