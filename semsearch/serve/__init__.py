"""`semsearch serve`: the index and the model behind HTTP (FastAPI on uvicorn).

Needs the `serve` extra (`pip install 'semsearch[serve]'`). `create_app(ServeConfig(...))` gives
the ASGI app; `state.Served` holds what a worker loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from semsearch.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from semsearch.serve.state import ServeConfig

INSTALL_HINT = "semsearch serve needs FastAPI, uvicorn and fastapi-offline; install them " \
    "with `pip install 'semsearch[serve]'`"


def require_serve_extra() -> None:
    """Raise ConfigError saying what to install when FastAPI or uvicorn is missing."""
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "fastapi_offline")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"{INSTALL_HINT} ({', '.join(missing)} not found)")


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app serving `config` (default: from $SEMSEARCH_SERVE_CONFIG)."""
    require_serve_extra()
    from semsearch.serve.app import create_app as create

    return create(config)
