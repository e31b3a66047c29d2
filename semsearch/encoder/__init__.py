"""The sentence encoder: tokenizer, model, loss, batching, training loop, model folders.

Imports torch (lazily: `semsearch.encoder.numpy_encoder` and `store` work without it); never
faiss, click or the index.
"""

from typing import Any

_EXPORTS = {
    "Encoder": "semsearch.encoder.model",
    "EncoderConfig": "semsearch.encoder.model",
    "PRESETS": "semsearch.encoder.presets",
    "RunConfig": "semsearch.encoder.presets",
    "preset": "semsearch.encoder.presets",
    "SentenceEncoder": "semsearch.encoder.sentence_encoder",
    "NumpyEncoder": "semsearch.encoder.numpy_encoder",
    "resolve_model": "semsearch.encoder.store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'semsearch.encoder' has no attribute {name!r}")
