"""`semsearch check`: healthy folders pass with exit 0, every damage and a recall drift fail."""

from __future__ import annotations

import json
import random

import pytest
from faults_support import cli, folder_bytes


def random_corpus(path, count, seed):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(3000)]
    path.write_text("".join(" ".join(rng.choices(words, k=8)) + "\n" for _ in range(count)))
    return path


@pytest.fixture
def ivf(workspace):
    random_corpus(workspace / "a.txt", 2500, 1)
    result = cli("index", "a.txt", "--type", "ivf", "--json")
    assert result.exit_code == 0, result.output
    return workspace / "indexes" / "a"


def test_a_healthy_index_passes_with_its_recall_beside_the_built_one(ivf):
    before = folder_bytes(ivf)
    result = cli("check", "a", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[0])
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert report["healthy"] and statuses["store"] == statuses["rows"] == "ok"
    assert statuses["model"] == "warn"  # the hash embedder has no model folder to compare
    assert report["recall_at_10"] >= 0.93 and report["recall_at_10_built"] >= 0.95
    assert folder_bytes(ivf) == before  # read-only
    plain = cli("check", "a")
    assert plain.exit_code == 0 and "healthy" in plain.output


def test_recall_drift_fails_and_says_rebuild(ivf):
    manifest = json.loads((ivf / "manifest.json").read_text())
    manifest["recipe"]["nprobe"] = 1  # as if the lists no longer fit the corpus
    (ivf / "manifest.json").write_text(json.dumps(manifest))
    result = cli("check", "a")
    assert result.exit_code == 1 and "rebuild the index" in result.output


def test_rows_out_of_step_with_vectors_fail(ivf):
    import sqlite3

    with sqlite3.connect(ivf / "documents.sqlite") as connection:
        connection.execute("UPDATE chunks SET row = row + 100000 WHERE row < 5")
    result = cli("check", "a", "--sample", "0")
    assert result.exit_code == 1 and "store" in result.output


def test_append_re_measures_recall_and_re_tunes_nprobe(ivf, workspace):
    random_corpus(workspace / "b.txt", 2500, 2)
    result = cli("index", "b.txt", "--append", "--out", ivf, "--json")
    assert result.exit_code == 0, result.output
    change = json.loads(result.output.strip().splitlines()[-1])["recall_change"]
    assert change["setting"] == "nprobe" and change["new"] >= change["old"]
    assert change["recall_after"] >= change["recall_before"]
    manifest = json.loads((ivf / "manifest.json").read_text())
    assert manifest["recipe"]["nprobe"] == change["new"]
    assert cli("check", "a").exit_code == 0
