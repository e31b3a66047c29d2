"""Opening data files: plain or gzipped, UTF-8 (with or without a BOM), errors naming file+line."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

from semsearch.errors import DataError


def open_binary(path: Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, transparently gunzipping `*.gz`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number from 1, line without its newline), decoded as UTF-8 line by line (a
    leading BOM dropped), so undecodable bytes raise DataError naming their line."""
    number = 0
    try:
        with open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):  # noqa: B007
                line = raw.decode("utf-8")
                if number == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: line {number} is not valid UTF-8 ({error.reason}); "
            "re-encode the file as UTF-8"
        ) from None
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot read ({error}); is the file complete?") from None


def find_file(folder: Path, names: list[str]) -> Path | None:
    """The first of `names` (each also tried with `.gz` appended) that exists under `folder`."""
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


class BadLines:
    """Counts malformed lines of one file; too many of them (or all) is an error, a few are
    skipped with a count, as a user wants from a large real file with a stray bad row."""

    def __init__(self, path: Path, tolerance: float = 0.01) -> None:
        self.path = path
        self.tolerance = tolerance
        self.count = 0
        self.first: tuple[int, str] | None = None

    def add(self, number: int, why: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = (number, why)

    def check(self, good: int) -> None:
        """Raise DataError when nothing was good or too many lines were bad."""
        if self.count == 0 and good > 0:
            return
        if good == 0:
            where = f" (line {self.first[0]}: {self.first[1]})" if self.first else ""
            raise DataError(f"{self.path}: no usable rows{where}; check the file's format")
        if self.count > self.tolerance * (good + self.count):
            number, why = self.first
            raise DataError(
                f"{self.path}: {self.count} malformed lines, first at line {number}: {why}; "
                "fix the file or point --data-dir at a sound copy"
            )
        import warnings

        warnings.warn(f"{self.path}: skipped {self.count} malformed lines", stacklevel=3)
