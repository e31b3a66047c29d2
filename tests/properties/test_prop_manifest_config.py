"""The index manifest and the model config.json: any JSON value, or a real one with any field
replaced by any JSON value (or dropped), gives a loaded object that works, or one clear error
(IndexError_ / ModelError), never another exception."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from click.testing import CliRunner  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from semsearch.cli import main  # noqa: E402
from semsearch.errors import SemsearchError  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)
DROP = object()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("manifest")
    (folder / "docs.jsonl").write_text("".join(
        json.dumps({"id": f"d{i}", "text": text, "lang": "en"}) + "\n"
        for i, text in enumerate(["cats purr", "dogs bark", "the tide rises", "birds sing"])))
    result = CliRunner().invoke(main, ["index", str(folder / "docs.jsonl"), "--model",
                                       str(tiny_model_dir), "--out", str(folder / "idx")],
                                env={"SEMSEARCH_INDEXES": str(folder / "indexes")})
    assert result.exit_code == 0, result.output
    return folder / "idx"


def mutate(document: dict, path: list[str], value) -> dict:
    """`document` with the field at `path` replaced by `value` (or dropped for DROP)."""
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if value is DROP:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return copy


def fields(document: dict, prefix=()) -> list[list[str]]:
    """The path of every field, one level into nested objects (recipe, chunking, lexical)."""
    found = []
    for key, value in document.items():
        found.append([*prefix, key])
        if isinstance(value, dict) and not prefix:
            found += fields(value, (key,))
    return found


def open_and_search(folder: Path) -> None:
    from semsearch.index import SearchIndex

    index = SearchIndex.open(folder)
    try:
        if index.lexical is not None:
            index.search_lexical(["cats"], 2)
    finally:
        index.close()


@given(data=st.data())
def test_a_manifest_with_any_field_changed_opens_or_is_one_clear_error(index_dir, data):
    manifest = json.loads((index_dir / "manifest.json").read_text())
    path = data.draw(st.sampled_from(fields(manifest)))
    value = data.draw(st.one_of(st.just(DROP), JSON))
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "idx"
        shutil.copytree(index_dir, folder)
        (folder / "manifest.json").write_text(json.dumps(mutate(manifest, path, value)))
        try:
            open_and_search(folder)
        except SemsearchError as error:
            assert str(error) and "\n" not in str(error)


@given(value=JSON)
def test_a_manifest_of_any_json_value_is_one_clear_error(index_dir, value):
    from semsearch.index.manifest import Manifest

    with tempfile.TemporaryDirectory() as temporary:
        path = Path(temporary) / "manifest.json"
        path.write_text(json.dumps(value))
        with pytest.raises(SemsearchError):
            Manifest.read(path)


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("config") / "model"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("onnx"))
    return folder


@given(data=st.data())
def test_a_model_config_with_any_field_changed_loads_or_is_one_clear_error(model_copy, data):
    from semsearch.encoder.numpy_encoder import NumpyEncoder
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    config = json.loads((model_copy / "config.json").read_text())
    original = (model_copy / "config.json").read_text()
    path = data.draw(st.sampled_from(fields(config)))
    value = data.draw(st.one_of(st.just(DROP), JSON))
    whole = data.draw(st.booleans().map(lambda b: b and value is not DROP))
    try:
        (model_copy / "config.json").write_text(
            json.dumps(value if whole else mutate(config, path, value)))
        for load in (NumpyEncoder.load, SentenceEncoder.load):
            try:
                encoder = load(model_copy)
                vector = encoder.encode(["cats purr"])
            except SemsearchError as error:
                assert str(error) and "\n" not in str(error)
                continue
            assert np.isfinite(vector).all()
    finally:
        (model_copy / "config.json").write_text(original)
