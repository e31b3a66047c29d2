"""Fixtures for the fault-injection tests (helpers are in faults_support.py)."""

from __future__ import annotations

import pytest
from fakes import HashEmbedder


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A temp folder as the working directory, indexes/ inside it, the hash embedder as model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setattr(
        "semsearch.search.load_embedder",
        lambda model=None, device=None, texts=None, precision="fp32": HashEmbedder(),
    )
    return tmp_path


