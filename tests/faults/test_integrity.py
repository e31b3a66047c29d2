"""What is loaded is checked: damaged index files and manifests, model configs out of bounds, a
tokenizer that does not fit the weights, and a fingerprint that covers everything that
determines a vector. Read-only commands never write into an index folder."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from faults_support import (
    cli,
    folder_bytes,
    workspace,  # noqa: F401 - a fixture
    write_corpus,
)

from semsearch.embedder import check_model
from semsearch.encoder.numpy_encoder import NumpyEncoder
from semsearch.encoder.store import model_fingerprints
from semsearch.errors import IndexError_, ModelError
from semsearch.index import SearchIndex


@pytest.fixture
def index(workspace):
    write_corpus(workspace / "docs.txt", 40)
    assert cli("index", "docs.txt", "--type", "ivf").exit_code == 0
    return workspace / "indexes" / "docs"


def edit_manifest(folder, **changes):
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            manifest[outer][inner] = value
        else:
            manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "changes",
    [{"recipe": "IVF4,Flat"}, {"recipe": None}, {"recipe": []}, {"count": "40"}, {"count": -1},
     {"dim": True}, {"corpora": {"a": 1}}, {"corpora": [1]}, {"recipe.factory": 7},
     {"recipe.nprobe": "all"}, {"recipe.rerank": -3}, {"model_fingerprint": None}],
    ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()),
)
def test_manifest_fields_of_the_wrong_type_are_clean_errors(index, changes):
    edit_manifest(index, **changes)
    with pytest.raises(IndexError_, match="manifest.json"):
        SearchIndex.open(index)
    result = cli("query", "doc 3")
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_metadata_that_is_not_json_is_a_clean_error(workspace):
    (workspace / "m.jsonl").write_text(json.dumps({"text": "doc with meta", "tag": "x"}) + "\n")
    assert cli("index", "m.jsonl").exit_code == 0
    store = workspace / "indexes" / "m" / "documents.sqlite"
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE documents SET metadata = '{not json'")
    result = cli("query", "doc")
    assert result.exit_code == 1 and "metadata that is not a JSON object" in result.output


@pytest.mark.parametrize("damage", ["empty_store", "random_store", "truncated_faiss",
                                    "missing_store", "short_vectors"])
def test_a_query_never_writes_into_a_damaged_index(workspace, damage):
    write_corpus(workspace / "docs.txt", 60)
    assert cli("index", "docs.txt", "--type", "ivfpq").exit_code == 0
    folder = workspace / "indexes" / "docs"
    if damage == "empty_store":
        (folder / "documents.sqlite").write_bytes(b"")
    elif damage == "random_store":
        (folder / "documents.sqlite").write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "truncated_faiss":
        data = (folder / "index.faiss").read_bytes()
        (folder / "index.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "missing_store":
        (folder / "documents.sqlite").unlink()
    else:
        data = (folder / "vectors.f32").read_bytes()
        (folder / "vectors.f32").write_bytes(data[:100])
    before = folder_bytes(folder)
    result = cli("query", "doc 3")
    assert result.exit_code == 1 and "rebuild" in result.output and "Traceback" not in result.output
    assert folder_bytes(folder) == before  # the old code wrote a schema into an empty store
    assert cli("check").exit_code == 1
    assert folder_bytes(folder) == before


def model_folder(tmp_path, tokens=20, **model):
    """A model folder with a real tokenizer and safetensors file (weights not usable: these
    tests stop before the weights are used)."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models

    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    settings = {"vocab_size": 30, "hidden": 8, "layers": 1, "heads": 2, "ff": 16,
                "max_seq_len": 16, **model}
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "model": settings}))
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"t{i}": i for i in range(2, tokens)}}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(folder / "tokenizer.json"))
    save_file({"x": np.zeros(3, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize(
    ("field", "value"),
    [("layers", 1_000_000), ("experts", 1_000_000), ("heads", 0), ("heads", 3), ("hidden", -8),
     ("vocab_size", 10**12), ("max_seq_len", 1), ("ff", "wide"), ("layers", True),
     ("dropout", float("nan")), ("layer_norm_eps", 0), ("experts", 1), ("prenorm", "yes"),
     ("hidden", 16384), ("ff", 65536), ("layers", None)],
)
def test_model_config_fields_out_of_bounds_are_refused_by_name(tmp_path, field, value):
    wide = {"hidden": 4096, "heads": 8, "layers": 64} if (field, value) == ("ff", 65536) else {}
    folder = model_folder(tmp_path, **{**wide, field: value})
    with pytest.raises(ModelError) as error:
        NumpyEncoder.load(folder)
    message = str(error.value)
    assert "config.json" in message and "\n" not in message
    assert f"'{field}'" in message or "parameters" in message


def test_token_ids_past_the_embedding_table_are_refused(tmp_path):
    folder = model_folder(tmp_path, tokens=50, vocab_size=30)
    with pytest.raises(ModelError, match="token ids past the embedding table"):
        NumpyEncoder.load(folder)


def test_the_fingerprint_covers_weights_tokenizer_and_config(tmp_path):
    folder = model_folder(tmp_path)
    first, weights_only = model_fingerprints(folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["layers"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    changed_config, same_weights = model_fingerprints(folder)
    model_folder(tmp_path, tokens=21)  # a tokenizer with one more token, same config
    changed_tokenizer, _ = model_fingerprints(folder)
    assert len({first, changed_config, changed_tokenizer}) == 3
    assert weights_only == same_weights  # what an index built before recorded


class Embedder:
    dim, name = 8, "m"

    def __init__(self, fingerprint, weights_fingerprint):
        self.fingerprint, self.weights_fingerprint = fingerprint, weights_fingerprint


def test_indexes_built_before_keep_working_and_mismatches_are_refused(tmp_path):
    from semsearch.index.manifest import Manifest

    folder = model_folder(tmp_path)
    full, weights_only = model_fingerprints(folder)
    legacy = Manifest("m", weights_only, str(folder), 8, 0, 0, 0, {"factory": "Flat"}, {})
    check_model(legacy, Embedder(full, weights_only), tmp_path)  # accepted
    current = Manifest("m", full, str(folder), 8, 0, 0, 0, {"factory": "Flat"}, {})
    check_model(current, Embedder(full, weights_only), tmp_path)
    with pytest.raises(IndexError_, match="was built with model"):
        check_model(current, Embedder("0" * 16, weights_only), tmp_path)  # new tokenizer/config
