"""A teacher's vectors of many texts: on its fastest path that agrees with its fp32 vectors,
computed once, cached in parts so that a killed run resumes where it stopped.

The path: `fastest_agreeing` (onnx_encoder.py): ONNX Runtime int8 when onnxruntime is
installed and its vectors of a sample of the texts agree with fp32's (all-MiniLM-L6-v2:
measured in docs/results.md, Training), else ONNX Runtime fp32, else PyTorch. The vectors are kept as
float32 `.npy` parts of PART texts under $SEMSEARCH_CACHE/teachers/<teacher>-<path>/, each
named by the hash of its texts (so runs whose texts share whole parts share them) and written
to a temporary name and renamed, so a part on disk is always whole.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semsearch.encoder.distill import cache_dir

PART = 8192  # texts per cached part


def cache_key(fingerprint: str, path_name: str, texts: list[str]) -> str:
    """32 hex digits naming the teacher's vectors of `texts` on one path: a part's file name, so
    two runs whose texts share whole parts (the same Wikipedia texts, another --corpus after
    them) share those parts."""
    digest = hashlib.sha256(f"semsearch-teacher-2\0{fingerprint}\0{path_name}\0".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:32]


def teacher_vectors(teacher: str | Path, texts: list[str], log: Callable[[str], None] = print,
                    progress: bool = False) -> tuple[np.ndarray, dict]:
    """((len(texts), dim) float32 unit rows, a summary) of the teacher's vectors of `texts`."""
    started = time.perf_counter()
    from semsearch.encoder.onnx_encoder import fastest_agreeing

    encoder, path_name = fastest_agreeing(teacher, texts, log, "teacher")
    path_key = path_name.split(" (")[0]
    folder = cache_dir() / f"{encoder.fingerprint}-{path_key.replace(' ', '-')}"
    folder.mkdir(parents=True, exist_ok=True)
    parts = [folder / f"{cache_key(encoder.fingerprint, path_key, texts[i:i + PART])}.npy"
             for i in range(0, len(texts), PART)]
    done = [p for p in parts if p.is_file()]
    todo = len(texts) - sum(min(PART, len(texts) - i * PART) for i, p in enumerate(parts)
                            if p.is_file())
    if todo:
        log(f"teacher vectors: encoding {todo:,} of {len(texts):,} texts on {path_name}"
            + (f" ({len(done)} parts from the cache)" if done else "") + f"; cache {folder}")
    else:
        log(f"teacher vectors: {len(texts):,} from the cache {folder}")
    bar = _bar(todo, progress)
    encoded, encoding_started = 0, time.perf_counter()
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for i, part in enumerate(parts):
        start = i * PART
        chunk = texts[start:start + PART]
        if part.is_file():
            vectors = np.load(part, allow_pickle=False)
            if vectors.shape == (len(chunk), encoder.dim):
                out[start:start + len(chunk)] = vectors
                continue
        vectors = np.asarray(encoder.encode(chunk, batch_size=64), dtype=np.float32)
        tmp = part.with_name(part.name + ".partial.npy")
        np.save(tmp, vectors, allow_pickle=False)
        os.replace(tmp, part)
        out[start:start + len(chunk)] = vectors
        bar.update(len(chunk))
        encoded += len(chunk)
        if not progress:  # no bar (not a terminal): a line a part, with the time left
            spent = time.perf_counter() - encoding_started
            log(f"teacher vectors: {encoded:,} of {todo:,} texts in {spent:.0f}s, about "
                f"{spent / encoded * (todo - encoded):.0f}s left")
    bar.close()
    seconds = time.perf_counter() - started
    return out, {"path": path_name, "texts": len(texts), "encoded": todo,
                 "seconds": round(seconds, 1), "cache": str(folder)}


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="teacher vectors", unit="text", disable=not enabled or not total,
                smoothing=0.1)
