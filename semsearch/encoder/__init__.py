"""The sentence encoder: tokenizer, model, loss, batching, training loop, model folders.

Imports torch; never faiss, click or the index.
"""

from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.presets import PRESETS, RunConfig, preset
from semsearch.encoder.sentence_encoder import SentenceEncoder
from semsearch.encoder.store import resolve_model

__all__ = ["PRESETS", "Encoder", "EncoderConfig", "RunConfig", "SentenceEncoder", "preset",
           "resolve_model"]
