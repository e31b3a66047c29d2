"""The second phase (semsearch.rescoring) through every search path on tiny real models: a
static model's index finds candidates, the tiny transformer re-scores them (and the other way
round), in `query`, the Python API, `serve`, `evaluate`, and as an index's recorded default;
bad depths, folders that are not models and changed models get one line each."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import semsearch
from semsearch.cli import main
from semsearch.index import Hit
from semsearch.rescoring import (
    RESCORE_FILE,
    RescoreSettings,
    load_rescorer,
    read_pair_settings,
    rescore_hits,
    write_pair_settings,
)

ROWS = [
    {"id": "ml", "text": "Machine learning lets computers learn patterns from examples."},
    {"id": "dl", "text": "Deep neural networks learn layered representations of data."},
    {"id": "hummus", "text": "Hummus blends chickpeas with tahini, lemon and garlic."},
    {"id": "tides", "text": "Ocean tides follow the moon and the sun."},
    {"id": "cats", "text": "Cats purr softly when they are content."},
    {"id": "rust", "text": "Rust forms when iron meets water and air."},
]


def run(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output, result.output
    return result


def json_lines(result) -> list[dict]:
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


@pytest.fixture
def workspace(tmp_path, monkeypatch, static_model_dir, tiny_model_dir):
    """An index of ROWS built with the static model; a private copy of the tiny model as the
    rescoring model (its folder gets rescore.json and ONNX graphs)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    shutil.copytree(tiny_model_dir, tmp_path / "strong")
    shutil.copytree(static_model_dir, tmp_path / "fast")
    result = run("index", "docs.jsonl", "--model", tmp_path / "fast", "--out", "idx")
    assert result.exit_code == 0, result.output
    return tmp_path


# --- the pure second phase -------------------------------------------------------------------

def _hits(ids, scores=None):
    scores = scores or [1.0 - i / 10 for i in range(len(ids))]
    return [Hit(i + 1, s, d, 0, 1, d) for i, (d, s) in enumerate(zip(ids, scores))]


def test_weight_one_ranks_by_the_rescoring_cosine_and_zero_by_bm25():
    first = _hits(["a", "b", "c", "d"])
    bm25 = np.array([4.0, 0.0, 0.0, 9.0])
    cosines = np.array([0.1, 0.7, 0.4, 0.2])
    by_cosine = rescore_hits(first, cosines, bm25, 1.0, 4)
    assert [h.id for h in by_cosine] == ["b", "c", "d", "a"]
    assert [h.rescore_rank for h in by_cosine] == [1, 2, 3, 4]
    assert [h.first_rank for h in by_cosine] == [2, 3, 4, 1]
    assert by_cosine[0].rescore_score == pytest.approx(0.7)
    by_bm25 = rescore_hits(first, cosines, bm25, 0.0, 4)
    # BM25 first; its ties (b and c, no shared word) go by the cosine
    assert [h.id for h in by_bm25] == ["d", "a", "b", "c"]
    no_bm25 = rescore_hits(first, cosines, None, 0.0, 2)  # an index without a lexical part
    assert [h.id for h in no_bm25] == ["b", "c"]


@pytest.mark.parametrize("normalise", ["minmax", "zscore"])
def test_both_normalisations_rank_between_the_two_sides(normalise):
    from semsearch.rescoring import second_phase

    cosines, bm25 = np.array([0.9, 0.1, 0.5]), np.array([0.0, 10.0, 6.0])
    order, _, _ = second_phase(cosines, bm25, 0.5, normalise)
    assert order.tolist()[0] == 2  # good on both sides beats best on one
    with pytest.raises(semsearch.errors.ConfigError, match="normalisation"):
        second_phase(cosines, bm25, 0.5, "rank")


