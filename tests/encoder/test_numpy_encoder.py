import numpy as np

from semsearch.encoder import NumpyEncoder, SentenceEncoder

TEXTS = ["Machine learning and AI", "A man is playing a guitar in the park.", "x",
         "Two dogs run across the snowy field while a child watches them from far away."]


def test_numpy_forward_matches_torch(tiny_model_dir):
    torch_vectors = SentenceEncoder.load(tiny_model_dir).encode(TEXTS)
    light = NumpyEncoder.load(tiny_model_dir)
    numpy_vectors = light.encode(TEXTS, batch_size=2)
    assert numpy_vectors.dtype == np.float32 and numpy_vectors.flags["C_CONTIGUOUS"]
    assert ((torch_vectors * numpy_vectors).sum(1) >= 0.9999).all()
    np.testing.assert_allclose(numpy_vectors, torch_vectors, atol=1e-5)
    assert light.fingerprint == SentenceEncoder.load(tiny_model_dir).fingerprint
    assert light.dim == torch_vectors.shape[1]


def test_gelu_matches_erf():
    import math

    from semsearch.encoder.numpy_encoder import _gelu

    xs = np.linspace(-6, 6, 1001, dtype=np.float32)
    exact = np.array([0.5 * x * (1 + math.erf(x / math.sqrt(2))) for x in xs.astype(float)])
    np.testing.assert_allclose(_gelu(xs), exact, atol=2e-6)
