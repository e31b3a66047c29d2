"""A real `semsearch serve` process on 127.0.0.1 for the tests that need one (the docs pages,
the fuzzed API, the soak): started on a free port, waited for, stopped at the end.

No conftest.py in this folder (tests/index imports its conftest by that bare module name);
tests import these helpers by module name, as tests/faults does its faults_support."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from semsearch.cli import main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.served import served  # noqa: E402 - after the path

DOCUMENTS = [
    {"id": "pets:1", "text": "cats purr softly", "kind": "mammal"},
    {"id": "pets:2", "text": "dogs bark loudly", "kind": "mammal", "year": 2015},
    {"id": "pets:3", "text": "parrots talk all day", "kind": "bird"},
    {"id": "pets:4", "text": "the ocean tide rises", "kind": "sea"},
    {"id": "pets:5", "text": "Ünïcödé naïve café — ẞ and 漢字 in a document", "kind": "text"},
]


def build_index(folder: Path, model: Path) -> Path:
    """A small hybrid index of DOCUMENTS in folder/pets, built by the real CLI."""
    corpus = folder / "pets.jsonl"
    corpus.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in DOCUMENTS),
                      encoding="utf-8")
    # its own indexes folder: the build marks itself latest there, not in the checkout's
    result = CliRunner().invoke(main, ["index", str(corpus), "--model", str(model),
                                       "--out", str(folder / "pets")],
                                env={"SEMSEARCH_INDEXES": str(folder / "indexes")})
    assert result.exit_code == 0, result.output
    return folder / "pets"


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    key: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


@contextmanager
def serve(index_dir: Path, *args: str, key: str | None = None,
          startup: float = 120) -> Iterator[LiveServer]:
    """`semsearch serve --index index_dir` on a free port of 127.0.0.1 until the block ends
    (started and stopped as the benchmarks do: bench/served.py)."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    env.pop("SEMSEARCH_API_KEY", None)
    with served(["--index", str(index_dir), *args, *(["--api-key", key] if key else [])],
                env=env, timeout=startup) as (process, url):
        yield LiveServer(url, process, key)
