"""Verify an index folder end to end, read-only: what `semsearch check` reports.

Each check gives ok, warn or fail with one line of detail; the folder is healthy when none
failed. Nothing here writes: the store is opened read-only and FAISS reads from its file.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from semsearch.errors import IndexError_, SemsearchError
from semsearch.index.faiss_index import read_index
from semsearch.index.folder import (
    INDEX_FILE,
    INDEX_FILES,
    MANIFEST,
    STORE_FILE,
    VECTORS_FILE,
    check_not_interrupted,
)
from semsearch.index.manifest import Manifest
from semsearch.index.recipe import IndexRecipe
from semsearch.index.tuning import TUNE_QUERIES, measure_recall, stored_vectors
from semsearch.index.vector_file import VectorFile

# measured recall may sit this far under the target before a rebuild is advised: a 1,000-query
# sample reads recall@10 to about +-0.01
RECALL_SLACK = 0.02


@dataclass
class Check:
    name: str
    status: str  # ok, warn or fail
    detail: str


@dataclass
class Verification:
    """The checks run on one folder, and the recall measured (None when not measured)."""

    folder: str
    checks: list[Check] = field(default_factory=list)
    recall: float | None = None
    recall_built: float | None = None  # recorded when the index was built or last tuned
    target_recall: float | None = None
    sample: int = 0
    manifest: Manifest | None = None

    @property
    def healthy(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def to_dict(self) -> dict:
        return {
            "index": self.folder,
            "healthy": self.healthy,
            "checks": [asdict(check) for check in self.checks],
            "recall_at_10": self.recall,
            "recall_at_10_built": self.recall_built,
            "target_recall": self.target_recall,
            "sample": self.sample,
        }


def verify_index(folder: Path, sample: int = TUNE_QUERIES, seed: int = 0) -> Verification:
    """Check manifest, FAISS file, store integrity, rows against vectors, the re-rank file and
    recall@10 on `sample` stored vectors (0: skip it); returns every finding."""
    folder = Path(folder)
    report = Verification(str(folder))
    try:
        check_not_interrupted(folder)
    except IndexError_ as error:
        report.add("folder", "fail", str(error))
        return report
    if not folder.is_dir():
        report.add("folder", "fail", f"no index folder at {folder}")
        return report
    extra = sorted(p.name for p in folder.iterdir() if p.name not in INDEX_FILES)
    report.add("folder", "warn" if extra else "ok",
               f"unexpected entries: {', '.join(extra)}" if extra else "holds only index files")
    try:
        manifest = Manifest.read(folder / MANIFEST)
        recipe = IndexRecipe.from_dict(manifest.recipe)
    except (SemsearchError, TypeError, ValueError) as error:
        report.add("manifest", "fail", str(error))
        return report
    report.manifest = manifest
    report.add("manifest", "ok", f"format {manifest.format_version}, {manifest.count:,} vectors, "
               f"{manifest.documents:,} documents, {recipe.factory}")
    if not manifest.has_vectors:  # --lexical-only: store and BM25, nothing else to check
        _check_store(folder / STORE_FILE, manifest, report)
        _check_lexical(folder, manifest, report)
        return report
    try:
        index = read_index(folder / INDEX_FILE)
    except IndexError_ as error:
        report.add("faiss", "fail", str(error))
        index = None
    if index is not None:
        if index.ntotal != manifest.count or index.d != manifest.dim:
            report.add("faiss", "fail", f"{index.ntotal:,} vectors of dimension {index.d}, the "
                       f"manifest says {manifest.count:,} of {manifest.dim}")
        else:
            report.add("faiss", "ok", f"{index.ntotal:,} vectors of dimension {index.d}")
    rows = _check_store(folder / STORE_FILE, manifest, report)
    if index is not None and rows is not None:
        _check_rows(index, rows, manifest, report)
    vectors = VectorFile(folder / VECTORS_FILE, manifest.dim)
    if recipe.rerank:
        size = (folder / VECTORS_FILE).stat().st_size if vectors.path.is_file() else -1
        if size < 0 or size % (4 * manifest.dim) or len(vectors) < manifest.next_row:
            report.add("vectors", "fail", f"{VECTORS_FILE} holds {max(size, 0):,} bytes; the "
                       f"re-rank file needs {manifest.next_row:,} rows of {manifest.dim} floats")
            vectors = None
        else:
            report.add("vectors", "ok", f"{len(vectors):,} re-rank rows")
    if sample and index is not None and rows is not None and report.healthy:
        _check_recall(index, recipe, rows, vectors if recipe.rerank else None, sample, seed,
                      report)
    return report


def _check_store(path: Path, manifest: Manifest, report: Verification) -> np.ndarray | None:
    if not path.is_file():
        report.add("store", "fail", f"{STORE_FILE} is missing")
        return None
    try:
        connection = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as error:
        report.add("store", "fail", f"{STORE_FILE} cannot be opened ({error})")
        return None
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            report.add("store", "fail", f"integrity_check: {'; '.join(verdict[:3])}")
            return None
        documents = connection.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        claimed = connection.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents").fetchone()[0]
        rows = np.fromiter((r for (r,) in connection.execute("SELECT row FROM chunks ORDER BY row")),
                           dtype=np.int64)
        orphans = connection.execute(
            "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d ON d.doc_id = c.doc_id "
            "WHERE d.doc_id IS NULL").fetchone()[0]
    except sqlite3.Error as error:
        report.add("store", "fail", f"{STORE_FILE} is corrupt ({error})")
        return None
    finally:
        connection.close()
    problems = []
    if documents != manifest.documents:
        problems.append(f"{documents:,} documents, the manifest says {manifest.documents:,}")
    if manifest.has_vectors and len(rows) != manifest.count:
        problems.append(f"{len(rows):,} chunks, the manifest says {manifest.count:,} vectors")
    if not manifest.has_vectors and len(rows) != documents:
        problems.append(f"{len(rows):,} chunks for {documents:,} documents (an index without "
                        "vectors holds one a document)")
    if claimed != len(rows) or orphans:
        problems.append(f"documents claim {claimed:,} chunks, {len(rows):,} stored, {orphans} "
                        "without a document")
    if len(rows) and (rows[0] < 0 or rows[-1] >= manifest.next_row):
        problems.append(f"rows run {rows[0]}..{rows[-1]}, outside 0..{manifest.next_row - 1}")
    if problems:
        report.add("store", "fail", "; ".join(problems))
        return None
    report.add("store", "ok", f"integrity ok, {documents:,} documents, {len(rows):,} chunks")
    return rows


def _check_lexical(folder: Path, manifest: Manifest, report: Verification) -> None:
    """An index without vectors searches BM25 alone: its lexical part must open and match."""
    from semsearch.index.lexical import LexicalConfig, LexicalIndex

    if manifest.lexical is None:
        report.add("lexical", "fail", "an index without vectors has no lexical part; rebuild it "
                   f"with `semsearch index CORPUS --lexical-only --out {folder}`")
        return
    try:
        lexical = LexicalIndex(folder, LexicalConfig.from_dict(manifest.lexical))
    except IndexError_ as error:
        report.add("lexical", "fail", str(error))
        return
    if len(lexical) != manifest.documents:
        report.add("lexical", "fail", f"{len(lexical):,} BM25 documents, the manifest says "
                   f"{manifest.documents:,}")
        return
    report.add("lexical", "ok", f"BM25 over {len(lexical):,} documents; no vectors "
               "(--lexical-only)")


def _check_rows(index, rows: np.ndarray, manifest: Manifest, report: Verification) -> None:
    """The FAISS ids are exactly the store's rows (checked where the index can list its ids)."""
    ids = _index_ids(index)
    if ids is None:
        report.add("rows", "warn", "this index type cannot list its ids; counts agree")
        return
    if len(ids) != len(rows) or not np.array_equal(np.sort(ids), rows):
        missing = np.setdiff1d(rows, ids).size
        unknown = np.setdiff1d(ids, rows).size
        report.add("rows", "fail", f"{missing:,} stored chunks have no vector and {unknown:,} "
                   "vectors have no stored chunk")
        return
    report.add("rows", "ok", "every vector has its chunk and every chunk its vector")


