"""The daemon's allocator settings (monitor/heap.py), read back from glibc itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a child: this test must not change the allocator of the process running the suite.
_CHILD = textwrap.dedent(
    """
    import ctypes
    from monitor import heap

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        ).split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2

    def mapped_with(size):
        # Blocks glibc gave pages of their own while a block of `size` bytes is alive.
        block = bytearray(size)
        n = libc.mallinfo2().hblks
        del block
        return n

    before = mapped_with(0)
    # A freed 8 MB block raises glibc's own threshold to 8 MB: 1 MB then comes from the heap.
    mapped_with(8 << 20)
    print(mapped_with(1 << 20) - before)
    assert heap.return_large_frees()
    # The heap's free top still serves one more megabyte; freed, the top goes back (over
    # the trim threshold now), and the next one gets pages of its own.
    mapped_with(1 << 20)
    print(mapped_with(1 << 20) - before, mapped_with(heap.LARGE_BLOCK // 2) - before)
    """
)


def test_large_blocks_get_their_own_pages_after_return_large_frees() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    # Before: the megabyte came from the heap (glibc had raised its threshold); after: it
    # has pages of its own, unmapped when freed; a block under the threshold still does not.
    assert out == ["0", "1", "0"]
