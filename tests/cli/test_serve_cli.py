"""`semsearch serve` without its extra says what to install, in one line."""

import importlib.util

from click.testing import CliRunner

from semsearch.cli import main


def test_serve_without_fastapi_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("fastapi", "uvicorn") else real(name, *a))
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "pip install 'semsearch[serve]'" in result.output and "Traceback" not in result.output


def test_serve_help_lists_the_endpoints():
    text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "/v1/embeddings" in text and "127.0.0.1" in text and "--api-key" in text
