"""`semsearch embed`: a corpus file's vectors with their ids, streamed to disk in bounded memory,
in the layouts embedding-reader and autofaiss read:

* `vectors.npy` (float32, (n, dim)) plus `vectors.ids.txt` (one id a line, row i = line i);
* `vectors.parquet`: columns `id` (string) and `embedding` (fixed-size list of float32),
  one row group a window of documents.

One vector a document: the encoder reads its first max_seq_len tokens (`semsearch index` splits
long documents into chunks instead). Both files are written under temporary names and renamed
when complete; an existing output is replaced only when asked.
"""

from __future__ import annotations

import ast
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from semsearch.corpora import CorpusReader, ReaderOptions
from semsearch.errors import DataError
from semsearch.permissions import set_default_mode
from semsearch.progress import Log, Meter, resolve_log
from semsearch.write_errors import write_failed

# documents embedded and written at a time; bounds memory whatever the corpus size
WINDOW = 2048
# the .npy header is written with room for any row count, then rewritten with the real one
NPY_HEADER_BYTES = 128
FORMATS = ("npy", "parquet")


class TextEmbedder(Protocol):
    dim: int

    def encode(self, texts: list[str], batch_size: int = 64,
               progress: bool = False) -> np.ndarray: ...


@dataclass
class EmbedReport:
    out: Path
    ids: Path | None  # the ids file of the npy layout
    format: str
    documents: int = 0
    dim: int = 0
    lines_skipped: int = 0

    def to_dict(self) -> dict:
        return {"out": str(self.out), "ids": str(self.ids) if self.ids else None,
                "format": self.format, "documents": self.documents, "dim": self.dim,
                "lines_skipped": self.lines_skipped}


def output_format(out: Path) -> str:
    """npy or parquet, from the file name.

    >>> output_format(Path("v.npy")), output_format(Path("v.parquet"))
    ('npy', 'parquet')
    """
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise DataError(f"--out {out}: give a .npy or a .parquet file name")
    return suffix


def ids_path(out: Path) -> Path:
    """The ids file beside an .npy: vectors.npy -> vectors.ids.txt."""
    return Path(out).with_suffix(".ids.txt")


def embed_corpus(corpus: Path, embedder: TextEmbedder, out: Path,
                 options: ReaderOptions | None = None, batch_size: int = 64,
                 overwrite: bool = False, progress: bool | None = None,
                 log: Log | None = None) -> EmbedReport:
    """Embed every document of `corpus` into `out` (.npy + .ids.txt, or .parquet): a bar on a
    terminal (`progress`), otherwise a line through `log` every so often (bytes read, time
    left) and one with the time at the end, so a long corpus is never silent."""
    out = Path(out)
    kind = output_format(out)
    targets = [out] + ([ids_path(out)] if kind == "npy" else [])
    for target in targets:
        if target.exists() and not overwrite:
            raise DataError(f"{target} exists; pass --overwrite to replace it or choose --out")
    reader = CorpusReader(Path(corpus), options or ReaderOptions())
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        writer = (_NpyWriter if kind == "npy" else _ParquetWriter)(out, embedder.dim)
    except BaseException as error:
        failed = write_failed(error, Path(out), "a file already there is untouched")
        if failed is not None:
            raise failed from None
        raise
    report = EmbedReport(out, targets[1] if kind == "npy" else None, kind, dim=embedder.dim)
    from tqdm import tqdm

    shown = progress if progress is not None else sys.stderr.isatty()
    meter = None if shown else Meter(reader.size, f"embedding {reader.path.name}",
                                     resolve_log(log), unit="byte")
    try:
        with tqdm(total=reader.size, desc=f"embedding {reader.path.name}", unit="B",
                  unit_scale=True, disable=not shown, leave=False) as bar:
            ids: list[str] = []
            texts: list[str] = []

            def flush(end: bool = False) -> None:
                if texts:
                    vectors = np.asarray(embedder.encode(texts, batch_size=batch_size),
                                         dtype=np.float32)
                    writer.write(ids, vectors)
                    report.documents += len(texts)
                    ids.clear()
                    texts.clear()
                # the reader closes its file at the end (position 0 again): the whole file is read
                read = reader.size if end else max(reader.position, bar.n)
                bar.update(read - bar.n)
                if meter is not None:
                    meter.update(read - meter.done)

            for document in reader:
                ids.append(document.id)
                texts.append(document.text)
                if len(texts) >= WINDOW:
                    flush()
            flush(end=True)
        if meter is not None:
            meter.close()
        if report.documents == 0:
            raise DataError(f"corpus {reader.path} has no documents; give a file with one "
                            "document a line")
        writer.finish()
    except BaseException as error:
        writer.discard()
        failed = write_failed(error, Path(out), "a file already there is untouched")
        if failed is not None:
            raise failed from None
        raise
    report.lines_skipped = len(reader.skipped)
    return report