@pytest.mark.parametrize("seed", range(40))
def test_the_numpy_second_phase_is_exactly_fuse(seed):
    """second_phase (what calibration sweeps and query runs) against fuse (hybrid search's
    fusion) on random candidates, ties included."""
    from semsearch.index.fusion import fuse
    from semsearch.rescoring import second_phase

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    cosines = rng.choice([0.1, 0.5, 0.9], n) if seed % 3 == 0 else rng.random(n)
    bm25 = np.where(rng.random(n) < 0.3, 0.0, rng.choice([1.0, 2.0, 5.0], n) if seed % 2
                    else rng.random(n) * 10)
    weight = float(rng.choice([0.0, 0.3, 0.5, 0.8, 1.0]))
    ids = [f"d{i}" for i in range(n)]
    by_cosine = [(ids[i], float(cosines[i])) for i in np.argsort(-cosines, kind="stable")]
    by_bm25 = [(ids[i], float(bm25[i])) for i in np.argsort(-bm25, kind="stable")]
    expected = fuse(by_cosine, by_bm25, "weighted", weight)
    order, scores, _ = second_phase(cosines, bm25, weight)
    assert [ids[i] for i in order] == [f.doc_id for f in expected]
    assert scores[order].tolist() == [f.score for f in expected]


def test_pair_settings_round_trip_and_other_weights_fall_back_to_defaults(tmp_path):
    write_pair_settings(tmp_path, "f1", "abc:hybrid", RescoreSettings(30, 0.7, calibrated=True),
                        {"collections": {}})
    write_pair_settings(tmp_path, "f1", "lexical", RescoreSettings(20, 0.9, calibrated=True), {})
    settings, entry = read_pair_settings(tmp_path, "f1", "abc:hybrid")
    assert (settings.depth, settings.weight, settings.calibrated) == (30, 0.7, True)
    assert read_pair_settings(tmp_path, "f1", "lexical")[0].depth == 20
    assert read_pair_settings(tmp_path, "other-weights", "lexical")[0] == RescoreSettings()
    (tmp_path / RESCORE_FILE).write_text("{not json")
    assert read_pair_settings(tmp_path, "f1", "lexical")[0] == RescoreSettings()


@pytest.mark.parametrize("depth", [0, -3, 1001, True, 2.5])
def test_bad_depths_are_refused(depth):
    with pytest.raises(semsearch.errors.ConfigError, match="depth"):
        RescoreSettings(depth=depth)


# --- query -------------------------------------------------------------------------------------

def test_query_rescore_carries_every_side_and_reorders_by_the_rescoring_model(workspace):
    strong = workspace / "strong"
    first = json_lines(run("query", "machine learning", "--index", "idx", "-k", "6", "--json",
                           "--no-rescore"))
    second = json_lines(run("query", "machine learning", "--index", "idx", "-k", "6", "--json",
                            "--rescore", strong, "--rescore-weight", "1"))
    assert {h["id"] for h in second} == {h["id"] for h in first}
    assert all(h["rescore_score"] is not None and h["first_rank"] is not None for h in second)
    # weight 1: the order is the rescoring model's cosine, which is its own encoder's
    assert [h["rescore_rank"] for h in second] == list(range(1, 7))
    vectors = semsearch.load(strong).encode(["machine learning"] + [h["text"] for h in second])
    cosines = vectors[1:] @ vectors[0]
    assert np.all(np.diff(cosines) <= 1e-4)
    assert [h["rescore_score"] for h in second] == pytest.approx(cosines.tolist(), abs=1e-2)
    # the first stage's sides are still reported
    assert any(h["lexical_rank"] is not None for h in second)
    assert second[0]["rescore"]["depth"] == 50 and second[0]["rescore"]["source"] == "query"


def test_bm25_of_candidates_is_each_documents_own_score(workspace):
    from semsearch.index import SearchIndex

    opened = SearchIndex.open(workspace / "idx")
    try:
        scores, rows = opened.lexical.search("machine learning networks", 10)
        every = opened.lexical.scores_at("machine learning networks", opened.lexical.rows)
        assert sorted(every[every > 0].tolist(), reverse=True) == pytest.approx(scores.tolist())
        picked = opened.lexical.scores_at("machine learning networks", rows[::-1])
        assert picked.tolist() == pytest.approx(scores[::-1].tolist())
        # a row that is no document's first chunk, and a query with no known word: 0
        assert opened.lexical.scores_at("machine", [10**6]).tolist() == [0.0]
        assert opened.lexical.scores_at("zzzz qqqq", rows).tolist() == [0.0] * len(rows)
    finally:
        opened.close()


def test_depth_bounds_what_is_rescored(workspace):
    hits = json_lines(run("query", "machine learning", "--index", "idx", "-k", "5", "--json",
                          "--rescore", workspace / "strong", "--rescore-depth", "2"))
    assert [h["rescore_rank"] is not None for h in hits] == [True, True, False, False, False]
    assert [h["first_rank"] for h in hits[2:]] == [3, 4, 5]


