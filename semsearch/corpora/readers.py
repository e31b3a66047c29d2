"""Corpus readers: plain text (one document a line), JSONL, CSV and TSV, each optionally gzipped.

Each yields Documents with a string id, the text and the remaining fields as metadata. Ids come
from --id-field (or an `id` field/column when there is one), else `<file stem>:<line number>`, so
documents from different files never collide and `sed -n 12p` finds line 12.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from semsearch.errors import DataError

FORMATS = ("txt", "jsonl", "csv", "tsv")
ERROR_MODES = ("strict", "skip", "replace")
# a quoted CSV field may run over this many lines; one still open after them is taken to be an
# unclosed quote (so it cannot swallow the rest of the file)
MAX_RECORD_LINES = 10_000
_SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
}  # fmt: skip


@dataclass(frozen=True)
class Document:
    """One corpus document."""

    id: str
    text: str
    metadata: dict = field(default_factory=dict)
    line: int = 0  # 1-based line (text, JSONL) or record (CSV) it came from


@dataclass(frozen=True)
class ReaderOptions:
    """How to read a corpus file; the CLI's --format, --text-field, --id-field, --errors."""

    format: str | None = None  # txt, jsonl, csv, tsv; None: from the file name
    text_field: str = "text"  # JSONL field / CSV column holding the text
    id_field: str | None = None  # JSONL field / CSV column holding the id (None: "id" if present)
    # a line with undecodable bytes or malformed JSON: strict (stop), skip (leave it out), or
    # replace (undecodable bytes become U+FFFD; malformed lines are still left out)
    errors: str = "strict"
    # longest line read: a longer text line is cut here (and reported), a longer JSONL line or
    # CSV record is a malformed line; bounds the memory one line can take
    max_line_bytes: int = 64 * 1024 * 1024


def detect_format(path: Path) -> str:
    """The format implied by a file name (the .gz is looked through; anything else is text).

    >>> detect_format(Path("a.jsonl.gz")), detect_format(Path("b.tsv")), detect_format(Path("c"))
    ('jsonl', 'tsv', 'txt')
    """
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return _SUFFIXES.get(Path(name).suffix, "txt")


def file_stem(path: Path) -> str:
    """The file name without .gz and format suffix: the id prefix of line-numbered documents."""
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem or name


