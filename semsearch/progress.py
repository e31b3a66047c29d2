"""How the library says what it is doing: one `log` callback for its lines, and a meter for
a long stage that is a bar on a terminal and, anywhere else, a line every so often with the
time spent and left, so that no stage is ever silent for long.

Every public function (semsearch.train, semsearch.index, ...) takes `log` and `progress`: the
command line passes its stderr writer (quiet under -q) and whether stderr is a terminal; a
Python caller gets the `semsearch` logger at INFO by default, so the lines go wherever their
logging is configured to send them (nowhere until it is).

    >>> lines = []
    >>> with Meter(3, "encoding", lines.append, every=0) as meter:
    ...     meter.update(3)
    >>> lines[-1].startswith("encoding: 3 of 3 texts in ")
    True
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

Log = Callable[[str], None]

# seconds between two lines of a meter that has no bar: a stage may run for many minutes, and
# a line at least this often says it is alive and how long is left
EVERY = 15.0


def library_log() -> Log:
    """The default `log` of the public functions: the `semsearch` logger at INFO."""
    return logging.getLogger("semsearch").info


def silent(_message: str) -> None:
    """A `log` that says nothing."""


def resolve_log(log: Log | None) -> Log:
    """`log`, or the library's logger when None."""
    return library_log() if log is None else log


class Meter:
    """Progress through `total` units of one stage: a tqdm bar on stderr when `bar`, else a
    line through `log` at most every `every` seconds (done, total, time, time left), and in both
    cases one closing line with the stage's time when it took longer than `every`."""

    def __init__(self, total: int | None, description: str, log: Log, bar: bool = False,
                 unit: str = "text", every: float = EVERY, done: int = 0) -> None:
        self.total, self.description, self.log, self.unit = total, description, log, unit
        self.every, self.done = every, done
        self.first = done
        self.postfix: dict[str, str] = {}
        self.started = self.last = time.perf_counter()
        self.bar = None
        if bar and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=description, unit=unit,
                            file=sys.stderr, leave=False, dynamic_ncols=True, smoothing=0.1)

    def update(self, count: int = 1) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.perf_counter()
        if now - self.last >= self.every and (self.total is None or self.done < self.total):
            self.last = now
            self.log(self._line(now))

    def set_postfix(self, **values: str) -> None:
        """Figures to show after the count (a loss, a rate), on the bar or in the next line."""
        self.postfix = {name: str(value) for name, value in values.items()}
        if self.bar is not None:
            self.bar.set_postfix(self.postfix, refresh=False)

    def _line(self, now: float) -> str:
        spent = now - self.started
        if self.total is None:  # a count without an end known in advance
            line = f"{self.description}: {self.done:,} {self.unit}s in {spent:.0f}s"
            return line + "".join(f", {name} {value}" for name, value in self.postfix.items())
        line = (f"{self.description}: {self.done:,} of {self.total:,} {self.unit}s in "
                f"{spent:.0f}s")
        moved = self.done - self.first
        if moved and self.done < self.total:
            line += f", about {spent / moved * (self.total - self.done):.0f}s left"
        return line + "".join(f", {name} {value}" for name, value in self.postfix.items())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        now = time.perf_counter()
        if now - self.started >= self.every:
            self.log(self._line(now))

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sliced(items: Sequence, size: int, meter: Meter) -> Iterator[Sequence]:
    """`items` `size` at a time, each slice counted on `meter` once the caller is done with it
    (so a long pass over texts says how far it is)."""
    for start in range(0, len(items), size):
        part = items[start:start + size]
        yield part
        meter.update(len(part))


class Metered:
    """An encoder whose `encode` counts its texts on a Meter (a line every so often when no bar
    is shown), whatever calls it, `slice` texts at a time, so that a caller's big window (2,048
    long documents can take a minute) still gives a line every few seconds; everything else is
    the encoder's."""

    def __init__(self, encoder, meter: Meter, slice: int = 256) -> None:
        self._encoder, self._meter, self._slice = encoder, meter, slice

    def encode(self, texts, *args, **kwargs):
        import numpy as np

        texts = list(texts)
        parts = []
        for start in range(0, max(1, len(texts)), self._slice):
            part = texts[start:start + self._slice]
            parts.append(np.asarray(self._encoder.encode(part, *args, **kwargs)))
            self._meter.update(len(part))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)


@contextmanager
def stage(description: str, log: Log) -> Iterator[None]:
    """Say `description` as the stage starts and its time when it ends ("... done in 12s")."""
    log(f"{description} ...")
    started = time.perf_counter()
    yield
    log(f"{description}: done in {time.perf_counter() - started:.0f}s")
