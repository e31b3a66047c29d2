"""Dense nDCG@10 (exact search) of model folders on BEIR folders: the held-out collections a
recipe was not tuned on (the code-search stand-in of code_collection.py), beside its peers.

    python bench/probes/score_dense.py --collection runs/codesearch:test \
        models/static models/minilm m2v:runs/m2v-minilm runs/static-arms-wide/base
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--collection", action="append", required=True, metavar="FOLDER:SPLIT")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    from static_arms import dense_ndcg

    rows = {}
    for model in args.models:
        rows[model] = {Path(spec.partition(":")[0]).name: dense_ndcg(model, spec)
                       for spec in args.collection}
        print(f"{model:<44}" + "".join(f" {name} {value:.3f}"
                                       for name, value in rows[model].items()), flush=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
