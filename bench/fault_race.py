"""Readers racing writers: queries opened in a loop while `semsearch remove` rewrites the index
N times (the audit saw "inconsistent ... rebuild" once in 973 queries racing 60 removes), and two
`--append` writers started together. Prints a table (and JSON with --json).

    python bench/fault_race.py --documents 2000 --removes 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_CLI = REPO / "tests" / "faults" / "fake_cli.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--removes", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from semsearch.errors import SemsearchError
    from semsearch.index import SearchIndex

    work = Path(tempfile.mkdtemp(prefix="fault-race-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEMSEARCH_INDEXES": str(work / "indexes"),
           "OMP_NUM_THREADS": "1"}

    def cli(*argv):
        return [sys.executable, str(FAKE_CLI), *map(str, argv)]

    corpus = work / "docs.txt"
    corpus.write_text("".join(f"doc {i} topic {i % 31}\n" for i in range(args.documents)))
    subprocess.run(cli("index", corpus, "--out", work / "idx"), env=env, check=True,
                   capture_output=True)
    script = " && ".join(" ".join(cli("remove", f"docs:{i + 1}", "--index", work / "idx",
                                       "--wait", "60")) for i in range(args.removes))
    writer = subprocess.Popen(["bash", "-c", script], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    queries = errors = 0
    messages: set[str] = set()
    started = time.perf_counter()
    while writer.poll() is None:
        try:
            opened = SearchIndex.open(work / "idx")
            opened.search(__import__("numpy").ones((1, 64), "float32") / 8, 5)
            opened.close()
        except SemsearchError as error:
            errors += 1
            messages.add(str(error)[:120])
        queries += 1
    race_seconds = time.perf_counter() - started
    final = SearchIndex.open(work / "idx")
    left = final.manifest.documents
    final.close()

    # two appends started together: both must land (the second waits for the first)
    for name in ("a", "b"):
        (work / f"{name}.txt").write_text("".join(f"{name} extra {i}\n" for i in range(200)))
    appends = [subprocess.Popen(cli("index", work / f"{name}.txt", "--append", "--out",
                                    work / "idx", "--wait", "120"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]
    codes = [p.wait() for p in appends]
    final = SearchIndex.open(work / "idx")
    after_appends = final.manifest.documents
    final.close()
    result = {
        "documents": args.documents, "removes": args.removes,
        "remove_exit_code": writer.returncode, "queries_during_removes": queries,
        "query_errors": errors, "error_messages": sorted(messages),
        "race_seconds": round(race_seconds, 1),
        "documents_left": left, "expected_left": args.documents - args.removes,
        "append_exit_codes": codes, "documents_after_appends": after_appends,
        "expected_after_appends": args.documents - args.removes + 400,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'measure':<34} value")
    for key, value in result.items():
        print(f"{key:<34} {value}")


if __name__ == "__main__":
    main()
