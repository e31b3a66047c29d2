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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from semsearch.errors import DataError

FORMATS = ("txt", "jsonl", "csv", "tsv")
ERROR_MODES = ("strict", "skip", "replace")
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
            lines = self._decoded_lines(stream)
            if self.format == "txt":
                yield from self._text(lines)
            elif self.format == "jsonl":
                yield from self._jsonl(lines)
            else:
                yield from self._table(lines, "\t" if self.format == "tsv" else ",")

    def _decoded_lines(self, stream) -> Iterator[tuple[int, str]]:
        """(line number, text) of each line, undecodable bytes handled per --errors."""
        number = 0
        try:
            for number, data in enumerate(stream, start=1):
                if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]  # a UTF-8 byte-order mark
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as error:
                    if self.options.errors != "replace":
                        self._bad_line(
                            number, f"bytes that are not UTF-8 at byte {error.start + 1}"
                        )
                        continue
                    text = data.decode("utf-8", errors="replace")
                yield number, text.rstrip("\r\n")
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise DataError(
                f"{self.path} cannot be read after line {number} ({error}); check the file "
                "(for .gz: `gzip -t`)"
            ) from None

    def _bad_line(self, number: int, reason: str) -> None:
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
                self._bad_line(number, f"not valid JSON ({error.msg})")
                continue
            if not isinstance(record, dict):
                self._bad_line(number, "not a JSON object")
                continue
            document = self._record(record, number, text_field, id_field, list(record))
            if document is not None:
                yield document

    def _table(self, lines, delimiter: str) -> Iterator[Document]:
        numbers: list[int] = []

        def text_lines():
            for number, text in lines:
                numbers.append(number)
                yield text

        reader = csv.DictReader(text_lines(), delimiter=delimiter)
        header = reader.fieldnames
        if not header:
            raise DataError(
                f"{self.path} is empty; a {self.format.upper()} corpus needs a header row"
            )
        if self.options.text_field not in header:
            raise DataError(
                f"{self.path} has no column {self.options.text_field!r} (columns: "
                f"{', '.join(header)}); name the text column with --text-field"
            )
        try:
            for record in reader:
                record.pop(None, None)  # cells beyond the header
                number = numbers[-1] if numbers else 0
                document = self._record(
                    record, number, self.options.text_field, self.options.id_field, header
                )
                if document is not None:
                    yield document
        except csv.Error as error:
            raise DataError(f"{self.path} line {numbers[-1]}: {error}; fix the quoting") from None

    def _record(
        self, record: dict, number: int, text_field: str, id_field: str | None, fields: list
    ) -> Document | None:
        if text_field not in record:
            self._bad_line(
                number,
                f"no field {text_field!r} (fields: {', '.join(map(str, fields))}); "
                "name the text field with --text-field",
            )
            return None
        text = record.pop(text_field)
        text = "" if text is None else str(text).strip()
        if not text:
            return None
        key = id_field or ("id" if "id" in record else None)
        if key is not None:
            if key not in record or record[key] in (None, ""):
                self._bad_line(number, f"no id in field {key!r}; fix the file or drop --id-field")
                return None
            doc_id = str(record.pop(key))
        else:
            doc_id = f"{self.stem}:{number}"
        return Document(doc_id, text, record, number)
