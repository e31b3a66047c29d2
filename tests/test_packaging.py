"""The wheel carries the licence that setup.cfg declares."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_license_file_is_mit_as_declared():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "semsearch contributors" in text
    assert "license = MIT" in (REPO / "setup.cfg").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_wheel_includes_the_license(tmp_path):
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    for name in files.stdout.splitlines():
        if name.startswith(("semsearch/", "LICENSE", "setup.cfg", "pyproject.toml", "README")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("semsearch-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    licences = [name for name in names if name.endswith("/LICENSE") and ".dist-info/" in name]
    assert licences, names
    assert zipfile.ZipFile(wheel).read(licences[0]).decode().startswith("MIT License")
