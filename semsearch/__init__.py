"""semsearch: train a sentence encoder from scratch, evaluate it, search a corpus with it.

Every command of the `semsearch` command line is a function here, taking the command's options
under the names of its flags and returning the report the command prints:

    import semsearch
    semsearch.train(preset="quick")                      # semsearch train --preset quick
    semsearch.index("corpora/docs.txt")                  # semsearch index corpora/docs.txt
    semsearch.query("Machine learning and AI", k=2)      # semsearch query "..." -k 2

Each is imported on first use, so `import semsearch` stays light.
"""

__version__ = "0.1.0"

# public name -> the module that holds it (the one place each command's work lives)
_API = {
    "load": "semsearch.api",
    "encode": "semsearch.api",
    "similarity": "semsearch.api",
    "top_k": "semsearch.api",
    "query": "semsearch.api",
    "embed": "semsearch.api",
    "train": "semsearch.models",
    "distill": "semsearch.models",
    "adapt": "semsearch.models",
    "import_model": "semsearch.models",
    "export": "semsearch.models",
    "index": "semsearch.index",  # the package, callable as the function (index/__init__.py)
    "remove": "semsearch.indexes",
    "check": "semsearch.indexes",
    "evaluate": "semsearch.evaluation",
    "similarity_pairs": "semsearch.evaluation",
    "plot": "semsearch.evaluation",
}


def __getattr__(name: str):
    if name in _API:
        import importlib

        module = importlib.import_module(_API[name])
        return module if name == "index" else getattr(module, name)
    raise AttributeError(f"module 'semsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
