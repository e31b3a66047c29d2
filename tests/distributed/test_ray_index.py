"""`semsearch index --engine ray` against --engine local, on a local Ray of 2 CPUs.

The Ray builds are slow on a 2-core machine (starting Ray and two actors dominates), so they
carry the `slow` marker and share one Ray session; the error paths that need no Ray are fast.
"""

from __future__ import annotations

import gzip
import os
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from semsearch.cli import main
from semsearch.distributed.merge_build import add_shard_task, merge_pair_task
from semsearch.distributed.shards import write_shard
from semsearch.index import (
    IndexRecipe,
    SearchIndex,
    create_index,
    exact_search,
    recall_at_k,
    search_with_recipe,
    train_index,
)


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    (tmp_path / "pets.txt").write_text("cats purr\ndogs bark\nparrots talk\n")
    return tmp_path


def test_without_ray_the_engine_says_what_to_install(workspace, monkeypatch, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    result = run("index", "pets.txt", "--model", tiny_model_dir, "--engine", "ray")
    assert result.exit_code == 1
    assert "pip install 'semsearch[distributed]'" in result.output
    assert "Traceback" not in result.output and not (workspace / "indexes" / "pets").exists()


def test_unreachable_address_is_one_line_and_leaves_the_old_index(workspace, tiny_model_dir):
    assert run("index", "pets.txt", "--model", tiny_model_dir).exit_code == 0
    before = (workspace / "indexes" / "pets" / "manifest.json").read_text()
    result = run("index", "pets.txt", "--model", tiny_model_dir, "--engine", "ray",
                 "--address", "127.0.0.1:1")
    assert result.exit_code == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in result.output
    assert len(result.output.strip().splitlines()) == 2  # "indexing ..." and the error
    assert (workspace / "indexes" / "pets" / "manifest.json").read_text() == before
    left = sorted(p.name for p in (workspace / "indexes").iterdir())
    assert [name for name in left if not name.startswith(".")] == ["pets"]  # no staging left
    assert not [name for name in left if ".tmp-" in name or ".shards-" in name]


def test_an_out_folder_that_is_not_an_index_is_refused_before_any_work(workspace,
                                                                      tiny_model_dir):
    (workspace / "notes").mkdir()
    (workspace / "notes" / "mine.txt").write_text("keep me")
    result = run("index", "pets.txt", "--model", tiny_model_dir, "--engine", "ray",
                 "--out", "notes")
    assert result.exit_code == 1 and "is not a semsearch index folder" in result.output
    assert (workspace / "notes" / "mine.txt").read_text() == "keep me"
    assert not list(workspace.glob(".notes.*"))  # no work folder either


def test_ray_flags_are_refused_with_the_local_engine(workspace):
    result = run("index", "pets.txt", "--concurrency", "4")
    assert result.exit_code == 2 and "only apply with --engine ray" in result.output


@pytest.mark.slow  # trains a PQ fast-scan index
def test_shard_indexes_merged_in_rounds_equal_one_index(tmp_path):
    """The Ray tasks' work without Ray: a trained IVF-PQ fast-scan index filled shard by shard
    and merged pairwise finds what one index filled with everything finds."""
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    recipe = IndexRecipe("IVF16,PQ16x4fs", "factory", nprobe=4, train_size=3000)
    trained = create_index(recipe, 32)
    train_index(trained, vectors)
    whole = faiss.deserialize_index(faiss.serialize_index(trained))
    whole.add_with_ids(vectors, np.arange(3000, dtype=np.int64))
    bounds = [0, 1000, 1700, 3000]
    for shard, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        write_shard(tmp_path, shard, stop - start, np.arange(start, stop), vectors[start:stop])
    blob = faiss.serialize_index(trained)
    parts = [add_shard_task(blob, str(tmp_path), shard, 32) for shard in range(3)]
    first = merge_pair_task(parts[0], parts[1], str(tmp_path), 0, 0)
    merged = faiss.read_index(merge_pair_task(first, parts[2], str(tmp_path), 1, 0))
    assert merged.ntotal == 3000
    queries = vectors[:50]
    _, expected = search_with_recipe(whole, recipe, None, queries, 10)
    _, found = search_with_recipe(merged, recipe, None, queries, 10)
    assert np.array_equal(np.sort(found, axis=1), np.sort(expected, axis=1))


# --- builds on a local Ray -------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: 2 CPUs, a 100 MB object store; the workers import
    semsearch from this checkout and this test module (for its sabotaged encoder)."""
    ray = pytest.importorskip("ray")
    here = Path(__file__).resolve()
    path = os.pathsep.join([str(here.parents[2]), str(here.parent)])
    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    # a build that stops making progress fails the test in minutes, not after Ray's 30-minute
    # default (the whole CI run's budget)
    import ray.data

    ray.data.DataContext.get_current().execution_no_progress_timeout_s = 240
    yield ray
    ray.shutdown()


def _corpus(data_dir: Path, path: Path, count: int) -> Path:
    with gzip.open(data_dir / "wikipedia" / "sentences.txt.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(count)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


class _Sabotaged:
    """The real encoder, except that it kills its own process on its first encode (once, over
    all workers: a marker file remembers) or raises while `poison` exists and a text has it."""

    def __init__(self, model: Path, marker: Path | None, poison: Path | None) -> None:
        from semsearch.embedder import load_embedder

        self.inner = load_embedder(model, "cpu")
        self.marker, self.poison = marker, poison
        for name in ("name", "dim", "fingerprint", "max_seq_len", "path"):
            setattr(self, name, getattr(self.inner, name))

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def encode(self, texts, batch_size=64, progress=False):
        if self.marker is not None and not self.marker.exists():
            self.marker.write_text("killed once\n")
            os._exit(1)  # the worker dies mid-shard, as when the OOM killer takes it
        if self.poison is not None and self.poison.exists():
            if any(self.poison.read_text().strip() in text for text in texts):
                # fail only once another shard has finished, as a failure late in a long build
                # does: on a loaded machine the poisoned shard could otherwise fail first
                import time

                deadline = time.monotonic() + 120
                finished = self.poison.parent.glob("indexes/.*.shards-*/shard-*.json")
                while not any(True for _ in finished) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    finished = self.poison.parent.glob("indexes/.*.shards-*/shard-*.json")
                raise RuntimeError("poisoned text")
        return self.inner.encode(texts, batch_size=batch_size)


def _rows_and_chunks(folder: Path) -> list[tuple]:
    index = SearchIndex.open(folder)
    try:
        return index.store.connection.execute(
            "SELECT row, doc_id, chunk, text FROM chunks ORDER BY row").fetchall()
    finally:
        index.close()


def _recall_against_exact(folder: Path, queries: int = 200) -> float:
    index = SearchIndex.open(folder)
    try:
        count = index.manifest.count
        vectors = np.fromfile(folder / "vectors.f32", dtype=np.float32).reshape(count, -1)
        sample = vectors[np.random.default_rng(1).choice(count, queries, replace=False)]
        _, truth = exact_search(vectors, sample, 10)
        _, found = search_with_recipe(index.index, index.recipe, index.vectors, sample, 10)
        return recall_at_k(found, truth, 10)
    finally:
        index.close()


@pytest.mark.slow
def test_ray_build_equals_local_even_when_a_worker_dies(local_ray, workspace, data_dir,
                                                        tiny_model_dir):
    from semsearch.distributed import RayOptions, index_corpus_ray
    from semsearch.embedder import load_embedder
    from semsearch.indexing import IndexOptions, index_corpus

    corpus = _corpus(data_dir, workspace / "wiki.txt", 600)
    embedder = load_embedder(tiny_model_dir, "cpu")
    options = IndexOptions(type="ivfpq")  # "keep vectors" recipe: recall is measurable on both
    local = index_corpus(corpus, embedder, workspace / "local", options, progress=False)
    lines: list[str] = []
    load = partial(_Sabotaged, tiny_model_dir, workspace / "killed", None)
    report = index_corpus_ray(corpus, embedder, workspace / "ray", options,
                              RayOptions(concurrency=2, partition_documents=150), load=load,
                              log=lines.append)
    assert (workspace / "killed").exists()  # a worker did die, and the build still finished
    assert report.documents_total == local.documents_total == 600
    assert report.vectors_total == local.vectors_total
    assert _rows_and_chunks(workspace / "ray") == _rows_and_chunks(workspace / "local")
    ray_index = SearchIndex.open(workspace / "ray")
    assert (ray_index.manifest.engine, ray_index.manifest.shards) == ("ray", 4)
    assert ray_index.recipe.factory == IndexRecipe.from_dict(local.recipe).factory
    local_index = SearchIndex.open(workspace / "local")
    try:  # the BM25 side is built from the same chunks: the same lexical hits
        assert len(ray_index.lexical) == len(local_index.lexical) == report.documents_total
        for text in ("the history of the city", "river"):
            assert ([h.id for h in ray_index.search_lexical([text], 5)[0]]
                    == [h.id for h in local_index.search_lexical([text], 5)[0]])
    finally:
        local_index.close()
    ray_index.close()
    assert abs(_recall_against_exact(workspace / "ray")
               - _recall_against_exact(workspace / "local")) <= 0.01
    assert not list(workspace.glob(".ray.shards-*"))  # the work folder goes once the index is in
    # the folder is an ordinary index: query, append and remove work on it
    result = run("query", "the history of the city", "-k", "3", "--index", workspace / "ray",
                 "--model", tiny_model_dir)
    assert result.exit_code == 0, result.output
    (workspace / "more.txt").write_text("a brand new sentence about rivers\n")
    result = run("index", "more.txt", "--append", "--out", workspace / "ray", "--model",
                 tiny_model_dir)
    assert result.exit_code == 0 and "added 1 documents" in result.output, result.output
    result = run("remove", "wiki:1", "--index", workspace / "ray")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_failed_shard_is_named_leaves_the_old_index_and_the_rerun_resumes(
        local_ray, workspace, data_dir, tiny_model_dir):
    from semsearch.distributed import RayOptions, index_corpus_ray
    from semsearch.embedder import load_embedder
    from semsearch.errors import IndexError_
    from semsearch.indexing import IndexOptions

    corpus = _corpus(data_dir, workspace / "wiki.txt", 300)
    embedder = load_embedder(tiny_model_dir, "cpu")
    options = IndexOptions(type="flat")
    out = workspace / "indexes" / "wiki"
    run("index", "pets.txt", "--model", tiny_model_dir, "--out", out)  # the old index
    before = (out / "manifest.json").read_text()
    poison = workspace / "poison"
    lines = corpus.read_text().splitlines()
    lines[250] = "zzpoison marks this sentence"  # in shard 2 (documents 200-299)
    corpus.write_text("\n".join(lines) + "\n")
    poison.write_text("zzpoison\n")
    ray_options = RayOptions(concurrency=2, partition_documents=100)
    load = partial(_Sabotaged, tiny_model_dir, None, poison)
    with pytest.raises(IndexError_) as failure:
        index_corpus_ray(corpus, embedder, out, options, ray_options, load=load)
    message = str(failure.value)
    assert "shard 2: RuntimeError: poisoned text" in message, message
    assert "rerun the same command" in message
    assert "\n" not in message
    assert (out / "manifest.json").read_text() == before  # the old index, untouched
    assert not list(out.parent.glob(".wiki.tmp-*"))  # no half-written folder
    poison.unlink()
    lines: list[str] = []
    report = index_corpus_ray(corpus, embedder, out, options, ray_options, load=load,
                              log=lines.append)
    assert report.documents_total == 300
    kept = int(lines[0].split(": ")[1].split(" already")[0])
    assert kept >= 1, lines[0]  # the shards finished before the failure were not redone
    assert sum(line.startswith("embedded shard") for line in lines) == 3 - kept


@pytest.mark.slow
def test_actors_the_cluster_cannot_place_are_one_line_not_a_hang(local_ray, workspace,
                                                                monkeypatch, tiny_model_dir):
    from semsearch.distributed import RayOptions, index_corpus_ray, ray_index
    from semsearch.embedder import load_embedder
    from semsearch.errors import IndexError_
    from semsearch.indexing import IndexOptions

    monkeypatch.setattr(ray_index, "PLACEMENT_TIMEOUT", 3.0)
    embedder = load_embedder(tiny_model_dir, "cpu")
    out = workspace / "indexes" / "pets"
    with pytest.raises(IndexError_) as failure:  # this local Ray has no GPU at all
        index_corpus_ray(workspace / "pets.txt", embedder, out, IndexOptions(type="flat"),
                         RayOptions(concurrency=2, num_gpus=1))
    message = str(failure.value)
    assert "no room for 1 encoder actor(s) of 1 CPU and 1 GPU each in 3 s" in message, message
    assert "lower --concurrency or --num-gpus" in message and "\n" not in message
    assert not out.exists()
    assert local_ray.available_resources().get("CPU") == 2  # the group was removed
