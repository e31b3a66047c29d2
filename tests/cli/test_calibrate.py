"""Every model is search-ready when written: the calibration step (on small slices of the real
retrieval collections), its out-of-fold figures, and an index built before the calibration
picking it up afterwards, saying so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from semsearch.cli import main


def _slice(source: Path, target: Path, split: str, queries: int, extra_docs: int) -> None:
    """The first `queries` judged queries of a BEIR folder, their documents and `extra_docs`
    others, in the same layout."""
    lines = (source / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    qrels = [line.split("\t") for line in lines[1:]]
    chosen = list(dict.fromkeys(q for q, _, _ in qrels))[:queries]
    kept = [row for row in qrels if row[0] in chosen]
    wanted = {d for _, d, _ in kept}
    docs, others = [], 0
    with (source / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["_id"] in wanted or others < extra_docs:
                others += doc["_id"] not in wanted
                docs.append(line)
    query_lines = [line for line in (source / "queries.jsonl").open(encoding="utf-8")
                   if json.loads(line)["_id"] in chosen]
    (target / "qrels").mkdir(parents=True)
    (target / "qrels" / f"{split}.tsv").write_text(
        "\n".join([lines[0], *("\t".join(row) for row in kept)]) + "\n", encoding="utf-8")
    (target / "corpus.jsonl").write_text("".join(docs), encoding="utf-8")
    (target / "queries.jsonl").write_text("".join(query_lines), encoding="utf-8")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, data_dir) -> Path:
    folder = tmp_path_factory.mktemp("data")
    _slice(data_dir / "beir" / "mlquestions", folder / "beir" / "mlquestions", "dev", 12, 60)
    _slice(data_dir / "beir" / "arguana", folder / "beir" / "arguana", "test", 12, 60)
    return folder


def run(*args, **env):
    return CliRunner().invoke(main, [str(a) for a in args], env=env or None)


def test_out_of_fold_chooses_on_one_half_and_scores_the_other():
    from semsearch.eval.search_eval import CollectionRun, out_of_fold
    from semsearch.index.search_index import Hit

    def hits(ids):
        return [Hit(rank=i + 1, score=1.0 - i / 10, id=d, chunk=0, chunks=1, text="",
                    metadata={}) for i, d in enumerate(ids)]

    # dense finds every query's document first, BM25 never: any half picks a dense-heavy fusion
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(6)}
    dense = {f"q{i}": hits([f"d{i}", "x"]) for i in range(6)}
    lexical = {f"q{i}": hits(["x", "y"]) for i in range(6)}
    result = out_of_fold([CollectionRun("c", qrels, dense, lexical, 8, {})])
    assert result["c"]["hybrid_ndcg@10"] == pytest.approx(1.0)
    assert all(s != "weighted 0.0" for s in result["c"]["settings"])


def _reference_calibrate(runs):
    """Calibration by its definition: every grid setting fused by `fuse_hits` and scored by
    `score_rankings`, the smallest worst shortfall against the better side, ties to the best
    mean (what the cached-score sweep must reproduce exactly)."""
    from semsearch.eval.search_eval import (
        FUSION_GRID,
        describe,
        hybrid_rankings,
        score_rankings,
        side_scores,
    )

    sides = [side_scores(run) for run in runs]
    sweep, best = {}, None
    for fusion in FUSION_GRID:
        sweep[describe(fusion)] = {run.name: score_rankings(hybrid_rankings(run, fusion),
                                                            run.qrels)["ndcg@10"] for run in runs}
        values = sweep[describe(fusion)]
        shortfall = max(max(side["bm25"]["ndcg@10"], side["dense"]["ndcg@10"]) - values[run.name]
                        for run, side in zip(runs, sides))
        key = (round(shortfall, 6), -sum(values.values()) / len(runs))
        if best is None or key < best[0]:
            best = (key, describe(fusion))
    return best[1], sweep


def _synthetic_runs(seed: int):
    """Two collections of queries whose sides' scores are coarse (ties within and across
    sides) and whose judged documents sit anywhere in either list, or in neither."""
    import random

    from semsearch.eval.search_eval import CollectionRun
    from semsearch.index.search_index import Hit

    rng = random.Random(seed)

    def hits(ids):
        scores = sorted((round(rng.random(), 1) for _ in ids), reverse=True)
        return [Hit(rank=i + 1, score=s, id=d, chunk=0, chunks=1, text="", metadata={})
                for i, (d, s) in enumerate(zip(ids, scores))]

    runs = []
    for name in ("a", "b"):
        qrels, dense, lexical = {}, {}, {}
        for q in range(40):
            docs = [f"d{i}" for i in range(30)]
            qrels[f"q{q}"] = {rng.choice(docs): rng.choice([1, 2]) for _ in range(rng.randint(0, 3))}
            dense[f"q{q}"] = hits(rng.sample(docs, rng.randint(0, 15)))
            lexical[f"q{q}"] = hits(rng.sample(docs, rng.randint(0, 15)))
        runs.append(CollectionRun(name, qrels, dense, lexical, 30, {}))
    return runs


def _half(run, part: int):
    from semsearch.eval.search_eval import CollectionRun

    keep = sorted(run.qrels)[part::2]
    return CollectionRun(run.name, {q: run.qrels[q] for q in keep},
                         {q: run.dense[q] for q in keep}, {q: run.lexical[q] for q in keep},
                         run.corpus, run.index)


@pytest.mark.parametrize("seed", range(6))
def test_the_cached_sweep_chooses_and_scores_as_fusing_each_setting_does(seed):
    from semsearch.eval.search_eval import (
        FUSION_GRID,
        SweepScores,
        calibrate,
        describe,
        hybrid_rankings,
        out_of_fold,
        score_rankings,
    )

    runs = _synthetic_runs(seed)
    fusion, sweep = calibrate([SweepScores(run) for run in runs])
    expected_setting, expected_sweep = _reference_calibrate(runs)
    assert describe(fusion) == expected_setting and sweep == expected_sweep
    # out of fold: chosen on one half of every collection, scored on the other
    held_out = out_of_fold(runs)
    chosen = [_reference_calibrate([_half(run, part) for run in runs])[0] for part in (0, 1)]
    by_name = {describe(f): f for f in FUSION_GRID}
    for run in runs:
        assert held_out[run.name]["settings"] == chosen
        scores = [score_rankings(hybrid_rankings(_half(run, 1 - part), by_name[chosen[part]]),
                                 _half(run, 1 - part).qrels)["ndcg@10"] for part in (0, 1)]
        assert held_out[run.name]["hybrid_ndcg@10"] == sum(scores) / 2


def _searched(model, data):
    """Each shared collection of `data` searched through the real index and query path."""
    from semsearch.embedder import load_embedder
    from semsearch.eval.beir import read_beir
    from semsearch.eval.search_eval import run_collection, shared_collections

    embedder = load_embedder(model)
    return [run_collection(read_beir(folder, split), embedder)
            for folder, split in shared_collections(data)]


def _reference_out_of_fold(runs) -> dict[str, float]:
    """Out of fold by its definition: chosen on one half of every collection by fusing each
    setting, scored on the other half, both ways round."""
    from semsearch.eval.search_eval import FUSION_GRID, describe, hybrid_rankings, score_rankings

    by_name = {describe(f): f for f in FUSION_GRID}
    chosen = [_reference_calibrate([_half(run, part) for run in runs])[0] for part in (0, 1)]
    return {run.name: sum(score_rankings(hybrid_rankings(_half(run, 1 - part),
                                                         by_name[chosen[part]]),
                                         _half(run, 1 - part).qrels)["ndcg@10"]
                          for part in (0, 1)) / 2 for run in runs}


def test_a_model_too_slow_for_the_budget_is_calibrated_on_a_sample_and_says_so(
        static_model_dir, small_data, tmp_path, monkeypatch):
    import shutil

    from semsearch import calibration

    model = tmp_path / "model"
    shutil.copytree(static_model_dir, model)
    monkeypatch.delenv("SEMSEARCH_CALIBRATE")
    monkeypatch.setenv(calibration.BUDGET_ENV, "0")
    lines: list[str] = []
    summary = calibration.calibrate_after(model, small_data, log=lines.append)
    assert any("would take about" in line and "10% of each corpus" in line for line in lines)
    assert summary.sample["corpus"] == 0.1 and summary.sample["queries"] == 500
    # every judged document kept, a tenth of the others: 12 queries' documents and 6 of 60
    assert all(figures["queries"] == 12 for figures in summary.collections.values())
    saved = json.loads((model / "fusion.json").read_text())["measured"]
    assert all(entry["sample"]["corpus"] == 0.1 for entry in saved.values())


def test_the_budget_comes_from_the_environment_and_a_bad_one_is_said_and_ignored(monkeypatch):
    from semsearch import calibration

    monkeypatch.setenv(calibration.BUDGET_ENV, "90")
    assert calibration.budget_seconds() == 90.0
    for bad in ("soon", "-1", "inf", "nan"):
        monkeypatch.setenv(calibration.BUDGET_ENV, bad)
        lines: list[str] = []
        assert calibration.budget_seconds(lines.append) == calibration.BUDGET
        assert len(lines) == 1 and calibration.BUDGET_ENV in lines[0] and repr(bad) in lines[0]


def test_a_model_is_calibrated_when_written_and_old_indexes_follow(
        static_model_dir, small_data, tmp_path, monkeypatch):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(static_model_dir, model)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    (tmp_path / "docs.txt").write_text("rivers flow to the sea\ncats purr\nmachine learning\n")
    built = run("index", tmp_path / "docs.txt", "--model", model, "--out", tmp_path / "idx")
    assert built.exit_code == 0, built.output
    before = json.loads(run("query", "cats", "--index", tmp_path / "idx", "--json")
                        .output.splitlines()[0])
    assert before["fusion"]["source"] == "default" and not before["fusion"]["calibrated"]

    monkeypatch.delenv("SEMSEARCH_CALIBRATE")
    from semsearch.calibration import calibrate_after

    lines: list[str] = []
    summary = calibrate_after(model, small_data, log=lines.append)
    assert lines and lines[-1].startswith("hybrid fusion calibrated in ")
    assert set(summary.collections) == {"mlquestions", "arguana"}
    assert summary.sample == {"queries": None, "corpus": None, "seed": 0}  # whole: within budget
    # the same choice and out-of-fold figures as fusing every setting of the real searches
    runs = _searched(model, small_data)
    setting, _ = _reference_calibrate(runs)
    assert summary.fusion["setting"] == setting
    for run_ in runs:
        assert summary.collections[run_.name]["hybrid_out_of_fold"] == pytest.approx(
            _reference_out_of_fold(runs)[run_.name], abs=1e-12)
    saved = json.loads((model / "fusion.json").read_text())
    assert saved["fusion"]["calibrated"] is True

    result = run("query", "cats", "--index", tmp_path / "idx")
    assert "the model's calibration, made after the index was built" in result.output
    after = json.loads(run("query", "cats", "--index", tmp_path / "idx", "--json")
                       .output.splitlines()[0])
    assert after["fusion"]["source"] == "model" and after["fusion"]["calibrated"]
    checked = run("check", tmp_path / "idx")
    assert "made after the index was built" in checked.output and checked.exit_code == 0


def test_no_calibrate_and_no_collections_say_so(static_model_dir, tmp_path, monkeypatch):
    from semsearch.calibration import calibrate_after

    monkeypatch.delenv("SEMSEARCH_CALIBRATE")
    lines: list[str] = []
    assert calibrate_after(static_model_dir, tmp_path, skip=True, log=lines.append) is None
    assert "--no-calibrate" in lines[-1]
    assert calibrate_after(static_model_dir, tmp_path, log=lines.append) is None
    assert "no retrieval collection" in lines[-1]
    assert not (static_model_dir / "fusion.json").exists()


def test_the_samples_keep_judged_queries_and_their_documents():
    from semsearch.eval.retrieval import RetrievalSet
    from semsearch.eval.search_eval import sample_corpus, sample_queries

    queries = {f"q{i}": f"query {i}" for i in range(50)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(40)} | {"q49": {"d0": 0}}  # q49: unjudged
    corpus = {f"d{i}": f"document {i}" for i in range(200)}
    full = RetrievalSet("c", queries, corpus, qrels)
    assert sample_queries(full, None) is full and sample_queries(full, 100) is full
    drawn = sample_queries(full, 10, seed=0)
    assert len(drawn.qrels) == 10 and set(drawn.qrels) <= {f"q{i}" for i in range(40)}
    assert drawn.qrels == sample_queries(full, 10, seed=0).qrels  # seeded: the same draw
    assert drawn.qrels != sample_queries(full, 10, seed=1).qrels
    assert drawn.corpus is corpus
    smaller = sample_corpus(drawn, 0.25, seed=0)
    judged = {doc for grades in drawn.qrels.values() for doc in grades}
    assert judged <= set(smaller.corpus)
    assert len(smaller.corpus) == len(judged) + round(0.25 * (200 - len(judged)))
    assert sample_corpus(drawn, None) is drawn
