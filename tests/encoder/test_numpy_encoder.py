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


def test_numpy_forward_matches_torch_for_mixture_of_experts():
    """Same arithmetic on an untrained MoE encoder (no data needed); the trained case is in
    test_train_moe.py."""
    from dataclasses import asdict
    from pathlib import Path

    import torch

    from semsearch.encoder.batching import pad
    from semsearch.encoder.model import Encoder, EncoderConfig

    config = EncoderConfig(vocab_size=50, hidden=32, layers=2, heads=4, ff=64, max_seq_len=16,
                           experts=4, expert_top_k=2)
    torch.manual_seed(0)
    model = Encoder(config).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.gate.weight.mul_(20)  # decisive routing, as after training
            block.mlp.w_out.mul_(50)  # experts that matter to the output
    ids, mask = pad([[2, 5, 6, 7, 8, 3], [2, 9, 3], [2, 11, 12, 13, 3]])
    with torch.no_grad():
        expected = model(ids, mask).numpy()
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    light = NumpyEncoder(weights, None, Path("moe"), {"model": asdict(config)}, "")
    got = light.forward(ids.numpy(), mask.numpy().astype(bool))
    assert ((got * expected).sum(1) >= 0.9999).all()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_layer_norm_eps_read_from_config(tiny_model_dir, tmp_path):
    """A post-LN model with BERT's eps matches torch; a config.json without the field still loads
    (as 1e-5, the value every model had before the field existed)."""
    import json
    import shutil

    import torch

    from semsearch.encoder.model import Encoder, EncoderConfig
    from semsearch.encoder.store import save_weights

    folder = tmp_path / "eps"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"].update(prenorm=False, layer_norm_eps=1e-12)
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    save_weights(Encoder(EncoderConfig(**config["model"])), folder / "model.safetensors")
    torch_vectors = SentenceEncoder.load(folder).encode(TEXTS)
    light = NumpyEncoder.load(folder)
    assert light.eps == 1e-12
    np.testing.assert_allclose(light.encode(TEXTS), torch_vectors, atol=1e-5)

    del config["model"]["layer_norm_eps"]
    (folder / "config.json").write_text(json.dumps(config))
    assert SentenceEncoder.load(folder).model.embedding_norm.eps == 1e-5
    assert NumpyEncoder.load(folder).eps == 1e-5
