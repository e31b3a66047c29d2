"""Vector indexes over normalised embeddings: FAISS, a SQLite document store and a manifest.

numpy in, numpy out. This package imports faiss, numpy and sqlite3, never torch, click or the
encoder; the hand-off is a float32, C-contiguous (n, d) L2-normalised array whose row i is the
vector of row id i.
"""

import sys as _sys
from types import ModuleType as _ModuleType

from semsearch.index.builder import add_rows, build_index, training_sample
from semsearch.index.faiss_index import (
    add_vectors,
    create_index,
    read_index,
    remove_vectors,
    search_vectors,
    supports_removal,
    train_index,
    write_index,
)
from semsearch.index.folder import default_index_dir, indexes_dir, resolve_index_dir
from semsearch.index.manifest import FORMAT_VERSION, Manifest
from semsearch.index.merge import best_per_document
from semsearch.index.metrics import exact_search, recall_at_k
from semsearch.index.recipe import IndexRecipe, choose_recipe, estimate_memory, parse_memory
from semsearch.index.search_index import Hit, SearchIndex, search_with_recipe
from semsearch.index.store import Chunk, DocumentStore
from semsearch.index.vector_file import VectorFile, rerank_exact
from semsearch.index.writer import IndexWriter, add_lexical, remove_documents, set_rescore

__all__ = [
    "FORMAT_VERSION",
    "Chunk",
    "DocumentStore",
    "Hit",
    "IndexRecipe",
    "IndexWriter",
    "Manifest",
    "SearchIndex",
    "VectorFile",
    "add_lexical",
    "add_rows",
    "add_vectors",
    "best_per_document",
    "build_index",
    "choose_recipe",
    "create_index",
    "default_index_dir",
    "estimate_memory",
    "exact_search",
    "indexes_dir",
    "parse_memory",
    "read_index",
    "recall_at_k",
    "remove_documents",
    "set_rescore",
    "remove_vectors",
    "rerank_exact",
    "resolve_index_dir",
    "search_vectors",
    "search_with_recipe",
    "supports_removal",
    "train_index",
    "training_sample",
    "write_index",
]


class _CallablePackage(_ModuleType):
    """`semsearch.index` is this package and also the public function `semsearch.index(...)`
    (the `semsearch index` command, semsearch/indexes.py): Python binds a subpackage's name on
    its parent once it is imported, so one name can only be both this way. Calling the package
    calls the function; everything else is the package."""

    def __call__(self, *args, **kwargs):
        from semsearch.indexes import index

        return index(*args, **kwargs)

    @property
    def __signature__(self):
        import inspect

        from semsearch.indexes import index

        return inspect.signature(index)


_sys.modules[__name__].__class__ = _CallablePackage
