"""The documents and their chunks in SQLite: looked up by row id without loading the corpus.

Two tables: `documents` (one a corpus document: its id, text hash, metadata) and `chunks`
(one a vector: row id -> document id, chunk number, chunk text). Row ids are the FAISS ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semsearch.errors import DataError, IndexError_, UnknownFieldError

TABLES = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,      -- of the text: finds exact duplicates on --append
    chunks INTEGER NOT NULL,
    metadata TEXT              -- JSON object of the corpus fields other than id and text
);
CREATE TABLE IF NOT EXISTS chunks (
    row INTEGER PRIMARY KEY,   -- the FAISS id
    doc_id TEXT NOT NULL,
    chunk INTEGER NOT NULL,    -- 0-based position within the document
    text TEXT NOT NULL
);
"""
# the lookups by text hash (--append's duplicates) and by document id (remove, filters); a fresh
# build loads the tables first and makes these at the end (sorting a million keys once was
# cheaper than inserting each into a growing tree)
INDEXES = """
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents (sha256);
CREATE INDEX IF NOT EXISTS chunks_doc_id ON chunks (doc_id);
"""
SCHEMA = TABLES + INDEXES


@dataclass(frozen=True)
class Chunk:
    """One indexed piece of a document, as a search hit reports it."""

    row: int
    doc_id: str
    chunk: int
    chunks: int  # how many chunks the document has
    text: str
    metadata: dict = field(default_factory=dict)


def metadata_condition(field_name: str) -> str:
    """The SQL test (two parameters: field name, value) that a document's metadata field equals a
    value, compared as text. json_extract is fast but its paths cannot quote every name; a name
    holding a quote, a backslash or a NUL (where SQLite's JSON path ends: "JSON path error")
    goes through json_each."""
    if '"' in field_name or "\\" in field_name or "\x00" in field_name:
        return ("EXISTS (SELECT 1 FROM json_each(d.metadata) j WHERE j.key = ? "
                "AND CAST(j.value AS TEXT) = ?)")
    return "CAST(json_extract(d.metadata, '$.\"' || ? || '\"') AS TEXT) = ?"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# KiB of SQLite page cache a writing connection keeps
WRITE_CACHE_KIB = 256 * 1024


