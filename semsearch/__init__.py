"""semsearch: train a sentence encoder from scratch, evaluate it, search a corpus with it."""

__version__ = "0.1.0"
