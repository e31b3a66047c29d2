"""Plot helpers: history reading, SNLI groups, and the PNGs (skipped without semsearch[plot])."""

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from semsearch.errors import DataError, SemsearchError
from semsearch.eval import plots

try:
    import matplotlib  # noqa: F401
    import sklearn  # noqa: F401

    HAVE_PLOT = True
except ImportError:
    HAVE_PLOT = False
needs_plot = pytest.mark.skipif(
    not HAVE_PLOT, reason="matplotlib and scikit-learn (pip install 'semsearch[plot]') not installed"
)


def test_require_plotting_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import now raises ImportError
    with pytest.raises(SemsearchError, match=r"scikit-learn.*pip install 'semsearch\[plot\]'"):
        plots.require_plotting()


def test_read_history_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        plots.read_history(tmp_path / "history.json")
    for text, message in (("{", "not readable JSON"), ('{"a": 1}', "JSON list"), ("[]", "no epochs")):
        (tmp_path / "history.json").write_text(text)
        with pytest.raises(DataError, match=message):
            plots.read_history(tmp_path / "history.json")


def test_snli_groups_take_premises_with_both_hypotheses():
    pair = lambda p, h, label: SimpleNamespace(premise=p, hypothesis=h, label=label)  # noqa: E731
    pairs = [
        pair("P1", "E1", "entailment"), pair("P1", "N1", "neutral"), pair("P1", "C1", "contradiction"),
        pair("P2", "E2", "entailment"),  # no contradiction: left out
        pair("P3", "C3", "contradiction"), pair("P3", "E3", "entailment"), pair("P3", "E3b", "entailment"),
    ]
    texts, groups, roles = plots.snli_groups(pairs, groups=5)
    assert texts == ["P1", "E1", "C1", "P3", "E3", "C3"]
    assert groups == [0, 0, 0, 1, 1, 1]
    assert roles == ["premise", "entailed", "contradiction"] * 2


@needs_plot
def test_plot_history_with_missing_keys(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 2.0, "lr": 1e-3},
        {"epoch": 2, "train_loss": 1.0, "val_loss": 1.5, "lr": 5e-4, "stsb_dev_spearman": None},
    ]
    path = plots.plot_history(history, tmp_path / "out" / "curves.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_plot
def test_tsne_map_png(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    vectors = np.repeat(centres, 3, axis=0) + 0.05 * rng.standard_normal((12, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = plots.tsne_2d(vectors)
    assert points.shape == (12, 2)
    path = plots.plot_map(points, np.repeat(np.arange(4), 3), list(plots.ROLES) * 4, tmp_path / "m.png")
    assert path.stat().st_size > 1000
    json.dumps(points.tolist())  # finite numbers
