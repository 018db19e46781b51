"""The start-up heap: built with the cyclic GC paused, then frozen and trimmed.

Building 100,000 trunks' objects with the GC on ran a full collection over the growing
heap again and again (~0.7 s each at the end); pausing it and collecting once after
start-up costs one pass. What start-up freed (the config's parse, temporary lists) stays
mapped by glibc's allocator unless it is asked to give it back: `malloc_trim`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Iterator
from typing import Any, Final

# mallopt's parameters (glibc's malloc.h) and the threshold the daemon sets.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
LARGE_BLOCK: Final = 1024 * 1024


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting still frees)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def settle() -> None:
    """After start-up: one collection, everything left kept out of later GC scans (it
    lives for the whole run), and freed memory handed back to the system."""
    gc.collect()
    freeze()
    trim_soon()


def freeze() -> None:
    """Keep what exists now out of later cyclic GC passes (it lives for the whole run)."""
    gc.freeze()


def trim_soon() -> None:
    """`trim` on a thread, not awaited: malloc_trim walks the whole heap (ctypes releases
    the GIL), and the loop need not wait for the pages to go back."""
    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


def thaw() -> None:
    """At stop: the frozen objects become collectable again (tests start many monitors)."""
    gc.unfreeze()


def trim() -> bool:
    """glibc's malloc_trim(0): free pages go back to the system; False where unavailable."""
    malloc_trim = _glibc("malloc_trim")
    return malloc_trim is not None and bool(malloc_trim(0))


def return_large_frees(threshold: int = LARGE_BLOCK) -> bool:
    """Blocks of `threshold` bytes and more get pages of their own, unmapped when freed, and
    a free heap top that size goes back at once; False where unavailable (not glibc).

    glibc's default threshold follows the largest block freed (up to 32 MB): after the
    first /metrics scrape its buffers came from the heap, which then kept ~10 MB that
    nothing used between scrapes at 100,000 trunks. 128 KiB gave back ~15 MB more but
    made every scrape fault its pieces in afresh: 0.2-0.7 s longer (docs/benchmarks.md).
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, threshold)
    )


def _glibc(function: str) -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):  # not glibc (musl has neither function)
        return None
