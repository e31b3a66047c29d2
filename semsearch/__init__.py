"""semsearch: train a sentence encoder from scratch, evaluate it, search a corpus with it."""

__version__ = "0.1.0"

# The Python API (semsearch/api.py), imported on first use so `import semsearch` stays light.
_API = ("load", "encode", "similarity", "top_k", "query")


def __getattr__(name: str):
    if name in _API:
        from semsearch import api

        return getattr(api, name)
    raise AttributeError(f"module 'semsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
