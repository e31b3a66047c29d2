"""A code-search collection for measuring what a fit on prose does to text it never saw: each
query is the first line of a Python standard-library function's docstring, its one relevant
document that function's source with the docstring taken out (CodeSearchNet's construction),
written in the BEIR layout under runs/ (never in git). Deterministic: the stdlib files of the
running Python, in sorted order, every function with a docstring line of >= 5 words and a body
of >= 3 lines, then N drawn evenly.

    python bench/probes/code_collection.py --out runs/codesearch --size 3000

Issue 29 names a held-out code-search collection on which the static student scored 0.133
against Model2Vec's 0.252; this is a stand-in to measure the same effect here.
"""

from __future__ import annotations

import argparse
import ast
import json
import sysconfig
from pathlib import Path


def functions(root: Path):
    for path in sorted(root.rglob("*.py")):
        if any(part in ("test", "tests", "idlelib", "site-packages", "lib2to3")
               for part in path.parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc or not node.body or not isinstance(node.body[0], ast.Expr):
                continue
            first = doc.strip().splitlines()[0].strip()
            if len(first.split()) < 5:
                continue
            start, end = node.lineno - 1, node.end_lineno
            skip = range(node.body[0].lineno - 1, node.body[0].end_lineno)
            body = [line for number, line in enumerate(lines[start:end], start)
                    if number not in skip]
            if len(body) < 4:
                continue
            yield f"{path.relative_to(root)}:{node.lineno}", first, "\n".join(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/codesearch")
    parser.add_argument("--size", type=int, default=3000)
    args = parser.parse_args()
    root = Path(sysconfig.get_paths()["stdlib"])
    found = list(functions(root))
    seen, unique = set(), []
    for item in found:  # a docstring line shared by two functions would have two answers
        if item[1] not in seen:
            seen.add(item[1])
            unique.append(item)
    step = max(1, len(unique) / args.size)
    chosen = [unique[int(i * step)] for i in range(min(args.size, len(unique)))]
    out = Path(args.out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as corpus, \
            open(out / "queries.jsonl", "w", encoding="utf-8") as queries, \
            open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for number, (_where, query, code) in enumerate(chosen):
            corpus.write(json.dumps({"_id": f"d{number}", "title": "", "text": code}) + "\n")
            queries.write(json.dumps({"_id": f"q{number}", "text": query}) + "\n")
            qrels.write(f"q{number}\td{number}\t1\n")
    print(f"{len(chosen)} functions of {len(unique)} from {root} -> {out}")


if __name__ == "__main__":
    main()
