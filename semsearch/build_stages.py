"""The stages of an index build, timed: each one's wall seconds kept for the report (`--json`,
bench/bench_million.py) and told as one line when it ends.

    stages = Stages(log=print)
    with stages("faiss train") as note:
        train(...)
        note.append("65,536 vectors")      # -> "faiss train: 12.3s (65,536 vectors)"
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Stages:
    """Wall seconds a stage (repeated stages add up), and the parts of the streaming pass."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.log = log
        self.seconds: dict[str, float] = {}
        self.parts: dict[str, float] = {}  # seconds of the pass's parts, summed over workers

    @contextmanager
    def __call__(self, name: str) -> Iterator[list[str]]:
        notes: list[str] = []
        started = time.perf_counter()
        yield notes
        seconds = time.perf_counter() - started
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if self.log is not None:
            self.log(f"{name}: {seconds:.1f}s" + (f" ({'; '.join(notes)})" if notes else ""))

    def to_dict(self) -> dict:
        return {"stages": {name: round(s, 3) for name, s in self.seconds.items()},
                "pass_parts": {name: round(s, 3) for name, s in self.parts.items()}}
