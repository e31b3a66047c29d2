"""A short soak (bench/soak_serve.py): a served index under concurrent clients while appends
and removes rewrite it; no request fails, and every write is visible once it has finished."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "soak_serve.py"


@pytest.mark.slow
def test_a_short_soak_with_writers_has_no_failures_and_sees_every_write(tmp_path,
                                                                         tiny_model_dir):
    spec = importlib.util.spec_from_file_location("soak_serve", SCRIPT)
    soak_serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak_serve)
    corpus = tmp_path / "docs.txt"
    corpus.write_text("".join(f"document {i} about topic {i % 7}\n" for i in range(60)))
    result = soak_serve.soak(str(tiny_model_dir), corpus, seconds=24, concurrency=4, every=0.5)
    assert result["writer_error"] is None
    assert result["failures"] == 0, result["failure_kinds"]
    assert result["write_misses"] == []
    assert result["appended"] >= 1 and result["requests"] > 0
    assert result["server_first"]["fds"] > 0 and result["server_end"]["rss_mib"] > 0
