"""Read a hand-written pairs file: `text_a<TAB>text_b<TAB>similar|dissimilar`, one pair a line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semsearch.errors import DataError

LABELS = ("similar", "dissimilar")
FORMAT = "text_a<TAB>text_b<TAB>similar|dissimilar, one pair a line"


@dataclass(frozen=True)
class LabelledPair:
    """Two texts and what the user expects of them ("similar", "dissimilar", or None)."""

    text_a: str
    text_b: str
    expected: str | None = None


def read_pairs(path: str | Path, require_label: bool = True) -> list[LabelledPair]:
    """The pairs in `path`; blank lines and lines starting with `#` are skipped. Without
    `require_label` the third column may be left out."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pairs file {path} not found; write one pair a line: {FORMAT}")
    pairs = []
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [field.strip() for field in line.split("\t")]
            expected = fields[2].lower() if len(fields) > 2 and fields[2] else None
            if len(fields) < 2 or len(fields) > 3 or not fields[0] or not fields[1]:
                raise DataError(f"{path}, line {number}: want {FORMAT}")
            if expected is not None and expected not in LABELS:
                raise DataError(
                    f"{path}, line {number}: label {fields[2]!r} is neither similar nor dissimilar"
                )
            if expected is None and require_label:
                raise DataError(f"{path}, line {number}: no label; end the line with <TAB>similar or <TAB>dissimilar")
            pairs.append(LabelledPair(fields[0], fields[1], expected))
    if not pairs:
        raise DataError(f"pairs file {path} has no pairs; write one pair a line: {FORMAT}")
    return pairs
