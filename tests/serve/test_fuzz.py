"""The HTTP API fuzzed with schemathesis against a real `semsearch serve` on 127.0.0.1, with and
without --api-key: no 5xx, every answer conforms to the schema /openapi.json declares (status,
content type, body), and the key is required wherever the schema says so.

The default run is bounded and seeded (FUZZ_EXAMPLES examples an operation, derandomised);
`HYPOTHESIS_PROFILE=deep` (tests/properties/profiles.py) raises the count for a longer run."""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from live_server import build_index, serve  # noqa: E402

KEY = "fuzz-key"
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
FUZZ_EXAMPLES = 2000 if DEEP else 150  # over all four operations


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir):
    return build_index(tmp_path_factory.mktemp("fuzz"), tiny_model_dir)


@pytest.fixture(scope="module")
def open_server(index_dir):
    with serve(index_dir, "--max-texts", "8", "--max-chars", "300", "--max-k", "20") as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server(index_dir):
    with serve(index_dir, "--max-texts", "8", "--max-chars", "300", "--max-k", "20",
               key=KEY) as server:
        yield server


# a request the schema calls invalid may be refused with any of these; schemathesis' default list
# plus 413, what this server answers (as declared) for a text or a list over its limits
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CHECKS = {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}

FUZZ = settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "api-key"])
def test_fuzz_every_endpoint(request, keyed, mode):
    """FUZZ_EXAMPLES generated requests (valid ones, or ones the schema says are invalid) spread
    over every operation; schemathesis' checks on each answer (no 5xx, status code, content type
    and body as declared, the key enforced where declared)."""
    from schemathesis.generation import GenerationMode

    server = request.getfixturevalue("keyed_server" if keyed else "open_server")
    from schemathesis.config import SchemathesisConfig

    api = schemathesis.openapi.from_url(server.url + "/openapi.json", headers=server.headers,
                                        config=SchemathesisConfig.from_dict(CHECKS))
    operations = {result.ok().label for result in api.get_all_operations()}
    seen: Counter = Counter()

    @FUZZ
    @given(case=api.as_strategy(GenerationMode(mode)))
    def check(case):
        seen[case.operation.label] += 1
        case.call_and_validate(base_url=server.url, headers=server.headers, timeout=60)

    check()
    if mode == "negative":
        operations.discard("GET /health")  # takes no input, so no input can be invalid
    assert set(seen) == operations, seen  # every endpoint was reached
    print(f"{mode}, {'with' if keyed else 'without'} key: {dict(seen)}")


def test_the_schema_declares_answers_errors_and_the_key(index_dir):
    with serve(index_dir, key=KEY) as server:
        document = httpx.get(server.url + "/openapi.json", headers=server.headers).json()
        assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKeyHeader",
                                                                  "basic"}
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                answers = operation["responses"]
                assert "$ref" in answers["200"]["content"]["application/json"]["schema"], path
                assert "413" in answers, (method, path)
                url = server.url + path
                if path == "/health":
                    assert "security" not in operation
                    assert httpx.get(url).status_code == 200
                    continue
                assert {"401", "422"} <= set(answers), (method, path)
                assert operation["security"], (method, path)
                refused = httpx.request(method, url, json={"queries": ["a"], "input": "a"},
                                        params={"q": "a"})
                assert refused.status_code == 401, (method, path, refused.text)
                assert set(refused.json()["error"]) == {"message", "type", "code"}
        assert httpx.get(server.url + "/openapi.json").status_code == 401
        # found (third deep run): bounds written as pydantic's "ge" / "le", which JSON Schema
        # does not know, so depth -141723982 was schema-valid; every bound is minimum / maximum
        assert not set(keys(document)) & {"ge", "le", "gt", "lt"}


def keys(node) -> list[str]:
    """Every key of a JSON document, at any depth."""
    if isinstance(node, dict):
        return [*node, *(key for value in node.values() for key in keys(value))]
    if isinstance(node, list):
        return [key for value in node for key in keys(value)]
    return []