class _NpyWriter:
    """Rows appended to a temporary .npy whose header is fixed up at the end; ids alongside."""

    def __init__(self, out: Path, dim: int) -> None:
        self.out, self.dim, self.rows = out, dim, 0
        self.ids_out = ids_path(out)
        self.handle = self.ids_handle = self.ids_temporary = None
        self.temporary = _temporary(out)
        try:
            self.ids_temporary = _temporary(self.ids_out)
            self.handle = open(self.temporary, "wb")
            self.ids_handle = open(self.ids_temporary, "w", encoding="utf-8", newline="\n")
            self.handle.write(_npy_header(0, dim))
        except BaseException:
            self.discard()  # a temporary made before the failure is not left behind
            raise

    def write(self, ids: list[str], vectors: np.ndarray) -> None:
        for doc_id in ids:
            if "\n" in doc_id or "\r" in doc_id:
                raise DataError(f"document id {doc_id!r} holds a line break, which the ids file "
                                "cannot; write --out vectors.parquet instead")
        self.ids_handle.write("".join(f"{doc_id}\n" for doc_id in ids))
        self.handle.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self.rows += len(vectors)

    def finish(self) -> None:
        self.handle.seek(0)
        self.handle.write(_npy_header(self.rows, self.dim))
        self.handle.close()
        self.ids_handle.close()
        # the two renames: the old vectors are kept (a hard link) until the ids are in place
        # too, so a failure between them restores the old pair rather than mixing the two
        backup = None
        if self.out.exists():
            backup = _temporary(self.out)
            try:
                os.unlink(backup)
                os.link(self.out, backup)
            except OSError:
                backup.unlink(missing_ok=True)
                backup = None
        try:
            os.replace(self.temporary, self.out)
            os.replace(self.ids_temporary, self.ids_out)
        except BaseException:
            if backup is not None and not self.temporary.exists():
                os.replace(backup, self.out)
            raise
        finally:
            if backup is not None:
                backup.unlink(missing_ok=True)

    def discard(self) -> None:
        for handle in (self.handle, self.ids_handle):
            if handle is not None:
                handle.close()
        for path in (self.temporary, self.ids_temporary):
            if path is not None:
                path.unlink(missing_ok=True)


class _ParquetWriter:
    """One row group a window: `id` string, `embedding` fixed-size list of float32."""

    def __init__(self, out: Path, dim: int) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError("writing .parquet needs pyarrow: `pip install pyarrow`, or write "
                            "--out vectors.npy") from None
        self.pa, self.out, self.temporary = pa, out, _temporary(out)
        self.schema = pa.schema([("id", pa.string()),
                                 ("embedding", pa.list_(pa.float32(), dim))])
        self.writer = pq.ParquetWriter(str(self.temporary), self.schema)

    def write(self, ids: list[str], vectors: np.ndarray) -> None:
        pa = self.pa
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        embedding = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        self.writer.write_table(pa.Table.from_arrays([pa.array(ids, pa.string()), embedding],
                                                     schema=self.schema))

    def finish(self) -> None:
        self.writer.close()
        os.replace(self.temporary, self.out)

    def discard(self) -> None:
        try:
            self.writer.close()
        finally:
            self.temporary.unlink(missing_ok=True)


def _temporary(path: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    set_default_mode(name)  # mkstemp makes it 0600; the output is an ordinary file
    return Path(name)


def _npy_header(rows: int, dim: int) -> bytes:
    """An NPY 1.0 header for a C-order (rows, dim) little-endian float32 array, padded with
    spaces to NPY_HEADER_BYTES so it can be rewritten in place once the row count is known.

    >>> len(_npy_header(0, 384)) == len(_npy_header(10**12, 384)) == NPY_HEADER_BYTES
    True
    """
    text = repr({"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
    assert ast.literal_eval(text)["shape"] == (rows, dim)
    room = NPY_HEADER_BYTES - 10  # magic (6) + version (2) + header length (2)
    body = text.ljust(room - 1) + "\n"
    if len(body) != room:
        raise DataError(f"{rows} x {dim} does not fit an .npy header; write .parquet instead")
    return b"\x93NUMPY\x01\x00" + room.to_bytes(2, "little") + body.encode("latin1")
