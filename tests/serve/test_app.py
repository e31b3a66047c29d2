"""The HTTP API through the ASGI test client, on a tiny model and a small index: the same hits
as `semsearch query --json`, OpenAI-shaped embeddings, limits, keys and bad input as 4xx."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from semsearch.cli import main  # noqa: E402
from semsearch.serve.app import create_app  # noqa: E402
from semsearch.serve.state import Limits, ServeConfig  # noqa: E402

PETS = "".join(json.dumps(row) + "\n" for row in [
    {"id": "pets:1", "text": "cats purr softly", "kind": "mammal"},
    {"id": "pets:2", "text": "dogs bark loudly", "kind": "mammal"},
    {"id": "pets:3", "text": "parrots talk all day", "kind": "bird"},
    {"id": "pets:4", "text": "the ocean tide rises", "kind": "sea"},
])


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("serve")
    (folder / "pets.jsonl").write_text(PETS)
    result = CliRunner().invoke(main, ["index", str(folder / "pets.jsonl"), "--model",
                                       str(tiny_model_dir), "--out", str(folder / "pets")],
                                env={"SEMSEARCH_INDEXES": str(folder / "indexes")})
    assert result.exit_code == 0, result.output
    return folder / "pets"


@pytest.fixture(scope="module")
def client(index_dir):
    config = ServeConfig(index=str(index_dir), limits=Limits(max_texts=4, max_chars=200, max_k=5))
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        yield client


def query_json(index_dir: Path, *args: str) -> list[dict]:
    """What `semsearch query --json` prints, its scores as pytest.approx: a one-shot query
    encodes on numpy and serve on ONNX Runtime, the same vectors to float rounding."""
    result = CliRunner().invoke(main, ["query", *args, "--index", str(index_dir), "--json"])
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    # each line also says how the index fuses (the index's, not the hit's): serve's /health has it
    assert all(hit.pop("fusion")["source"] in ("index", "model", "default") for hit in hits
               if "fusion" in hit)
    return [{key: pytest.approx(value, abs=1e-5) if key.endswith("score") and value is not None
             else value for key, value in hit.items()} for hit in hits]


def test_get_search_gives_the_hits_query_json_prints(client, index_dir):
    answer = client.get("/search", params={"q": "dogs barking", "k": 3})
    assert answer.status_code == 200, answer.text
    assert answer.json()["hits"] == query_json(index_dir, "dogs barking", "-k", "3")
    assert answer.json()["index"] == str(index_dir.resolve())


def test_post_search_answers_each_query(client, index_dir):
    answer = client.post("/search", json={"queries": ["cats", "the sea"], "k": 2, "nprobe": 1})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["query"] for r in results] == ["cats", "the sea"]
    assert results[1]["hits"] == query_json(index_dir, "the sea", "-k", "2")


@pytest.mark.parametrize("params, cli", [
    ({"mode": "lexical"}, ["--mode", "lexical"]),
    ({"mode": "dense"}, ["--mode", "dense"]),
    ({"mode": "hybrid", "fusion": "rrf", "depth": 3}, ["--fusion", "rrf", "--depth", "3"]),
    ({"where": "kind=mammal"}, ["--where", "kind=mammal"]),
])
def test_query_options_pass_through_like_the_cli(client, index_dir, params, cli):
    answer = client.get("/search", params={"q": "dogs and cats talk", "k": 3, **params})
    assert answer.status_code == 200, answer.text
    assert answer.json()["hits"] == query_json(index_dir, "dogs and cats talk", "-k", "3", *cli)


def test_post_where_is_an_object(client):
    answer = client.post("/search", json={"queries": ["animals"], "k": 5,
                                          "where": {"kind": "bird"}})
    assert [hit["id"] for hit in answer.json()["results"][0]["hits"]] == ["pets:3"]
    unknown = client.post("/search", json={"queries": ["animals"], "where": {"colour": "red"}})
    # the index has no such field: a well-formed request the served index cannot answer (409;
    # found by the fuzzer, which counts 422 for a schema-valid request as a failure)
    assert unknown.status_code == 409 and "kind" in unknown.json()["error"]["message"]


def test_embeddings_are_openai_shaped_and_match_encode(client, tiny_model_dir):
    import semsearch

    answer = client.post("/v1/embeddings", json={"input": ["hello world", "a cat"],
                                                 "model": "anything"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list" and body["model"] == "tiny"
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    got = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    expected = semsearch.encode(["hello world", "a cat"], model=tiny_model_dir)
    assert np.allclose(got, expected, atol=1e-4)
    single = client.post("/v1/embeddings", json={"input": "a cat", "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(single.json()["data"][0]["embedding"]), "<f4")
    assert np.allclose(decoded, expected[1], atol=1e-4)


def test_health_names_model_and_index(client, index_dir):
    health = client.get("/health").json()
    assert health["model"]["name"] == "tiny" and len(health["model"]["fingerprint"]) == 16
    assert health["index"]["documents"] == 4 and health["uptime_s"] >= 0


def test_openapi_and_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/v1/embeddings", "/health"} <= set(paths)


def test_page_shows_escaped_hits(client):
    page = client.get("/", params={"q": "<script>alert(1)</script> cats", "k": 2})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "cats purr softly" in page.text and "model tiny" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert client.get("/").status_code == 200  # the empty form


@pytest.mark.parametrize("request_args, status, words", [
    (("post", "/search", {"json": {"queries": ["a"] * 5}}), 413, "at most 4"),
    (("post", "/search", {"json": {"queries": ["a" * 201]}}), 413, "at most 200"),
    (("get", "/search", {"params": {"q": "cats", "k": 6}}), 422, "at most 5"),
    (("post", "/v1/embeddings", {"json": {"input": ["a"] * 5}}), 413, "at most 4"),
    (("post", "/v1/embeddings", {"content": "x" * 70_000,
                                 "headers": {"content-type": "application/json"}}), 413, "bytes"),
    (("post", "/search", {"content": b"{not json", "headers": {"content-type":
                                                                "application/json"}}),
     422, "malformed JSON"),
    (("post", "/search", {"json": {"queries": ["a"], "colour": "red"}}), 422, "unknown field"),
    (("post", "/search", {"json": {"queries": ["a\x00b"]}}), 422, "NUL"),
    (("get", "/search", {"params": {"q": "a\x00b"}}), 422, "NUL"),
    (("post", "/v1/embeddings", {"json": {"input": "x\x00"}}), 422, "NUL"),
    (("post", "/v1/embeddings", {"json": {"input": [1, 2, 3]}}), 422, "input"),
    (("post", "/v1/embeddings", {"json": {"input": []}}), 422, "empty"),
    (("post", "/search", {"json": {"queries": ["  "]}}), 422, "empty query"),
    (("post", "/search", {"json": {"queries": ["a"], "k": 0}}), 422, "k"),
    (("post", "/search", {"json": ["a list"]}), 422, "body"),
    (("get", "/search", {}), 422, "q"),
    (("get", "/nowhere", {}), 404, "Not Found"),
])
def test_bad_requests_get_a_4xx_with_a_message(client, request_args, status, words):
    method, path, kwargs = request_args
    answer = getattr(client, method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]["message"]
    assert words in message and "Traceback" not in answer.text


def test_api_key_guards_all_but_health(index_dir):
    config = ServeConfig(index=str(index_dir), api_key="s3cret")
    with TestClient(create_app(config)) as client:
        assert client.get("/health").status_code == 200
        for path in ("/search?q=cats", "/", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 401, path
        assert client.post("/v1/embeddings", json={"input": "a"}).status_code == 401
        wrong = client.get("/search?q=cats", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
        bearer = client.get("/search?q=cats", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        assert client.get("/", auth=("user", "s3cret")).status_code == 200  # a browser's Basic
        assert client.get("/", headers={"X-API-Key": "s3cret"}).status_code == 200


def test_an_appended_index_is_picked_up_between_requests(tmp_path, index_dir, tiny_model_dir,
                                                         monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    folder = tmp_path / "pets"
    shutil.copytree(index_dir, folder)
    with TestClient(create_app(ServeConfig(index=str(folder)))) as client:
        assert client.get("/health").json()["index"]["documents"] == 4
        before = client.get("/search", params={"q": "giraffes eat leaves", "k": 5}).json()
        (tmp_path / "more.txt").write_text("giraffes eat leaves from tall trees\n")
        result = CliRunner().invoke(main, ["index", str(tmp_path / "more.txt"), "--append",
                                           "--out", str(folder), "--model", str(tiny_model_dir)])
        assert result.exit_code == 0, result.output
        after = client.get("/search", params={"q": "giraffes eat leaves", "k": 5}).json()
        assert len(after["hits"]) == len(before["hits"]) + 1
        assert any("giraffes" in hit["text"] for hit in after["hits"])
        assert client.get("/health").json()["index"]["documents"] == 5


def test_without_an_index_only_embeddings_answer(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "none"))
    with TestClient(create_app(ServeConfig(model=str(tiny_model_dir)))) as client:
        assert client.post("/v1/embeddings", json={"input": "a"}).status_code == 200
        answer = client.get("/search", params={"q": "cats"})
        assert answer.status_code == 409 and "--index" in answer.json()["error"]["message"]
        assert client.get("/health").json()["index"] is None


def test_a_real_server_on_a_free_port(index_dir):
    """`semsearch serve` as a user starts it: a process on 127.0.0.1, queried over TCP."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SEMSEARCH_API_KEY": "k3y"}
    server = subprocess.Popen([sys.executable, "-m", "semsearch.cli", "serve", "--index",
                               str(index_dir), "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            time.sleep(0.2)
        headers = {"Authorization": "Bearer k3y"}
        answer = httpx.get(f"{base}/search", params={"q": "ocean", "k": 2}, headers=headers)
        assert answer.status_code == 200 and len(answer.json()["hits"]) == 2
        assert httpx.get(f"{base}/search", params={"q": "ocean"}).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_broken_new_version_keeps_the_loaded_index(tmp_path, index_dir, monkeypatch):
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    folder = tmp_path / "pets"
    shutil.copytree(index_dir, folder)
    with TestClient(create_app(ServeConfig(index=str(folder)))) as client:
        before = client.get("/search", params={"q": "cats", "k": 2}).json()["hits"]
        (folder / "manifest.json").write_text("{ half written")
        answer = client.get("/search", params={"q": "cats", "k": 2})
        assert answer.status_code == 200 and answer.json()["hits"] == before


def test_concurrent_searches_are_answered_together_and_alike(index_dir):
    from concurrent.futures import ThreadPoolExecutor

    from semsearch.serve.state import Served

    served = Served(ServeConfig(index=str(index_dir)))
    try:
        queries = ["cats", "dogs barking", "the sea", "birds that talk"] * 4
        alone = [served.search([query], 2, {})[0] for query in queries]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda q: served.search([q], 2, {})[0], queries))
        for one, other in zip(alone, together, strict=True):
            assert [hit["id"] for hit in one] == [hit["id"] for hit in other]
            assert np.allclose([h["score"] for h in one], [h["score"] for h in other], atol=1e-5)
        with pytest.raises(Exception, match="empty query"):
            served.search(["   "], 2, {})
    finally:
        served.close()


