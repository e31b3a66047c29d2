"""Fixtures for index tests: seeded clustered unit vectors and an embedder that serves them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def clustered_unit_vectors(count: int, dim: int, seed: int = 0, clusters: int = 40) -> np.ndarray:
    """(count, dim) float32 unit vectors around `clusters` random centres: structure like real
    embeddings have (pure noise would make every approximate index look bad)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    vectors = centres[rng.integers(0, clusters, count)] + 0.7 * rng.standard_normal((count, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors, dtype=np.float32)


class TableEmbedder:
    """Text "v12" embeds to row 12 of a fixed table: synthetic vectors through the real pipeline."""

    name = "table"
    max_seq_len = 16
    path = Path("table")

    def __init__(self, table: np.ndarray, fingerprint: str = "7ab1e00000000000") -> None:
        self.table = table
        self.dim = table.shape[1]
        self.fingerprint = fingerprint

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [3] * len(texts)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.table[[int(text[1:]) for text in texts]]


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """OpenMP spin-waits badly on a busy 2-core machine; tests are small enough for one thread."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_indexes_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))


@pytest.fixture
def vectors() -> np.ndarray:
    """2,000 corpus vectors followed by 100 query vectors, 32-d, seeded."""
    return clustered_unit_vectors(2100, 32, seed=7)


@pytest.fixture
def table_corpus(tmp_path, vectors) -> Path:
    """A text corpus whose line i+1 is "v<i>", one a corpus vector."""
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"v{i}\n" for i in range(2000)))
    return path
