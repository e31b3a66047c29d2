"""Shared fixtures: the real data folder, and one tiny model trained once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

try:  # Hypothesis profiles of the property tests (tests/properties) and the fuzzed API
    from hypothesis import HealthCheck, settings

    # the default run: bounded and seeded (derandomised: the same examples every run, so CI
    # is reproducible and its time fixed), no example database written into the checkout
    settings.register_profile("ci", max_examples=100, derandomize=True, deadline=None,
                              database=None, suppress_health_check=[HealthCheck.too_slow])
    # HYPOTHESIS_PROFILE=deep: 20x the examples, a fresh random seed each run
    settings.register_profile("deep", max_examples=2000, derandomize=False, deadline=None,
                              database=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # the dev extra is not installed; the property tests skip
    pass


def _data_dir() -> Path | None:
    candidate = Path(os.environ.get("SEMSEARCH_DATA") or REPO.parent / "shared" / "data")
    return candidate if (candidate / "stsbenchmark").is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data sets (../shared/data or $SEMSEARCH_DATA); tests skip without them."""
    found = _data_dir()
    if found is None:
        pytest.skip("real data not found: set SEMSEARCH_DATA to the shared data folder")
    return found


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, data_dir) -> Path:
    """A model folder trained with the `tiny` preset on real data (a few seconds)."""
    from semsearch.encoder.presets import preset
    from semsearch.encoder.train import train_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    train_model(preset("tiny"), out, data_dir=data_dir, progress=False, log=lambda _m: None)
    return out


@pytest.fixture(scope="session")
def wiki_text_file(tmp_path_factory, data_dir) -> Path:
    """400 real Wikipedia sentences, one a line (unlabelled text for distillation tests)."""
    import gzip

    out = tmp_path_factory.mktemp("text") / "wiki.txt"
    with gzip.open(data_dir / "wikipedia" / "sentences.txt.gz", "rt", encoding="utf-8") as handle:
        lines = [next(handle).strip() for _ in range(400)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def static_model_dir(tmp_path_factory, tiny_model_dir, wiki_text_file) -> Path:
    """A static model distilled from the tiny model on those sentences (a few seconds)."""
    from semsearch.encoder.static_train import StaticTrainConfig, distill_static

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SEMSEARCH_CACHE")
    os.environ["SEMSEARCH_CACHE"] = str(cache)
    try:
        out = tmp_path_factory.mktemp("models") / "static"
        texts = wiki_text_file.read_text(encoding="utf-8").splitlines()
        distill_static(tiny_model_dir, out, StaticTrainConfig(hidden=16, epochs=2, val_texts=40),
                       texts, {"text": len(texts)}, progress=False, log=lambda _m: None)
    finally:
        if old is None:
            os.environ.pop("SEMSEARCH_CACHE", None)
        else:
            os.environ["SEMSEARCH_CACHE"] = old
    return out


@pytest.fixture(autouse=True)
def _isolated_models_dir(tmp_path, monkeypatch):
    """Commands that default to models/ look in a per-test folder, never the repo's."""
    monkeypatch.setenv("SEMSEARCH_MODELS", str(tmp_path / "models"))
    # commands that write a model calibrate its fusion on the full retrieval collections
    # (minutes); tests/cli/test_calibrate.py runs that step on small collections
    monkeypatch.setenv("SEMSEARCH_CALIBRATE", "0")
