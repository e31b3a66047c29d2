"""`semsearch plot` on a tiny trained model (skipped without the optional extra)."""

import json
import sys

import pytest
from click.testing import CliRunner

from semsearch.cli import main

try:
    import matplotlib  # noqa: F401
    import sklearn  # noqa: F401

    HAVE_PLOT = True
except ImportError:
    HAVE_PLOT = False


def test_plot_without_the_extra_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(main, ["plot", "--model", str(tmp_path)])
    assert result.exit_code == 1
    assert "pip install 'semsearch[plot]'" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not HAVE_PLOT, reason="matplotlib and scikit-learn (pip install 'semsearch[plot]') not installed")
@pytest.mark.slow  # a model load and t-SNE: several seconds on a busy CPU
def test_plot_writes_non_empty_pngs(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "figures"
    result = CliRunner().invoke(main, ["plot", "--model", str(tiny_model_dir), "--data-dir", str(data_dir),
                                       "--out", str(out), "--groups", "5", "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert sorted(p.split("/")[-1] for p in files) == ["training_curves.png", "tsne_snli.png"]
    for name in ("training_curves.png", "tsne_snli.png"):
        assert (out / name).stat().st_size > 1000