def _index_ids(index) -> np.ndarray | None:
    import faiss

    inner = faiss.downcast_index(index)
    if isinstance(inner, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return faiss.vector_to_array(inner.id_map).astype(np.int64)
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is None:
        return None
    lists = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist) if lists.list_size(i)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _check_recall(index, recipe: IndexRecipe, rows, vectors, sample, seed, report) -> None:
    report.recall_built = recipe.recall
    report.target_recall = recipe.target_recall
    if recipe.exact:
        report.recall, report.sample = 1.0, 0
        report.add("recall", "ok", "exact search: recall@10 is 1 by construction")
        return
    try:
        stored = stored_vectors(index, vectors, rows)
    except ValueError as error:
        report.add("recall", "warn", f"not measured ({error})")
        return
    recall, used = measure_recall(index, recipe, stored, vectors, k=10, queries=sample, seed=seed)
    report.recall, report.sample = round(recall, 4), used
    built = f"{recipe.recall:.3f}" if recipe.recall is not None else "not recorded"
    line = f"recall@10 {recall:.3f} on {used:,} stored vectors (at build or last tune: {built}"
    target = recipe.target_recall
    line += f", target {target})" if target else ")"
    if not stored.exact:
        line += "; against decoded codes, not the original vectors"
    if target and recall < target - RECALL_SLACK:
        report.add("recall", "fail", line + "; rebuild the index (`semsearch index CORPUS "
                   "--out ...`) or search with a larger --nprobe / --ef")
    else:
        report.add("recall", "ok", line)
