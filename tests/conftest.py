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


@pytest.fixture(autouse=True)
def _isolated_models_dir(tmp_path, monkeypatch):
    """Commands that default to models/ look in a per-test folder, never the repo's."""
    monkeypatch.setenv("SEMSEARCH_MODELS", str(tmp_path / "models"))
