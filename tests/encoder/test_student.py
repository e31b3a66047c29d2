"""A transformer student distilled on unlabelled text: started from the teacher's layers, trained
toward its vectors, resumable, and a clear line for what cannot be a start."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.encoder.sentence_encoder import SentenceEncoder
from semsearch.encoder.student_train import StudentConfig, student_from_teacher


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_the_student_starts_from_the_teachers_layers(tiny_model_dir):
    model, _ = student_from_teacher(tiny_model_dir, StudentConfig(keep_layers="1"))
    teacher = SentenceEncoder.load(tiny_model_dir).model
    assert model.config.layers == 1
    assert np.array_equal(model.blocks[0].attention.qkv.weight.detach().numpy(),
                          teacher.blocks[1].attention.qkv.weight.detach().numpy())
    assert np.array_equal(model.token_embedding.weight.detach().numpy(),
                          teacher.token_embedding.weight.detach().numpy())


def test_by_default_half_the_layers_are_kept_evenly_the_last_among_them(tiny_model_dir):
    assert StudentConfig().layers_of(6) == [0, 2, 5]
    assert StudentConfig().layers_of(12) == [0, 2, 4, 7, 9, 11]
    assert StudentConfig().layers_of(1) == [0]
    assert StudentConfig(keep_layers="0,2,4").layers_of(6) == [0, 2, 4]
    model, _ = student_from_teacher(tiny_model_dir, StudentConfig())  # two layers: the last
    teacher = SentenceEncoder.load(tiny_model_dir).model
    assert model.config.layers == 1
    assert np.array_equal(model.blocks[0].attention.qkv.weight.detach().numpy(),
                          teacher.blocks[1].attention.qkv.weight.detach().numpy())


def test_distil_moves_the_student_toward_the_teacher_and_resumes(tiny_model_dir, wiki_text_file,
                                                                 tmp_path, monkeypatch):
    from semsearch.encoder import student_train

    monkeypatch.setenv("SEMSEARCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "student"
    args = ["distill", "--teacher", tiny_model_dir, "--preset", "distilled", "--wiki", "none",
            "--text", wiki_text_file, "--set", "keep_layers=0", "--set", "batch_size=16",
            "--set", "epochs=2", "--set", "lr=1e-3", "--out", out]
    real = student_train.write_json

    def stop_at_first_checkpoint(path, payload):
        real(path, payload)
        if path.name == "loop.json":
            raise KeyboardInterrupt

    monkeypatch.setattr(student_train, "write_json", stop_at_first_checkpoint)
    killed = run(*args)
    assert killed.exit_code != 0 and (tmp_path / "student.partial" / "checkpoint").is_dir()
    monkeypatch.setattr(student_train, "write_json", real)
    resumed = run(*args, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at step" in resumed.output and "from the cache" in resumed.output
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    texts = wiki_text_file.read_text().splitlines()[:50]
    teacher = SentenceEncoder.load(tiny_model_dir).encode(texts)
    student = SentenceEncoder.load(out).encode(texts)
    start, _ = student_from_teacher(tiny_model_dir, StudentConfig(keep_layers="0"))
    from semsearch.encoder.inference import embed

    before = embed(start, SentenceEncoder.load(tiny_model_dir).tokenizer, texts)
    assert (student * teacher).sum(1).mean() > (before * teacher).sum(1).mean()


def test_a_layer_the_teacher_lacks_is_a_clear_line(tiny_model_dir, tmp_path):
    result = run("distill", "--teacher", tiny_model_dir, "--preset", "distilled",
                 "--set", "keep_layers=0,7", "--out", tmp_path / "s")
    assert result.exit_code != 0 and "the teacher has layers 0 to 1" in result.output
    assert "Traceback" not in result.output


def test_a_static_teacher_cannot_start_a_transformer_student(static_model_dir, tmp_path):
    with pytest.raises(Exception, match="static model"):
        student_from_teacher(static_model_dir, StudentConfig())
