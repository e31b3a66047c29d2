"""notebooks/walkthrough.ipynb runs top to bottom on the tiny preset, headless (nbclient)."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_runs(tmp_path, monkeypatch, data_dir):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("SEMSEARCH_PRESET", "tiny")
    monkeypatch.setenv("WALKTHROUGH_DIR", str(tmp_path / "walkthrough"))
    monkeypatch.setenv("SEMSEARCH_DATA", str(data_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit the notebook without outputs"
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(str(output) for cell in notebook.cells for output in cell.get("outputs", []))
    assert "STS-B test" in outputs and "whales and coral reefs" in outputs
    assert "image/png" in outputs  # the curves and the map, inline
    assert (tmp_path / "walkthrough" / "indexes" / "docs" / "manifest.json").is_file()


def test_the_walkthrough_and_the_readme_use_the_public_api_only():
    """Python users are shown `semsearch.train(...)`, `semsearch.index(...)`, ...: no import
    from the library's internals in the notebook or in the README's Python code."""
    import json
    import re

    code = ["".join(cell["source"]) for cell in json.loads(NOTEBOOK.read_text())["cells"]
            if cell["cell_type"] == "code"]
    readme = (NOTEBOOK.parents[1] / "README.md").read_text(encoding="utf-8")
    code += re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    internal = re.compile(r"^\s*(from semsearch\.\w|import semsearch\.)", flags=re.M)
    assert code and [block for block in code if internal.search(block)] == []
