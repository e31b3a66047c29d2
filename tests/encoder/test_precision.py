"""int8 encoding: close to fp32 on real sentences, same output contract, CPU only."""

import numpy as np
import pytest

from semsearch import api
from semsearch.encoder import SentenceEncoder
from semsearch.errors import ConfigError


@pytest.fixture(scope="module")
def sentences(data_dir) -> list[str]:
    from semsearch.data import load_stsb

    rows = load_stsb("test", data_dir)[:100]
    return list(dict.fromkeys(t for r in rows for t in (r.sentence1, r.sentence2)))


def test_int8_vectors_are_close_to_fp32(tiny_model_dir, sentences):
    fp32 = SentenceEncoder.load(tiny_model_dir, device="cpu")
    int8 = SentenceEncoder.load(tiny_model_dir, precision="int8")
    assert int8.precision == "int8" and fp32.precision == "fp32"
    assert int8.device.type == "cpu" and int8.fingerprint == fp32.fingerprint
    a, b = fp32.encode(sentences), int8.encode(sentences, batch_size=16)
    assert b.shape == a.shape == (len(sentences), fp32.dim)
    assert b.dtype == np.float32 and b.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(1).min() >= 0.99
    assert not np.array_equal(a, b)  # it really is another computation


def test_int8_quantizes_every_linear_layer_but_the_feed_forward_outputs(tiny_model_dir):
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    int8 = SentenceEncoder.load(tiny_model_dir, precision="int8").model
    fp32 = SentenceEncoder.load(tiny_model_dir).model  # unaffected by the int8 load before it
    linear = {n for n, m in fp32.named_modules() if isinstance(m, torch.nn.Linear)}
    kept = {n for n in linear if n.endswith("mlp.2")}
    assert kept and len(kept) == fp32.config.layers
    quantized = {n for n, m in int8.named_modules() if isinstance(m, DynamicInt8Linear)}
    assert quantized == linear - kept
    assert {n for n, m in int8.named_modules() if type(m) is torch.nn.Linear} == kept


@pytest.mark.parametrize("device", ["cuda", "mps", "cuda:0"])
def test_int8_is_refused_off_the_cpu(tiny_model_dir, device):
    with pytest.raises(ConfigError, match="CPU only"):
        SentenceEncoder.load(tiny_model_dir, device=device, precision="int8")


def test_unknown_precision_is_refused(tiny_model_dir):
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        SentenceEncoder.load(tiny_model_dir, precision="fp16")


def test_api_load_keeps_one_encoder_per_precision(tiny_model_dir):
    fp32, int8 = api.load(tiny_model_dir), api.load(tiny_model_dir, precision="int8")
    assert fp32 is not int8 and int8.precision == "int8"
    assert api.load(tiny_model_dir, precision="int8") is int8
