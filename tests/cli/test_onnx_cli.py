"""`semsearch export --format onnx` and `--backend` on index and evaluate, with a tiny model."""

import json
import shutil

import pytest
from click.testing import CliRunner

from semsearch.cli import main

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def model(tiny_model_dir, tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.mark.slow
def test_export_onnx_then_index_and_query(model, tmp_path, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    result = run("export", model, "--format", "onnx", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (model / "onnx" / "model-fp32.onnx").is_file()
    assert report["files"]["int8"] == str(model / "onnx" / "model-int8.onnx")
    corpus = tmp_path / "pets.txt"
    corpus.write_text("cats purr softly\ndogs bark loudly\nparrots talk\n")
    out = tmp_path / "indexes" / "pets"
    result = run("index", corpus, "--model", model, "--backend", "onnx", "--precision", "int8",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert "on onnx" in result.stderr
    assert json.loads((out / "manifest.json").read_text())["precision"] == "int8"
    # the query (numpy, fp32) comes from the same weights, so the index accepts it
    result = run("query", "cats", "--index", out, "-k", "1", "--json")
    assert result.exit_code == 0, result.output


def test_default_backend_on_a_cpu_is_onnx(model, tmp_path):
    from semsearch.embedder import load_embedder

    assert getattr(load_embedder(model, device="cpu"), "backend", "torch") == "onnx"
    assert getattr(load_embedder(model, backend="torch"), "backend", "torch") == "torch"


def test_backend_errors_are_one_line(model, tmp_path):
    (tmp_path / "a.txt").write_text("a\n")
    result = run("index", tmp_path / "a.txt", "--model", model, "--backend", "onnx",
                 "--device", "cuda", "--out", tmp_path / "i")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--backend torch" in result.stderr.strip().splitlines()[-1]
    result = run("export", tmp_path, "--format", "onnx")
    assert result.exit_code == 1 and "not a model folder" in result.stderr
    assert not (tmp_path / "onnx").exists()


@pytest.mark.slow
def test_evaluate_on_onnx(model, data_dir):
    result = run("evaluate", "--model", model, "--data-dir", data_dir, "--limit", "30",
                 "--backend", "onnx", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["fingerprint"]


def test_embed_gives_the_same_vectors_on_either_backend(model, tmp_path):
    import numpy as np

    corpus = tmp_path / "pets.txt"
    corpus.write_text("cats purr softly\ndogs bark loudly at the postman\nparrots talk\n")
    vectors = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.npy"
        result = run("embed", corpus, "--model", model, "--backend", backend, "--out", out)
        assert result.exit_code == 0, result.output
        vectors[backend] = np.load(out)
    cosines = (vectors["torch"] * vectors["onnx"]).sum(axis=1)
    assert vectors["onnx"].shape == (3, vectors["torch"].shape[1]) and cosines.min() >= 0.9999


def test_serve_takes_a_backend(model):
    from semsearch.serve.state import Limits, ServeConfig, Served

    config = ServeConfig(model=str(model), backend="onnx", precision="int8", limits=Limits())
    assert ServeConfig.from_env(config.to_env()) == config
    state = Served(config)
    try:
        assert getattr(state.embedder, "backend", "torch") == "onnx"
        assert state.embedder.encode(["cats purr"], batch_size=8).shape[0] == 1
    finally:
        state.close()
