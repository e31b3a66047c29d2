"""reuse_freed_memory: inside it glibc serves large blocks from the heap (no mmap per block),
and afterwards its defaults are back. Checked through glibc's own counters (mallinfo2)."""

import ctypes

import numpy as np
import pytest

from semsearch.encoder.heap import _glibc, reuse_freed_memory


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mmapped_blocks_while_holding(size: int) -> int:
    """glibc's count of mmapped blocks while a `size`-byte array is alive."""
    libc = _glibc()
    libc.mallinfo2.restype = _MallInfo2
    block = np.empty(size, dtype=np.uint8)
    count = libc.mallinfo2().hblks
    del block
    return count


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"),
                    reason="glibc >= 2.33 only")
def test_large_blocks_come_from_the_heap_inside_and_from_mmap_outside() -> None:
    size = 64 << 20  # above glibc's largest mmap threshold (32 MiB)
    baseline = _mmapped_blocks_while_holding(1024)
    assert _mmapped_blocks_while_holding(size) == baseline + 1
    with reuse_freed_memory() as applied:
        assert applied
        assert _mmapped_blocks_while_holding(size) == baseline
    assert _mmapped_blocks_while_holding(size) == baseline + 1


def test_elsewhere_it_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("semsearch.encoder.heap._glibc", lambda: None)
    with reuse_freed_memory() as applied:
        assert applied is False


@pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"),
                    reason="glibc >= 2.33 only")
def test_the_environment_can_turn_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMSEARCH_REUSE_MEMORY", "0")
    baseline = _mmapped_blocks_while_holding(1024)
    with reuse_freed_memory() as applied:
        assert applied is False
        assert _mmapped_blocks_while_holding(64 << 20) == baseline + 1
