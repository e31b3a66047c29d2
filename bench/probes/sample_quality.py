"""nDCG@10 and recall@100 of an index on bench_million's seeded sample of MLQuestions dev queries,
through `semsearch.query`, with any of its settings: to set an index beside the two-stage rows,
which are scored on that sample (e.g. all-MiniLM-L6-v2's own 1M index at its calibrated weight).

    python bench/probes/sample_quality.py runs/million/index-minilm-1000000 \\
        --set '{"fusion": "weighted", "dense_weight": 0.7}'
    python bench/probes/sample_quality.py runs/million/index-student-1000000   # its own fusion
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_million import _rescore_quality, rescore_sample  # noqa: E402

from semsearch.eval.beir import read_beir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index")
    parser.add_argument("--data-dir", default=os.environ.get("SEMSEARCH_DATA", "../shared/data"))
    parser.add_argument("--queries", type=int, default=200, help="the sample's size")
    parser.add_argument("--set", dest="settings", default="{}",
                        help='semsearch.query keywords as JSON, e.g. {"mode": "dense"}')
    args = parser.parse_args()
    dev = read_beir(Path(args.data_dir) / "beir" / "mlquestions", "dev")
    query_ids = [q for q in dev.queries if q in dev.qrels]
    chosen = rescore_sample(len(query_ids), args.queries)
    keywords = {"rescore": False, **json.loads(args.settings)}
    result = _rescore_quality(args.index, [query_ids[i] for i in chosen],
                              [dev.queries[query_ids[i]] for i in chosen], dev.qrels, keywords)
    print(json.dumps({"index": args.index, "settings": keywords, **result}))


if __name__ == "__main__":
    main()
