"""sentence-transformers' ONNX backends as a worker process for bench/bench_vs_st.py.

Runs in its own environment: `sentence-transformers[onnx]` (optimum-onnx) pins transformers 4.x,
which conflicts with the sentence-transformers 6 of semsearch's `bench` extra. Set it up with

    python -m venv ST_VENV && ST_VENV/bin/pip install torch==2.13.0 "sentence-transformers[onnx]"

and pass `--peer-python ST_VENV/bin/python` to bench_vs_st.py, which starts this script, feeds it
the texts, and asks it for one timed pass at a time, in turn with its own paths, so that both sides
see the same machine load. Protocol: one JSON object a line on stdin, one reply a line on the
original stdout (everything the libraries print goes to stderr):

    {"cmd": "run", "path": "st-onnx fp32"}   -> {"seconds": 3.1}
    {"cmd": "save", "path": "...", "out": F} -> {"saved": F}   (the last pass's vectors, .npy)
    {"cmd": "quit"}

Paths: "st-onnx fp32" is `SentenceTransformer(model, backend="onnx")` (optimum's plain export);
"st-onnx int8" is `export_dynamic_quantized_onnx_model(model, "avx512_vnni", ...)` loaded back
(its documented fastest CPU path). Both on `--threads` ONNX Runtime intra-op threads.
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
    parser.add_argument("--quantization", default="avx512_vnni",
                        help="optimum's quantization config name (arm64, avx2, avx512, "
                        "avx512_vnni)")
    args = parser.parse_args()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # library chatter must not break the protocol

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
        fp32 = SentenceTransformer(args.model, backend="onnx", device="cpu", model_kwargs=kwargs)
        fp32.save_pretrained(folder)  # the export, so the quantizer has a file to read
        export_dynamic_quantized_onnx_model(fp32, args.quantization, folder)
        int8 = SentenceTransformer(folder, backend="onnx", device="cpu", model_kwargs={
            **kwargs, "file_name": f"onnx/model_qint8_{args.quantization}.onnx"})
        models = {"st-onnx fp32": fp32, "st-onnx int8": int8}
        last = {}
        for model in models.values():  # warm-up
            model.encode(texts[: 4 * args.batch_size], batch_size=args.batch_size)
        versions = {"sentence_transformers": sentence_transformers.__version__,
                    "transformers": transformers.__version__,
                    "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                    "quantization": args.quantization}
        protocol.write(json.dumps({"ready": list(models), "versions": versions}) + "\n")
        for line in sys.stdin:
            request = json.loads(line)
            if request["cmd"] == "quit":
                break
            if request["cmd"] == "run":
                t0 = time.perf_counter()
                last[request["path"]] = np.asarray(models[request["path"]].encode(
                    texts, batch_size=args.batch_size), dtype=np.float32)
                reply = {"seconds": time.perf_counter() - t0}
            elif request["cmd"] == "save":
                np.save(request["out"], last[request["path"]])
                reply = {"saved": request["out"]}
            else:
                reply = {"error": f"unknown command {request['cmd']!r}"}
            protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