def test_lexical_first_stage_needs_no_first_stage_model(workspace):
    shutil.rmtree(workspace / "fast")
    hits = json_lines(run("query", "ocean moon", "--index", "idx", "--mode", "lexical",
                          "--rescore", workspace / "strong", "--json"))
    assert hits and hits[0]["id"] == "tides"
    assert all(h["dense_rank"] is None and h["rescore_score"] is not None for h in hits)


@pytest.mark.parametrize("depth", ["0", "-1", "1001"])
def test_bad_depth_on_the_command_line_is_one_line(workspace, depth):
    result = run("query", "tides", "--index", "idx", "--rescore", workspace / "strong",
                 "--rescore-depth", depth)
    assert result.exit_code != 0
    assert "--rescore-depth" in result.output and "1<=x<=1000" in result.output


def test_a_folder_that_is_not_a_model_is_one_line(workspace):
    (workspace / "not-a-model").mkdir()
    result = run("query", "tides", "--index", "idx", "--rescore", workspace / "not-a-model")
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "not-a-model" in result.output


def test_the_first_stage_model_as_rescorer_is_allowed_and_says_so(workspace):
    result = run("query", "tides", "--index", "idx", "--rescore", workspace / "fast")
    assert result.exit_code == 0, result.output
    assert "adds nothing new" in result.output


def test_a_static_model_may_rescore_a_transformer_index(workspace, tiny_model_dir,
                                                       static_model_dir):
    result = run("index", "docs.jsonl", "--model", tiny_model_dir, "--out", "tiny-idx")
    assert result.exit_code == 0, result.output
    hits = json_lines(run("query", "ocean", "--index", "tiny-idx", "--rescore", static_model_dir,
                          "--json"))
    assert hits and all(h["rescore_score"] is not None for h in hits)


def test_uncalibrated_pairs_say_how_to_calibrate(workspace):
    result = run("query", "tides", "--index", "idx", "--rescore", workspace / "strong")
    assert "uncalibrated" in result.output and "semsearch evaluate" in result.output


def test_a_calibrated_pair_is_found_by_query(workspace):
    strong = workspace / "strong"
    fingerprint = load_rescorer(strong).fingerprint
    first = semsearch.load(workspace / "fast").fingerprint
    write_pair_settings(strong, fingerprint, f"{first}:hybrid",
                        RescoreSettings(depth=3, weight=0.6, calibrated=True), {})
    hits = json_lines(run("query", "tides", "--index", "idx", "--rescore", strong, "--json",
                          "-k", "5"))
    assert hits[0]["rescore"]["source"] == "calibrated"
    assert (hits[0]["rescore"]["depth"], hits[0]["rescore"]["weight"]) == (3, 0.6)
    assert sum(h["rescore_rank"] is not None for h in hits) == 3


# --- the index's recorded default ------------------------------------------------------------

def test_index_records_a_default_second_phase_that_query_uses(workspace):
    strong = workspace / "strong"
    result = run("index", "docs.jsonl", "--model", workspace / "fast", "--out", "two",
                 "--rescore", strong)
    assert result.exit_code == 0, result.output
    manifest = json.loads((workspace / "two" / "manifest.json").read_text())
    assert manifest["rescore"]["model_path"] == str(strong.resolve())
    hits = json_lines(run("query", "tides", "--index", "two", "--json"))
    assert all(h["rescore_score"] is not None for h in hits)
    off = json_lines(run("query", "tides", "--index", "two", "--json", "--no-rescore"))
    assert all("rescore_score" not in h and "first_rank" not in h for h in off)
    api = semsearch.query("tides", index=workspace / "two")
    assert api[0]["rescore_score"] is not None
    assert "rescore_score" not in semsearch.query("tides", index=workspace / "two",
                                                  rescore=False)[0]


def test_recording_on_an_existing_index_and_clearing_it(workspace):
    strong = workspace / "strong"
    before = (workspace / "idx" / "index.faiss").read_bytes()
    assert run("index", "--rescore", strong, "--out", "idx").exit_code == 0
    assert json.loads((workspace / "idx" / "manifest.json").read_text())["rescore"]
    assert (workspace / "idx" / "index.faiss").read_bytes() == before
    hits = json_lines(run("query", "tides", "--index", "idx", "--json"))
    assert hits[0]["rescore_score"] is not None
    assert run("index", "--rescore", "none", "--out", "idx").exit_code == 0
    assert json.loads((workspace / "idx" / "manifest.json").read_text())["rescore"] is None


