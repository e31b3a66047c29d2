"""`semsearch serve` started for a benchmark on a free localhost port, ready when /health
answers, and stopped after (bench_serve.py, bench_million.py and soak_serve.py start it so)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(args: list[str], env: dict | None = None, timeout: float = 120.0
           ) -> Iterator[tuple[subprocess.Popen, str]]:
    """(process, url) of `python -m semsearch serve --port P ARGS...`, once /health answers 200;
    a RuntimeError (with the server's last words) if it exits or does not answer in `timeout`
    seconds. The server is terminated when the block ends."""
    import httpx

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "semsearch", "serve", "--port", str(port),
                                *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {process.stderr.read().strip()[-400:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s")
            time.sleep(0.2)
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
