"""/docs and /redoc work without internet: the pages name no external URL, and every asset they
load (Swagger UI's and ReDoc's scripts, styles, icon, the OpenAPI schema) answers 200 from the
server itself, with and without --api-key (the key by HTTP Basic, as a browser sends it)."""

from __future__ import annotations

import re

import httpx
import pytest

pytest.importorskip("fastapi_offline")

from live_server import build_index, serve  # noqa: E402

KEY = "docs-key"
# src="...", href="...", Swagger UI's url: '...' and ReDoc's spec-url="..."
LOADED = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl\s*:\s*['"]([^'"]+)['"]""")


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir):
    return build_index(tmp_path_factory.mktemp("docs"), tiny_model_dir)


@pytest.mark.slow
@pytest.mark.parametrize("key", [None, KEY])
def test_docs_pages_load_only_their_own_assets(index_dir, key):
    auth = ("anyone", key) if key else None
    with serve(index_dir, key=key) as server:
        for page in ("/docs", "/redoc"):
            answer = httpx.get(server.url + page, auth=auth)
            assert answer.status_code == 200, answer.text
            assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", answer.text,
                                 re.IGNORECASE), answer.text
            assets = [a or b for a, b in LOADED.findall(answer.text)]
            assert any(a.endswith(".js") for a in assets), assets
            assert "/openapi.json" in assets, assets
            for asset in assets:
                assert asset.startswith("/"), asset
                loaded = httpx.get(server.url + asset, auth=auth)
                assert loaded.status_code == 200, (asset, loaded.status_code)
                assert len(loaded.content) > 0
                if key:
                    assert httpx.get(server.url + asset).status_code == 401, asset
        if key:
            assert httpx.get(server.url + "/docs").status_code == 401