def test_a_missing_or_changed_recorded_model_is_one_line(workspace):
    strong = workspace / "strong"
    assert run("index", "--rescore", strong, "--out", "idx").exit_code == 0
    healthy = run("check", "idx")
    assert healthy.exit_code == 0 and "second phase" in healthy.output
    # changed: other weights in the same folder
    config = json.loads((strong / "config.json").read_text())
    config["model"]["max_seq_len"] = config["model"]["max_seq_len"] - 1
    (strong / "config.json").write_text(json.dumps(config))
    result = run("query", "tides", "--index", "idx")
    assert result.exit_code != 0
    assert "record it again" in result.output and len(result.output.strip().splitlines()) == 1
    with pytest.raises(semsearch.errors.IndexError_, match="record it again"):
        semsearch.query("tides", index=workspace / "idx")
    checked = run("check", "idx")
    assert checked.exit_code != 0 and "now has fingerprint" in checked.output
    # gone
    shutil.rmtree(strong)
    result = run("query", "tides", "--index", "idx")
    assert result.exit_code != 0 and "is gone" in result.output
    assert run("query", "tides", "--index", "idx", "--no-rescore").exit_code == 0


# --- the Python API --------------------------------------------------------------------------

def test_api_query_rescore_matches_the_cli(workspace):
    strong = workspace / "strong"
    api = semsearch.query("deep networks", index=workspace / "idx", k=4, rescore=strong,
                          rescore_depth=4)
    cli = json_lines(run("query", "deep networks", "--index", "idx", "-k", "4", "--json",
                         "--rescore", strong, "--rescore-depth", "4"))
    assert [h["id"] for h in api] == [h["id"] for h in cli]
    assert [h["rescore_score"] for h in api] == pytest.approx(
        [h["rescore_score"] for h in cli], abs=1e-3)
    with pytest.raises(semsearch.errors.ConfigError, match="rescore=MODEL"):
        semsearch.query("deep networks", index=workspace / "idx", rescore_depth=3)


def test_the_rescorer_cache_is_keyed_by_row_and_counts_hits(workspace):
    from semsearch.rescoring import Rescorer

    rescorer = load_rescorer(workspace / "strong", cache_size=3)
    assert isinstance(rescorer, Rescorer)
    texts = ["cats purr", "dogs bark", "tides rise", "rust forms"]
    first = rescorer.chunk_vectors("k", [0, 1, 2], texts[:3])
    again = rescorer.chunk_vectors("k", [2, 1, 0], texts[2::-1])
    np.testing.assert_allclose(again, first[::-1], atol=1e-6)
    assert rescorer.stats()["hits"] == 3 and rescorer.stats()["misses"] == 3
    rescorer.chunk_vectors("k", [3], texts[3:])
    assert rescorer.stats()["entries"] == 3  # bounded: the least recently used left
    rescorer.forget()
    assert rescorer.stats()["entries"] == 0
    # a shorter window reads fewer tokens: another vector, cached apart
    long_text = " ".join(["ocean"] * 40 + ["garlic"] * 40)
    full = rescorer.chunk_vectors("k", [9], [long_text])
    short = rescorer.chunk_vectors("k", [9], [long_text], window=8)
    assert float(full[0] @ short[0]) < 0.999


# --- serve -----------------------------------------------------------------------------------

