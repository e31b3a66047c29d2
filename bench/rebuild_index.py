"""Rebuild an index folder's FAISS index with another recipe from the vectors it already holds,
without embedding the corpus again: for timing `semsearch query` on a new recipe at full scale.

    python bench/rebuild_index.py runs/wiki700k-index runs/wiki700k-auto --type auto
    python bench/bench_query.py --index runs/wiki700k-auto

The vectors come from the folder's vectors.f32 (recipes that re-rank keep it) or, for IVF-Flat
and Flat indexes, from the index itself (their codes are the float32 vectors). The build and the
recall tuning are the ones `semsearch index` runs (`write_tuned_index`); the document store is copied as it is, and
the new folder is written beside the old one and renamed into place when complete.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from semsearch.index import IndexWriter, VectorFile, choose_recipe
from semsearch.index.faiss_index import read_index
from semsearch.index.folder import INDEX_FILE, MANIFEST, STORE_FILE, VECTORS_FILE
from semsearch.index.manifest import Manifest, now
from semsearch.index.tuning import TARGET_RECALL
from semsearch.index_tuning import write_tuned_index


def stored_vectors(folder: Path, manifest: Manifest, out: VectorFile) -> None:
    """Write rows 0..count of the folder's vectors to `out`, in row (FAISS id) order."""
    if manifest.next_row != manifest.count:
        sys.exit(f"{folder} has removed rows (next_row {manifest.next_row:,} != count "
                 f"{manifest.count:,}); rebuild it with `semsearch index` instead")
    if (folder / VECTORS_FILE).is_file():
        source = VectorFile(folder / VECTORS_FILE, manifest.dim)
        for start in range(0, manifest.count, 65_536):
            out.append(source.read(start, min(manifest.count, start + 65_536)))
        return
    index = read_index(folder / INDEX_FILE)
    rows = np.zeros((manifest.count, manifest.dim), dtype=np.float32)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and ivf.code_size == 4 * manifest.dim:  # IVF-Flat: codes are floats
        lists = ivf.invlists
        for number in range(ivf.nlist):
            size = lists.list_size(number)
            if size:
                ids = faiss.rev_swig_ptr(lists.get_ids(number), size).copy()
                codes = faiss.rev_swig_ptr(lists.get_codes(number), size * ivf.code_size)
                rows[ids] = np.frombuffer(codes.tobytes(), dtype=np.float32).reshape(size, -1)
    elif manifest.recipe.get("factory") == "Flat":  # IndexIDMap over an IndexFlatIP
        mapped = faiss.downcast_index(index)
        ids = faiss.vector_to_array(mapped.id_map)
        flat = faiss.rev_swig_ptr(faiss.downcast_index(mapped.index).get_xb(), len(ids) * manifest.dim)
        rows[ids] = flat.reshape(len(ids), manifest.dim)
    else:
        sys.exit(f"{folder} ({manifest.recipe.get('factory')}) keeps no float32 vectors to "
                 "rebuild from; rebuild it with `semsearch index` instead")
    out.append(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="an index folder written by semsearch index")
    parser.add_argument("out", type=Path, help="the new index folder (replaced if it exists)")
    parser.add_argument("--type", default="auto", help="flat, hnsw, ivf, ivfpq, auto or a "
                        "FAISS factory string, as in `semsearch index --type`")
    parser.add_argument("--target-recall", type=float, default=TARGET_RECALL)
    args = parser.parse_args()
    manifest = Manifest.read(args.source / MANIFEST)
    with IndexWriter(args.out, fresh=True) as writer:
        staging = writer.stage()
        vectors = writer.vectors(manifest.dim)
        stored_vectors(args.source, manifest, vectors)
        print(f"{len(vectors):,} vectors of {manifest.dim} read from {args.source}", flush=True)
        recipe = choose_recipe(args.type, manifest.count, manifest.dim)
        _, recipe, trained_on = write_tuned_index(recipe, vectors, manifest.count,
                                                  args.target_recall, writer)
        shutil.copy2(args.source / STORE_FILE, staging / STORE_FILE)
        writer.write_manifest(replace(manifest, recipe=recipe.to_dict(), trained_on=trained_on,
                                      updated=now()))
        writer.commit()
    print(f"{args.out}: {recipe.factory}, {recipe.reason}")


if __name__ == "__main__":
    main()