class CorpusReader:
    """Iterate the Documents of one corpus file; `position` is the bytes consumed so far (of the
    compressed file for .gz), for a progress bar; `skipped` counts lines left out."""

    def __init__(self, path: Path, options: ReaderOptions = ReaderOptions()) -> None:
        self.path = Path(path)
        self.options = options
        if options.errors not in ERROR_MODES:
            raise DataError(
                f"--errors must be one of {', '.join(ERROR_MODES)}, not {options.errors!r}"
            )
        self.format = options.format or detect_format(self.path)
        if self.format not in FORMATS:
            raise DataError(
                f"unknown corpus format {self.format!r}; use one of {', '.join(FORMATS)}"
            )
        if not self.path.is_file():
            raise DataError(f"corpus {self.path} not found; give the path of a corpus file")
        self.stem = file_stem(self.path)
        self.skipped: list[tuple[int, str]] = []  # (line, reason) of lines left out
        self.cut: list[tuple[int, str]] = []  # (line, reason) of text lines cut short
        self._raw: io.BufferedReader | None = None

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def position(self) -> int:
        try:
            return self._raw.tell() if self._raw is not None and not self._raw.closed else 0
        except (OSError, ValueError):
            return 0

    def __iter__(self) -> Iterator[Document]:
        with open(self.path, "rb") as raw:
            self._raw = raw
            stream = gzip.GzipFile(fileobj=raw) if self.path.name.lower().endswith(".gz") else raw
            # a CSV record keeps its line ends: a quoted field may hold a CRLF, which is text
            lines = self._decoded_lines(stream, keep_ends=self.format in ("csv", "tsv"))
            if self.format == "txt":
                yield from self._text(lines)
            elif self.format == "jsonl":
                yield from self._jsonl(lines)
            else:
                yield from self._table(lines, "\t" if self.format == "tsv" else ",")

    def _decoded_lines(self, stream, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
        """(line number, text) of each line, without its line end unless `keep_ends`,
        undecodable bytes handled per --errors; a line longer than max_line_bytes is read in
        bounded pieces and cut (text) or refused."""
        number = 0
        limit = max(1, self.options.max_line_bytes)
        try:
            while True:
                data = stream.readline(limit + 1)
                if not data:
                    break
                number += 1
                if len(data) > limit and not data.endswith(b"\n"):
                    _drain_line(stream)
                    if self.format != "txt":
                        self.bad_line(number, f"longer than {limit:,} bytes")
                        continue
                    data = _utf8_prefix(data[:limit])
                    self.cut.append((number, f"cut to its first {limit:,} bytes"))
                if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]  # a UTF-8 byte-order mark
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as error:
                    if self.options.errors != "replace":
                        self.bad_line(
                            number, f"bytes that are not UTF-8 at byte {error.start + 1}"
                        )
                        continue
                    text = data.decode("utf-8", errors="replace")
                yield number, text if keep_ends else text.rstrip("\r\n")
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise DataError(
                f"{self.path} cannot be read after line {number} ({error}); check the file "
                "(for .gz: `gzip -t`)"
            ) from None

    def bad_line(self, number: int, reason: str) -> None:
        """A line that cannot be used: raise under --errors strict, else note it as skipped."""
        if self.options.errors == "strict":
            raise DataError(
                f"{self.path} line {number}: {reason}; fix the file, or pass --errors skip to "
                "leave such lines out"
            )
        self.skipped.append((number, reason))

    def _text(self, lines) -> Iterator[Document]:
        for number, text in lines:
            text = text.strip()
            if text:
                yield Document(f"{self.stem}:{number}", text, {}, number)

    def _jsonl(self, lines) -> Iterator[Document]:
        text_field, id_field = self.options.text_field, self.options.id_field
        for number, line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                self.bad_line(number, f"not valid JSON ({error.msg})")
                continue
            if not isinstance(record, dict):
                self.bad_line(number, "not a JSON object")
                continue
            document = self._record(record, number, text_field, id_field, list(record))
            if document is not None:
                yield document

    def _table(self, lines, delimiter: str) -> Iterator[Document]:
        """Records of a CSV/TSV file. A record whose field count differs from the header's, or
        whose quote never closes (within MAX_RECORD_LINES lines), is a malformed line, named by
        the line it starts on: --errors strict stops there, skip leaves it out and reads on from
        the next line."""
        csv.field_size_limit(max(csv.field_size_limit(), self.options.max_line_bytes))
        source = iter(lines)
        pending: deque[tuple[int, str]] = deque()  # lines to read again after a bad record
        header: list[str] | None = None
        while True:
            record_lines: list[tuple[int, str]] = []

            def feed(record_lines: list = record_lines) -> Iterator[str]:
                size = 0
                while True:
                    item = pending.popleft() if pending else next(source, None)
                    if item is None:
                        return
                    record_lines.append(item)
                    size += len(item[1])
                    if len(record_lines) > MAX_RECORD_LINES or size > self.options.max_line_bytes:
                        raise _Unclosed
                    yield item[1] if item[1].endswith("\n") else item[1] + "\n"

            reader = csv.reader(feed(), delimiter=delimiter, strict=True)
            try:
                for row in reader:
                    start = record_lines[0][0] if record_lines else 0
                    record_lines.clear()
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # a blank line
                    if header is None:
                        header = self._header(row)
                        continue
                    if len(row) != len(header):
                        self.bad_line(
                            start,
                            f"{len(row)} fields where the header has {len(header)} (check the "
                            "quoting and delimiters of this record)",
                        )
                        continue
                    document = self._record(
                        dict(zip(header, row, strict=True)),
                        start,
                        self.options.text_field,
                        self.options.id_field,
                        header,
                    )
                    if document is not None:
                        yield document
                break
            except (_Unclosed, csv.Error) as error:
                if not record_lines:
                    raise DataError(f"{self.path}: {error}; fix the file") from None
                start = record_lines[0][0]
                reason = (
                    f"a quoted field opened here is not closed within {len(record_lines)} "
                    "lines"
                    if isinstance(error, _Unclosed) or "end of data" in str(error)
                    else f"malformed record ({error})"
                )
                self.bad_line(start, reason + "; fix the quoting")
                pending.extendleft(reversed(record_lines[1:]))  # read on from the next line
        if header is None:
            raise DataError(
                f"{self.path} is empty; a {self.format.upper()} corpus needs a header row"
            )

    def _header(self, row: list[str]) -> list[str]:
        if self.options.text_field not in row:
            raise DataError(
                f"{self.path} has no column {self.options.text_field!r} (columns: "
                f"{', '.join(row)}); name the text column with --text-field"
            )
        return row

    def _record(
        self, record: dict, number: int, text_field: str, id_field: str | None, fields: list
    ) -> Document | None:
        if text_field not in record:
            self.bad_line(
                number,
                f"no field {text_field!r} (fields: {', '.join(map(str, fields))}); "
                "name the text field with --text-field",
            )
            return None
        text = record.pop(text_field)
        if text is None:
            self.bad_line(number, f"field {text_field!r} is null; give the text or drop the line")
            return None
        if isinstance(text, (dict, list)):
            self.bad_line(
                number,
                f"field {text_field!r} is a JSON {'object' if isinstance(text, dict) else 'array'}"
                ", not text; point --text-field at a string field",
            )
            return None
        text = str(text).strip()
        if not text:
            return None
        key = id_field or ("id" if "id" in record else None)
        if key is not None:
            if key not in record or record[key] in (None, ""):
                self.bad_line(number, f"no id in field {key!r}; fix the file or drop --id-field")
                return None
            value = record.pop(key)
            if isinstance(value, (dict, list, float, bool)):
                self.bad_line(
                    number, f"id field {key!r} holds {json.dumps(value)[:40]}, not a string or "
                    "whole number"
                )
                return None
            doc_id = str(value)
        else:
            doc_id = f"{self.stem}:{number}"
        return Document(doc_id, text, record, number)


class _Unclosed(Exception):
    """A CSV record ran past MAX_RECORD_LINES lines (or max_line_bytes): an unclosed quote."""


def _drain_line(stream, piece: int = 1 << 20) -> None:
    """Read and drop the rest of an overlong line, a bounded piece at a time."""
    while True:
        rest = stream.readline(piece)
        if not rest or rest.endswith(b"\n"):
            return


def _utf8_prefix(data: bytes) -> bytes:
    """`data` without a UTF-8 character cut in two at its end.

    >>> _utf8_prefix("é".encode()[:1]), _utf8_prefix(b"ab")
    (b'', b'ab')
    """
    end = len(data)
    back = 0
    while end - back > 0 and back < 4 and data[end - back - 1] & 0xC0 == 0x80:
        back += 1
    if end - back > 0 and data[end - back - 1] >= 0xC0:
        lead = data[end - back - 1]
        need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        if back + 1 < need:
            return data[: end - back - 1]
    return data