def test_serve_rescores_per_request_and_reports_its_cache(workspace):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from semsearch.serve.app import create_app
    from semsearch.serve.state import ServeConfig

    strong = workspace / "strong"
    config = ServeConfig(index=str(workspace / "idx"), rescore=str(strong))
    with TestClient(create_app(config)) as client:
        health = client.get("/health").json()
        assert health["rescore"]["path"] == str(strong.resolve())
        assert health["rescore"]["fingerprint"] == load_rescorer(strong).fingerprint
        on = client.get("/search", params={"q": "deep networks", "k": 4}).json()["hits"]
        assert all(h["rescore_score"] is not None for h in on)
        cli = json_lines(run("query", "deep networks", "--index", "idx", "-k", "4", "--json",
                             "--rescore", strong))
        assert [h["id"] for h in on] == [h["id"] for h in cli]
        off = client.post("/search", json={"queries": ["deep networks"], "k": 4,
                                           "rescore": False}).json()
        # no second phase ran: its fields are absent, as in `semsearch query --json`
        assert all("rescore_score" not in h and "first_rank" not in h
                   for h in off["results"][0]["hits"])
        client.get("/search", params={"q": "deep networks", "k": 4, "rescore_depth": 3})
        cache = client.get("/health").json()["rescore"]["cache"]
        assert cache["hits"] >= 3 and cache["hit_rate"] > 0
        bad = client.get("/search", params={"q": "x", "rescore_depth": 0})
        assert bad.status_code == 422
    # an index that records none and a server told none: no second phase, said in /health; asked
    # for one anyway, the server cannot answer (409), as for a filter on an unknown field
    with TestClient(create_app(ServeConfig(index=str(workspace / "idx")))) as client:
        assert client.get("/health").json()["rescore"] is None
        asked = client.get("/search", params={"q": "tides", "rescore": True})
        assert asked.status_code == 409 and "rescoring model" in asked.json()["error"]["message"]


def test_serve_drops_the_cache_when_the_index_is_swapped(workspace):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from semsearch.serve.app import create_app
    from semsearch.serve.state import ServeConfig

    config = ServeConfig(index=str(workspace / "idx"), rescore=str(workspace / "strong"))
    with TestClient(create_app(config)) as client:
        client.get("/search", params={"q": "tides"})
        before = client.get("/health").json()["rescore"]["cache"]
        assert before["entries"] == before["misses"] == len(ROWS)  # every document a candidate
        (workspace / "more.jsonl").write_text(json.dumps({"id": "new", "text": "Tides again"}))
        assert run("index", "more.jsonl", "--append", "--out", "idx").exit_code == 0
        hits = client.get("/search", params={"q": "tides"}).json()["hits"]
        assert "new" in {h["id"] for h in hits}
        # the old version's vectors were dropped: every candidate was encoded again
        after = client.get("/health").json()["rescore"]["cache"]
        assert after["entries"] == len(ROWS) + 1
        assert after["misses"] == before["misses"] + len(ROWS) + 1 and after["hits"] == 0


# --- evaluate --------------------------------------------------------------------------------

def test_evaluate_rescore_reports_the_cascade_beside_the_first_stage(workspace, data_dir):
    strong = workspace / "strong"
    result = run("evaluate", "--model", workspace / "fast", "--rescore", strong,
                 "--rescore-mode", "lexical", "--limit", "60", "--no-clustering", "--json",
                 env={"SEMSEARCH_DATA": str(data_dir)})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):result.output.rindex("}") + 1])
    section = report["rescore"]["modes"]["lexical"]
    assert set(section["collections"]) == {"mlquestions", "arguana"}
    assert not (strong / RESCORE_FILE).exists()  # --limit: a quick check, nothing saved


@pytest.mark.slow
def test_calibration_is_saved_for_the_pair_and_the_real_path_agrees(workspace, data_dir):
    from semsearch.embedder import load_embedder
    from semsearch.eval.rescore_eval import evaluate_rescoring

    strong, fast = workspace / "strong", workspace / "fast"
    sets = [(data_dir / "beir" / "mlquestions", "dev"), (data_dir / "beir" / "arguana", "test")]
    report = evaluate_rescoring(load_embedder(fast), strong, sets, limit=150, save=True)
    for mode, values in report["modes"].items():
        assert values["settings"]["calibrated"]
        for name, collection in values["collections"].items():
            # the real path gives what the sweep measured for the chosen setting
            assert collection["cascade"]["ndcg@10"] == pytest.approx(
                collection["cascade_swept_ndcg@10"], abs=1e-9), (mode, name)
            assert 0 <= collection["recall_at_depth"] <= 1
    first = semsearch.load(fast).fingerprint
    settings, entry = read_pair_settings(strong, load_rescorer(strong).fingerprint,
                                         f"{first}:hybrid")
    assert settings.calibrated and entry["collections"]
    hits = json_lines(run("query", "tides", "--index", "idx", "--rescore", strong, "--json"))
    assert hits[0]["rescore"]["source"] == "calibrated"
    lexical = json_lines(run("query", "tides", "--index", "idx", "--rescore", strong, "--json",
                             "--mode", "lexical"))
    assert lexical[0]["rescore"]["source"] == "calibrated"
