"""Corpus files in (text, JSONL, CSV/TSV, gzipped or not) and documents cut to the encoder window."""

from semsearch.corpora.chunking import ChunkConfig, chunk_documents, split_text
from semsearch.corpora.readers import (
    ERROR_MODES,
    FORMATS,
    CorpusReader,
    Document,
    ReaderOptions,
    detect_format,
    file_stem,
)

__all__ = [
    "ERROR_MODES",
    "FORMATS",
    "ChunkConfig",
    "CorpusReader",
    "Document",
    "ReaderOptions",
    "chunk_documents",
    "detect_format",
    "file_stem",
    "split_text",
]