# --- regressions from the schemathesis runs (tests/serve/test_fuzz.py) ------------------------

WHITE = ["", " ", "\x85", "\x1c", "\u3000", "\u2028", "\t\n"]  # Python white space, all of it
TEXTS = ["cats", "\ufeffcats", "a\x00b", "\x00", "ẞ"] + WHITE


def _declared(client) -> dict:
    return client.get("/openapi.json").json()


def test_fuzz_the_declared_query_pattern_is_what_the_server_accepts(client):
    """Found: an empty query, one of U+0085 (white space to Python, not to a schema's \\s) and
    one with a NUL were schema-valid but refused (422); the schema now declares the pattern the
    routes check, spelling out Python's white space."""
    import re

    document = _declared(client)
    get_q = next(p for p in document["paths"]["/search"]["get"]["parameters"]
                 if p["name"] == "q")["schema"]
    post_q = document["components"]["schemas"]["SearchRequest"]["properties"]["queries"]
    assert post_q["maxItems"] == 4 and post_q["items"]["maxLength"] == 200 == get_q["maxLength"]
    for text in TEXTS:
        valid = re.search(get_q["pattern"], text) is not None
        assert valid == (re.search(post_q["items"]["pattern"], text) is not None)
        answer = client.get("/search", params={"q": text, "k": 2})
        assert (answer.status_code == 200) == valid, (text, answer.text)
        answer = client.post("/search", json={"queries": [text], "k": 2})
        assert (answer.status_code == 200) == valid, (text, answer.text)


