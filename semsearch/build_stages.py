"""The stages of an index build, timed: each one's wall seconds kept for the report (`--json`,
bench/bench_million.py) and told as one line when it ends; on a terminal, a stage without a
progress bar of its own shows its running time while it runs.

    stages = Stages(log=print, progress=True)
    with stages("faiss train") as note:
        train(...)
        note.append("65,536 vectors")      # -> "faiss train: 12.3s (65,536 vectors)"
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# seconds between two redraws of a running stage's clock
TICK = 0.5


class Stages:
    """Wall seconds a stage (repeated stages add up), and the parts of the streaming pass."""

    def __init__(self, log: Callable[[str], None] | None = None,
                 progress: bool | None = False) -> None:
        self.log = log
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self.parts: dict[str, float] = {}  # seconds of the pass's parts, summed over workers

    @contextmanager
    def __call__(self, name: str, clock: bool = True) -> Iterator[list[str]]:
        """Time the stage `name`; `clock` False: it shows progress of its own."""
        notes: list[str] = []
        started = time.perf_counter()
        ticking = _Clock(name, self.progress) if clock and self.progress is not False else None
        try:
            yield notes
        finally:
            if ticking is not None:
                ticking.stop()
        seconds = time.perf_counter() - started
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        if self.log is not None:
            self.log(f"{name}: {seconds:.1f}s" + (f" ({'; '.join(notes)})" if notes else ""))

    def to_dict(self) -> dict:
        return {"stages": {name: round(s, 3) for name, s in self.seconds.items()},
                "pass_parts": {name: round(s, 3) for name, s in self.parts.items()}}


class _Clock:
    """A running stage's name and time on stderr, redrawn by a thread until stopped."""

    def __init__(self, name: str, enabled: bool | None) -> None:
        from tqdm import tqdm

        # enabled None: on a terminal only (tqdm's own test)
        self.bar = tqdm(desc=name, bar_format="{desc}: {elapsed}", file=sys.stderr, leave=False,
                        disable=None if enabled is None else not enabled)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)
        self.thread.start()

    def _tick(self) -> None:
        while not self.done.wait(TICK):
            self.bar.refresh()

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self.bar.close()
