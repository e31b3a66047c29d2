"""Data loss: only a provable index or model folder is ever replaced; a user's files never go."""

from __future__ import annotations

import json

import pytest
from faults_support import cli, folder_bytes, write_corpus

from semsearch.encoder.store import check_model_replaceable, publish
from semsearch.errors import ModelError
from semsearch.index.folder import is_index_folder

INDEX_MANIFEST = {"format": "semsearch-index", "format_version": 1}


def not_an_index(root, kind):
    """Folders that hold something and are not (only) a semsearch index."""
    folder = root / kind
    folder.mkdir()
    if kind == "webapp":  # the audit's example: a manifest.json of another program
        (folder / "src").mkdir()
        (folder / "manifest.json").write_text('{"name": "app"}')
        (folder / "important.txt").write_text("precious")
    elif kind == "index_plus_user_file":
        (folder / "manifest.json").write_text(json.dumps(INDEX_MANIFEST))
        (folder / "notes.txt").write_text("mine")
    elif kind == "marker_without_version":
        (folder / "manifest.json").write_text('{"format": "semsearch-index"}')
    elif kind == "version_as_string":
        (folder / "manifest.json").write_text('{"format": "semsearch-index", "format_version": "1"}')
    elif kind == "manifest_is_a_folder":
        (folder / "manifest.json").mkdir()
        (folder / "manifest.json" / "keep").write_text("x")
    elif kind == "no_manifest":
        (folder / "index.faiss").write_text("not faiss")
    elif kind == "corrupt_manifest":
        (folder / "manifest.json").write_text("{not json")
        (folder / "documents.sqlite").write_text("mine")
    return folder


NOT_INDEXES = ["webapp", "index_plus_user_file", "marker_without_version", "version_as_string",
               "manifest_is_a_folder", "no_manifest", "corrupt_manifest"]


@pytest.mark.parametrize("kind", NOT_INDEXES)
def test_index_out_refuses_a_folder_that_is_not_provably_an_index(workspace, kind):
    folder = not_an_index(workspace, kind)
    before = folder_bytes(folder)
    corpus = write_corpus(workspace / "docs.txt", 20)
    result = cli("index", corpus, "--out", folder)
    assert result.exit_code == 1, result.output
    assert "not a semsearch index folder" in result.output and "Traceback" not in result.output
    assert folder_bytes(folder) == before and not is_index_folder(folder)
    assert [p.name for p in workspace.iterdir() if ".tmp-" in p.name] == []


def test_index_out_refuses_a_file_and_a_link(workspace):
    corpus = write_corpus(workspace / "docs.txt", 5)
    target = workspace / "notes.txt"
    target.write_text("mine")
    assert cli("index", corpus, "--out", target).exit_code == 1
    assert target.read_text() == "mine"
    real = workspace / "real"
    real.mkdir()
    (real / "keep.txt").write_text("mine")
    link = workspace / "link"
    link.symlink_to(real)
    assert cli("index", corpus, "--out", link).exit_code == 1
    assert (real / "keep.txt").read_text() == "mine" and link.is_symlink()


def test_an_index_and_an_empty_folder_are_replaced(workspace):
    corpus = write_corpus(workspace / "docs.txt", 5)
    (workspace / "empty").mkdir()
    assert cli("index", corpus, "--out", "empty").exit_code == 0
    assert is_index_folder(workspace / "empty")
    assert cli("index", corpus, "--out", "empty").exit_code == 0  # an index is replaced


def test_a_corpus_named_like_the_pointer_keeps_the_default_index(workspace):
    """`LATEST.txt` once became indexes/LATEST and replaced the pointer file."""
    write_corpus(workspace / "docs.txt", 5)
    write_corpus(workspace / "LATEST.txt", 5, prefix="latest")
    assert cli("index", "docs.txt").exit_code == 0
    assert cli("index", "LATEST.txt").exit_code == 0
    assert (workspace / "indexes" / "LATEST").is_dir()
    assert (workspace / "indexes" / ".semsearch-latest").read_text().strip() == "LATEST"
    assert cli("query", "doc 3", "--index", "docs").exit_code == 0
    dotted = write_corpus(workspace / ".semsearch-latest.txt", 3)
    assert cli("index", dotted).exit_code == 0  # lands in indexes/semsearch-latest
    assert (workspace / "indexes" / ".semsearch-latest").is_file()


def model_folder(root, extra=None):
    folder = root / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "model": {"hidden": 8}}))
    (folder / "model.safetensors").write_bytes(b"w")
    (folder / "tokenizer.json").write_text("{}")
    if extra:
        (folder / extra).write_text("mine")
    return folder


@pytest.mark.parametrize("case", ["other_config", "user_file", "subfolder", "no_weights"])
def test_overwrite_replaces_only_a_provable_model_folder(tmp_path, case):
    if case == "other_config":
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "config.json").write_text('{"name": "webapp"}')
        (folder / "model.safetensors").write_bytes(b"w")
    elif case == "user_file":
        folder = model_folder(tmp_path, "thesis.tex")
    elif case == "subfolder":
        folder = model_folder(tmp_path)
        (folder / "src").mkdir()
    else:
        folder = model_folder(tmp_path)
        (folder / "model.safetensors").unlink()
    before = folder_bytes(folder)
    partial = tmp_path / "new.partial"
    partial.mkdir()
    with pytest.raises(ModelError, match="not a semsearch model folder"):
        publish(partial, folder, overwrite=True)
    assert folder_bytes(folder) == before and partial.is_dir()


def test_overwrite_replaces_a_model_and_spares_a_users_old_folder(tmp_path):
    folder = model_folder(tmp_path)
    (folder / "eval.json").write_text("{}")
    users = tmp_path / "model.old"  # publish once used <out>.old as scratch and deleted it
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    check_model_replaceable(folder)
    partial = tmp_path / "new.partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    publish(partial, folder, overwrite=True)
    assert (folder / "config.json").read_text() == "{}" and (users / "keep.txt").is_file()
