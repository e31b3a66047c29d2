"""Encoding any Unicode string on every backend (torch fp32 and int8, numpy, ONNX Runtime fp32
and int8): one finite unit vector, or, for a lone surrogate, one clear DataError."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from semsearch.errors import DataError  # noqa: E402

BACKENDS = ["torch", "torch-int8", "numpy", "onnx", "onnx-int8"]
# every code point, surrogates (Cs) included; short texts mostly, some long
TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=200)


@pytest.fixture(scope="module")
def encoders(tiny_model_dir):
    from semsearch.encoder.numpy_encoder import NumpyEncoder
    from semsearch.encoder.sentence_encoder import SentenceEncoder

    loaded = {"torch": SentenceEncoder.load(tiny_model_dir, device="cpu"),
              "torch-int8": SentenceEncoder.load(tiny_model_dir, precision="int8"),
              "numpy": NumpyEncoder.load(tiny_model_dir)}
    try:
        from semsearch.encoder.onnx_encoder import OnnxEncoder, available
    except ImportError:
        available = None
    if available is not None and available():
        loaded["onnx"] = OnnxEncoder.load(tiny_model_dir)
        loaded["onnx-int8"] = OnnxEncoder.load(tiny_model_dir, precision="int8")
    return loaded


def has_lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


@pytest.mark.parametrize("backend", BACKENDS)
@given(text=TEXT)
@example(text="")
@example(text="\x00\x01\x1b[2J\x7f\u200b\ufeff")
@example(text="\ud800")
@example(text="a\udfffb")
@example(text="ẞ 漢字 " * 20_000)  # 10^5 characters
@example(text="x" * 100_000)
def test_any_string_gives_one_unit_vector_or_a_clear_error(encoders, backend, text):
    if backend not in encoders:
        pytest.skip(f"{backend}: ONNX Runtime is not installed")
    encoder = encoders[backend]
    try:
        vectors = encoder.encode([text])
    except DataError as error:
        assert has_lone_surrogate(text) and "lone surrogate" in str(error)
        return
    assert not has_lone_surrogate(text)
    assert vectors.shape == (1, encoder.dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert abs(float(np.linalg.norm(vectors[0])) - 1.0) < 1e-3
