"""sentence-transformers' ONNX backends as a worker process for bench/bench_vs_st.py.

Runs in its own environment: `sentence-transformers[onnx]` (optimum-onnx) pins transformers 4.x,
which conflicts with the sentence-transformers 6 of semsearch's `bench` extra. Set it up with

    python -m venv ST_VENV && ST_VENV/bin/pip install torch==2.13.0 "sentence-transformers[onnx]"

and pass `--peer-python ST_VENV/bin/python` to bench_vs_st.py, which starts this script once
for each timed round of each path, alone (no other side's process alive), in turn with its own
paths' workers:

    ST_VENV/bin/python bench/st_onnx_peer.py --model MINILM --texts texts.json --threads 2 \
        --path "st-onnx int8" --passes 1 --out vectors.npy
    -> {"seconds": [2.05], "versions": {...}}   (one JSON line on stdout; chatter on stderr)

Paths: "st-onnx fp32" is `SentenceTransformer(model, backend="onnx")` (optimum's plain export);
"st-onnx int8" is `export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)` loaded back
(its documented fastest CPU path). Either on `--threads` ONNX Runtime intra-op threads
(inter-op 1), spinning left at ONNX Runtime's default as in semsearch's own session.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="sentence-transformers model folder")
    parser.add_argument("--texts", required=True, help="JSON file: a list of texts")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--path", required=True, choices=["st-onnx fp32", "st-onnx int8"])
    parser.add_argument("--passes", type=int, default=1, help="timed passes")
    parser.add_argument("--out", required=True, help=".npy file for the last pass's vectors")
    parser.add_argument("--quantization", default="avx512_vnni",
                        help="optimum's quantization config name (arm64, avx2, avx512, "
                        "avx512_vnni)")
    args = parser.parse_args()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # library chatter must not break the reply

    import numpy as np
    import onnxruntime
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    torch.set_num_threads(args.threads)
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    kwargs = {"provider": "CPUExecutionProvider", "session_options": options}
    with tempfile.TemporaryDirectory() as folder:
        model = SentenceTransformer(args.model, backend="onnx", device="cpu", model_kwargs=kwargs)
        if args.path == "st-onnx int8":
            model.save_pretrained(folder)  # the export, so the quantizer has a file to read
            export_dynamic_quantized_onnx_model(model, args.quantization, folder)
            del model  # its session's threads go before the timed one starts
            model = SentenceTransformer(folder, backend="onnx", device="cpu", model_kwargs={
                **kwargs, "file_name": f"onnx/model_qint8_{args.quantization}.onnx"})
        model.encode(texts[: 4 * args.batch_size], batch_size=args.batch_size)  # warm-up
        seconds = []
        for _ in range(args.passes):
            t0 = time.perf_counter()
            vectors = model.encode(texts, batch_size=args.batch_size)
            seconds.append(time.perf_counter() - t0)
        np.save(args.out, np.asarray(vectors, dtype=np.float32))
    versions = {"sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                "quantization": args.quantization}
    protocol.write(json.dumps({"seconds": seconds, "versions": versions}) + "\n")


if __name__ == "__main__":
    main()
