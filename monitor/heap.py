"""The start-up heap: built with the cyclic GC paused, then frozen and trimmed.

Building 100,000 trunks' objects with the GC on ran a full collection over the growing
heap again and again (~0.7 s each at the end); pausing it and collecting once after
start-up costs one pass. What start-up freed (the config's parse, temporary lists) stays
mapped by glibc's allocator unless it is asked to give it back: `malloc_trim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Callable, Iterator


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


class CollectorHold:
    """Keeps the cyclic GC off while any holder holds it, each for at most its own `max_s`.

    A /metrics scrape builds lists of 100,000 entries (the snapshot's columns) that stay
    young while it runs: every collection the scrape's own allocations trigger walks them
    again, 15-50 ms a pass at 100,000 trunks, in the probe loop. The steady probe loop
    triggers no collection at all (what it allocates, reference counting frees), so
    holding the GC for a scrape's few seconds leaves nothing behind; the bound keeps a
    slow reader from holding it longer.
    """

    def __init__(self) -> None:
        self._holders: set[object] = set()
        self._enable_after = False

    def hold(self, loop: asyncio.AbstractEventLoop, max_s: float) -> Callable[[], None]:
        """Hold the GC off; returns the release (also called by itself after `max_s`)."""
        token = object()
        if not self._holders:
            self._enable_after = gc.isenabled()
            gc.disable()
        self._holders.add(token)
        timer = loop.call_later(max_s, self._release, token)

        def release() -> None:
            timer.cancel()
            self._release(token)

        return release

    @property
    def held(self) -> bool:
        return bool(self._holders)

    def _release(self, token: object) -> None:
        if token not in self._holders:
            return
        self._holders.discard(token)
        if not self._holders and self._enable_after:
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
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        malloc_trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has none)
        return False
    return bool(malloc_trim(0))