def test_fuzz_the_declared_where_pattern_is_what_the_server_accepts(client):
    """Found: where=U+0085 (no '=') was schema-valid and refused; the schema now declares
    FIELD=VALUE with a field name that is not blank."""
    import re

    document = _declared(client)
    where = next(p for p in document["paths"]["/search"]["get"]["parameters"]
                 if p["name"] == "where")["schema"]["anyOf"][0]["items"]["pattern"]
    for item in ["kind=mammal", "kind=", "kind=a=b", "\x85", "\x85=x", "=x", " kind=mammal"]:
        answer = client.get("/search", params={"q": "cats", "where": item})
        assert (answer.status_code == 200) == (re.search(where, item) is not None), item


def test_fuzz_a_filter_on_a_field_no_document_has_is_409(client):
    """Found: a filter on a field the index lacks was schema-valid and refused as invalid (422);
    the request is well formed and only the served index cannot answer it: 409, as for a
    missing index, with the message naming the fields it has."""
    answer = client.get("/search", params={"q": "cats", "where": "colour=red"})
    assert answer.status_code == 409
    assert "kind" in answer.json()["error"]["message"]


def test_fuzz_a_body_that_is_not_utf8_is_malformed_json(client):
    """Found: bytes that are not UTF-8 got FastAPI's 400 "There was an error parsing the body",
    a status the schema does not declare; now the 422 every other malformed body gets."""
    for path in ("/search", "/v1/embeddings"):
        answer = client.post(path, content=b'{"queries": ["\xff"]}',
                             headers={"content-type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert "malformed JSON body" in answer.json()["error"]["message"]


def test_fuzz_a_lexical_query_without_searchable_words_has_no_hits_alone_or_batched(client):
    """Found: a lexical query of stopwords and punctuation was refused (422) alone but answered
    with no hits beside another query (and so beside a concurrent request batched with it); it
    now has no hits either way, as BM25 matches nothing, and `semsearch query` says why."""
    alone = client.get("/search", params={"q": "the of !!", "mode": "lexical"})
    assert alone.status_code == 200 and alone.json()["hits"] == []
    batched = client.post("/search", json={"queries": ["the of !!", "cats"], "mode": "lexical"})
    assert batched.status_code == 200
    assert [len(r["hits"]) for r in batched.json()["results"]][0] == 0
    assert batched.json()["results"][1]["hits"]


def test_fuzz_the_embeddings_schema_names_the_one_dimension(client):
    document = _declared(client)
    dimensions = document["components"]["schemas"]["EmbeddingRequest"]["properties"]["dimensions"]
    dim = client.get("/health").json()["model"]["dim"]
    assert dimensions["anyOf"][0]["enum"] == [dim]
    assert client.post("/v1/embeddings", json={"input": "a", "dimensions": dim}).status_code == 200


def test_fuzz_a_filter_name_holding_nul_is_answered_not_a_500(client):
    """Found (deep run): a POST filter named "\\x00" or "kind\\x00" ended SQLite's JSON path
    ("JSON path error"), a 500; such a name now goes through json_each and, as no document
    has it, gets the 409 of any unknown field. In a GET where= it is a NUL in the text: 422."""
    for name in ("\x00", "kind\x00"):
        answer = client.post("/search", json={"queries": ["cats"], "where": {name: "x"}})
        assert answer.status_code == 409, answer.text
    answer = client.get("/search", params={"q": "cats", "where": "ki\x00nd=mammal"})
    assert answer.status_code == 422 and "where: text contains a NUL" in answer.text


@pytest.mark.parametrize("body", [{"dense_weight": False}, {"k": True}, {"depth": True},
                                  {"nprobe": False}, {"k": "3"}, {"dense_weight": "0.5"},
                                  {"k": 2.5}])
def test_fuzz_json_true_false_and_strings_are_not_numbers(client, body):
    """Found (deep run): "dense_weight": false was taken as 0 (pydantic's lax mode), though the
    schema says number; true, false and strings are refused where numbers are asked for."""
    answer = client.post("/search", json={"queries": ["cats"], **body})
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize("body", [{"dense_weight": 1}, {"k": 3.0}, {"depth": 40.0}])
def test_fuzz_integral_floats_are_integers_as_json_schema_says(client, body):
    """Found (second deep run): pydantic's strict mode, the first fix above, refused "k": 3.0,
    which JSON Schema counts as an integer."""
    assert client.post("/search", json={"queries": ["cats"], **body}).status_code == 200


def test_fuzz_a_boolean_filter_value_matches_as_the_library_and_cli_match_it(tmp_path,
                                                                             tiny_model_dir):
    """Found while fixing the above: POST where {"reviewed": true} compared the text "True",
    where the store (and `query --where reviewed=1`, and `search(where=...)`) holds JSON true
    as 1, so it matched nothing; it is 1 / 0 now."""
    rows = [{"id": "a", "text": "cats purr", "reviewed": True},
            {"id": "b", "text": "cats sleep", "reviewed": False}]
    (tmp_path / "flags.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = CliRunner().invoke(main, ["index", str(tmp_path / "flags.jsonl"), "--model",
                                       str(tiny_model_dir), "--out", str(tmp_path / "flags")],
                                env={"SEMSEARCH_INDEXES": str(tmp_path / "indexes")})
    assert result.exit_code == 0, result.output
    with TestClient(create_app(ServeConfig(index=str(tmp_path / "flags")))) as client:
        for value, expected in ((True, ["a"]), (False, ["b"]), (1, ["a"])):
            answer = client.post("/search", json={"queries": ["cats"], "where": {"reviewed": value}})
            assert [hit["id"] for hit in answer.json()["results"][0]["hits"]] == expected
