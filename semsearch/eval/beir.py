"""Read a retrieval set in the BEIR layout: `corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from semsearch.errors import DataError
from semsearch.eval.retrieval import RetrievalSet

LAYOUT = "corpus.jsonl, queries.jsonl and qrels/test.tsv"


def read_beir(folder: str | Path, split: str = "test") -> RetrievalSet:
    """The BEIR set in `folder`: corpus rows {"_id", "title"?, "text"} (title and text are joined
    as BEIR does), query rows {"_id", "text"}, and qrels `query-id<TAB>corpus-id<TAB>score` with
    a header line. Judgments that name an unknown query or document are dropped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"retrieval folder {folder} not found; give a folder with {LAYOUT}")
    corpus = {
        row["_id"]: " ".join(part for part in (row.get("title") or "", row["text"]) if part).strip()
        for row in _read_jsonl(folder / "corpus.jsonl", ("_id", "text"))
    }
    queries = {row["_id"]: row["text"] for row in _read_jsonl(folder / "queries.jsonl", ("_id", "text"))}
    qrels: dict[str, dict[str, int]] = {}
    for query_id, doc_id, grade in _read_qrels(folder / "qrels" / f"{split}.tsv"):
        if query_id in queries and doc_id in corpus:
            qrels.setdefault(query_id, {})[doc_id] = grade
    if not any(grade > 0 for judged in qrels.values() for grade in judged.values()):
        raise DataError(
            f"{folder / 'qrels' / f'{split}.tsv'} has no positive judgment naming a query of "
            f"queries.jsonl and a document of corpus.jsonl; check the ids match"
        )
    return RetrievalSet(name=folder.resolve().name, queries=queries, corpus=corpus, qrels=qrels)


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path.name} not found in {path.parent}; a BEIR folder holds {LAYOUT}")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}, line {number}: not JSON ({error.msg})") from None
            missing = [key for key in required if key not in row]
            if missing:
                raise DataError(f"{path}, line {number}: missing {', '.join(missing)}")
            row["_id"] = str(row["_id"])
            rows.append(row)
    if not rows:
        raise DataError(f"{path} is empty; a BEIR folder holds {LAYOUT}")
    return rows


def _read_qrels(path: Path) -> list[tuple[str, str, int]]:
    if not path.is_file():
        raise DataError(f"{path.name} not found in {path.parent}; a BEIR folder holds {LAYOUT}")
    judgments = []
    with path.open(encoding="utf-8", newline="") as lines:
        for number, row in enumerate(csv.reader(lines, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            try:
                judgments.append((row[0], row[1], int(float(row[2]))))
            except (IndexError, ValueError):
                raise DataError(
                    f"{path}, line {number}: want query-id<TAB>corpus-id<TAB>score"
                ) from None
    return judgments