class DocumentStore:
    """A SQLite file of documents and chunks; writes go in one transaction until `commit`."""

    def __init__(self, path: Path, read_only: bool = False, bulk: bool = False) -> None:
        """`bulk`: a build loading the tables, which makes the indexes with `make_indexes`
        once loaded (none is made here)."""
        self.path = Path(path)
        try:
            if read_only:  # queries never write into an index folder, not even a schema
                uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro"
                # an opened index kept by semsearch.query may be searched from another thread
                # (one search at a time: its caller holds the index's lock)
                self.connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self.connection = sqlite3.connect(str(self.path))
                self.connection.executescript(TABLES if bulk else SCHEMA)
                # a writer's store is in a staging folder that a crash leaves unused, so a
                # commit need not wait for the disk (a killed process still rolls back through
                # the journal); the larger page cache keeps the id and hash indexes' pages in
                # memory as a build grows (at 1M documents the default 2 MB cache thrashed)
                self.connection.execute("PRAGMA synchronous = OFF")
                self.connection.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
        except sqlite3.DatabaseError as error:
            raise IndexError_(
                f"document store {self.path} is corrupt ({error}); rebuild with "
                "`semsearch index CORPUS`"
            ) from None

    @classmethod
    def open_existing(cls, path: Path, read_only: bool = False,
                      bulk: bool = False) -> DocumentStore:
        if not Path(path).is_file():
            raise IndexError_(
                f"document store {path} is missing; rebuild with `semsearch index CORPUS`"
            )
        return cls(path, read_only=read_only, bulk=bulk)

    def make_indexes(self) -> None:
        """The lookup indexes a bulk load left out (see INDEXES)."""
        self.connection.executescript(INDEXES)

    def close(self) -> None:
        self.connection.close()

    def commit(self) -> None:
        self.connection.commit()

    def add_document(
        self, doc_id: str, text: str, chunks: Sequence[str], first_row: int, metadata: dict
    ) -> None:
        """Insert a document and its chunks at rows first_row, first_row + 1, ..."""
        try:
            self.connection.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?)",
                (doc_id, text_hash(text), len(chunks), json.dumps(metadata) if metadata else None),
            )
        except sqlite3.IntegrityError:
            raise DataError(
                f"document id {doc_id!r} appears twice; ids must be unique (check --id-field, "
                f"or `semsearch remove {doc_id}` first when appending a new version)"
            ) from None
        self.connection.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?)",
            [(first_row + i, doc_id, i, chunk) for i, chunk in enumerate(chunks)],
        )

    def add_documents(self, documents: Sequence[tuple[str, str, Sequence[str], int, dict]]
                      ) -> None:
        """Insert many (id, text, chunks, first row, metadata) documents in two statements;
        a repeated id raises DataError as `add_document` does, adding none of them."""
        connection = self.connection
        if not connection.in_transaction:  # else the savepoint's release would commit
            connection.execute("BEGIN")
        connection.execute("SAVEPOINT add_documents")
        try:
            connection.executemany(
                "INSERT INTO documents VALUES (?, ?, ?, ?)",
                [(doc_id, text_hash(text), len(chunks), json.dumps(metadata) if metadata else None)
                 for doc_id, text, chunks, _, metadata in documents])
            connection.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?)",
                [(first_row + i, doc_id, i, chunk)
                 for doc_id, _, chunks, first_row, _ in documents
                 for i, chunk in enumerate(chunks)])
        except sqlite3.IntegrityError:
            connection.execute("ROLLBACK TO add_documents")
            connection.execute("RELEASE add_documents")
            seen: set[str] = set()
            for doc_id, *_ in documents:
                if doc_id in seen or self.has_document(doc_id):
                    raise DataError(
                        f"document id {doc_id!r} appears twice; ids must be unique (check "
                        f"--id-field, or `semsearch remove {doc_id}` first when appending a new "
                        "version)") from None
                seen.add(doc_id)
            raise
        connection.execute("RELEASE add_documents")

    # --- an unfinished build's progress, committed with the rows it describes ------------------

    def read_build_state(self) -> dict | None:
        """The progress a build recorded in this (staging) store, or None."""
        try:
            found = self.connection.execute(
                "SELECT value FROM build_state WHERE name = 'state'").fetchone()
        except sqlite3.OperationalError:  # no such table: not a build's store
            return None
        try:
            value = json.loads(found[0]) if found else None
        except (TypeError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def write_build_state(self, state: dict) -> None:
        """Record a build's progress in the open transaction (it commits with the rows)."""
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS build_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.connection.execute("INSERT OR REPLACE INTO build_state VALUES ('state', ?)",
                                (json.dumps(state),))

    def drop_build_state(self) -> None:
        """Remove the progress record: the store of a finished index holds none."""
        self.connection.execute("DROP TABLE IF EXISTS build_state")

    def has_text(self, text: str) -> bool:
        """Whether a document with exactly this text is stored."""
        found = self.connection.execute(
            "SELECT 1 FROM documents WHERE sha256 = ? LIMIT 1", (text_hash(text),)
        ).fetchone()
        return found is not None

    def has_document(self, doc_id: str) -> bool:
        found = self.connection.execute(
            "SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        return found is not None

    def rows_of(self, doc_ids: Iterable[str]) -> dict[str, list[int]]:
        """Row ids of each stored document (unknown ids are left out)."""
        rows: dict[str, list[int]] = {}
        for doc_id in doc_ids:
            for (row,) in self.connection.execute(
                "SELECT row FROM chunks WHERE doc_id = ? ORDER BY chunk", (doc_id,)
            ):
                rows.setdefault(doc_id, []).append(row)
        return rows

    def remove_documents(self, doc_ids: Iterable[str]) -> None:
        ids = [(doc_id,) for doc_id in doc_ids]
        self.connection.executemany("DELETE FROM chunks WHERE doc_id = ?", ids)
        self.connection.executemany("DELETE FROM documents WHERE doc_id = ?", ids)

    def chunks(self, rows: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these row ids, keyed by row (unknown rows are left out)."""
        return {
            row: Chunk(row, doc_id, chunk, count, text, self._metadata(metadata))
            for row, doc_id, chunk, count, text, metadata in self._by_rows(
                "SELECT c.row, c.doc_id, c.chunk, d.chunks, c.text, d.metadata FROM chunks c "
                "JOIN documents d ON d.doc_id = c.doc_id WHERE c.row IN ({marks})", rows)
        }

    def heads(self, rows: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these row ids as far as ranking and fusing by document need them:
        document id and chunk number, no text, no metadata, and `chunks` 0 (the documents
        table is not read); unknown rows are left out. A quarter of `chunks`' cost (0.3 ms
        for 235 rows of the 704K-sentence store, against 1.3 ms with the join)."""
        return {
            row: Chunk(row, doc_id, chunk, 0, "")
            for row, doc_id, chunk in self._by_rows(
                "SELECT row, doc_id, chunk FROM chunks WHERE row IN ({marks})", rows)
        }

    def _by_rows(self, query: str, rows: Sequence[int]) -> Iterator[tuple]:
        """The result rows of `query` (its `{marks}` the placeholders of a row-id list) for
        these row ids, 500 at a time: SQLite caps the number of parameters."""
        wanted = sorted({int(row) for row in rows if row >= 0})
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            yield from self.connection.execute(query.format(marks=",".join("?" * len(batch))),
                                               batch)

    def _metadata(self, metadata: str | None) -> dict:
        try:
            value = json.loads(metadata) if metadata else {}
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, dict):
            raise IndexError_(
                f"document store {self.path} holds metadata that is not a JSON object; rebuild "
                "with `semsearch index CORPUS`"
            )
        return value

    def doc_ids_of_rows(self, rows: Sequence[int]) -> dict[int, str]:
        return {row: chunk.doc_id for row, chunk in self.heads(rows).items()}

    def iter_chunks(self, batch: int = 10_000) -> Iterator[tuple[int, str]]:
        """Every stored chunk as (row id, text), in row order, read a batch at a time."""
        last = -1
        while True:
            found = self.connection.execute(
                "SELECT row, text FROM chunks WHERE row > ? ORDER BY row LIMIT ?", (last, batch)
            ).fetchall()
            if not found:
                return
            yield from found
            last = found[-1][0]

    def iter_documents(self, batch: int = 10_000) -> Iterator[tuple[int, list[str]]]:
        """Every stored document as (its first chunk's row id, its chunk texts in order), in row
        order (a document's chunks have consecutive rows)."""
        current: tuple[str, int, list[str]] | None = None
        for row, doc_id, text in self._chunk_rows(batch):
            if current is not None and current[0] == doc_id:
                current[2].append(text)
                continue
            if current is not None:
                yield current[1], current[2]
            current = (doc_id, row, [text])
        if current is not None:
            yield current[1], current[2]

    def _chunk_rows(self, batch: int) -> Iterator[tuple[int, str, str]]:
        last = -1
        while True:
            found = self.connection.execute(
                "SELECT row, doc_id, text FROM chunks WHERE row > ? ORDER BY row LIMIT ?",
                (last, batch),
            ).fetchall()
            if not found:
                return
            yield from found
            last = found[-1][0]

    def rows_where(self, where: Sequence[tuple[str, str]]) -> np.ndarray:
        """Row ids of the chunks of documents whose metadata has every FIELD = VALUE in `where`
        (values compared as text, so `year=2015` matches the number 2015 too).

        Raises UnknownFieldError naming the fields the store has when a field is on no
        document."""
        conditions = " AND ".join(metadata_condition(name) for name, _ in where)
        parameters = [part for name, value in where for part in (name, value)]
        rows = [
            row
            for (row,) in self.connection.execute(
                "SELECT c.row FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
                f"WHERE {conditions}",
                parameters,
            )
        ]
        if not rows:
            known = self.metadata_fields()
            for name, _ in where:
                if name not in known:
                    shown = ", ".join(sorted(known)[:20]) or "none: the corpus had only id and text"
                    raise UnknownFieldError(
                        f"no document has a metadata field {name!r}; the fields are: {shown}"
                    )
        return np.asarray(sorted(rows), dtype=np.int64)

    def metadata_fields(self) -> set[str]:
        """The metadata field names any document has."""
        return {
            key
            for (key,) in self.connection.execute(
                "SELECT DISTINCT j.key FROM documents d, json_each(d.metadata) j "
                "WHERE d.metadata IS NOT NULL"
            )
        }

    def count_documents(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def count_chunks(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
