"""Training's memory allocator setting: keep freed blocks for reuse instead of giving them back.

A training step allocates and frees the same large activation tensors (tens of MiB each) every
step. glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh
mmap and unmaps it on free, so each step faults in and zeroes those pages again: at the quick
preset's shape about 5M minor page faults over 6 steps, 16% of the CPU time in the kernel.
With mmap off and trimming off the heap keeps the freed blocks and the next step reuses them
(bench/probes/bench_heap.py measures it). It costs some peak memory (the heap holds what it reused,
+6-17% in that bench); `SEMSEARCH_REUSE_MEMORY=0` turns it off. Other platforms' allocators are
left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from collections.abc import Iterator

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024  # glibc's defaults, restored afterwards
DEFAULT_MMAP_MAX = 65_536


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within the block, large freed blocks stay in the process's heap for the next allocation
    (yields whether the setting applies here: glibc only). Afterwards glibc's defaults come back
    and the free memory is returned to the system (malloc_trim)."""
    libc = _glibc() if os.environ.get("SEMSEARCH_REUSE_MEMORY", "1") != "0" else None
    if libc is None:
        yield False
        return
    applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
