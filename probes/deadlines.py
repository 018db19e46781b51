"""Many one-shot deadlines on few loop timers: the UDP probes' transaction timers.

Every OPTIONS probe arms a retransmit timer (Timer E, 500 ms) that its answer, ~1 ms later,
cancels. As one loop timer each (`call_later`, then `cancel`) that was ~9 % of the probe
loop's CPU at 10,000 probes/s (py-spy, docs/benchmarks.md). Here deadlines share slots of
SLOT_NS with one loop timer per non-empty slot, and are cancelled by the caller's token
changing, which costs nothing; a deadline fires at most SLOT_NS late, never early.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from typing import Protocol

# Slot width: the most a retransmission or a timeout is late (RFC 3261 timers are 500 ms+).
SLOT_NS = 5_000_000


class Expiring(Protocol):
    def on_deadline(self, token: int) -> None:
        """Called once the deadline added with `token` has passed; must not raise."""


class Deadlines:
    """One-shot deadlines in the perf_counter_ns time base (CLOCK_MONOTONIC, as the loop's)."""

    __slots__ = ("_before", "_loop", "_mono", "_slots", "_ticks", "_timer", "_timer_tick")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        mono: Callable[[], int] = time.perf_counter_ns,
        *,
        before: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._mono = mono
        # Called once before a batch of due deadlines (the socket's drain: answers waiting
        # unread are handed on first, so their probes' timers go stale and never act).
        self._before = before
        self._slots: dict[int, list[tuple[Expiring, int]]] = {}  # tick -> due in it
        self._ticks: list[int] = []  # heap of the ticks in _slots
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick = -1

    def __len__(self) -> int:
        return sum(len(slot) for slot in self._slots.values())

    def add(self, when_ns: int, target: Expiring, token: int) -> None:
        """Call `target.on_deadline(token)` once `when_ns` has passed (at most a slot late)."""
        tick = -(-when_ns // SLOT_NS)  # ceil: the slot at or after the deadline
        slot = self._slots.get(tick)
        if slot is not None:
            slot.append((target, token))
            return
        self._slots[tick] = [(target, token)]
        heapq.heappush(self._ticks, tick)
        if self._timer is None or tick < self._timer_tick:
            self._arm()

    def close(self) -> None:
        """Forget every deadline (the socket they belong to is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()
        self._ticks.clear()

    def _arm(self) -> None:
        first = self._ticks[0]
        if self._timer is not None:
            self._timer.cancel()
        self._timer_tick = first
        delay = max(0.0, (first * SLOT_NS - self._mono()) / 1e9)
        self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        # The loop may wake a little early against its cached clock: only slots whose
        # time has come are fired, so no deadline fires before its instant.
        current = self._mono() // SLOT_NS
        ticks, slots = self._ticks, self._slots
        if self._before is not None and ticks and ticks[0] <= current:
            self._before()
        while ticks and ticks[0] <= current:
            for target, token in slots.pop(heapq.heappop(ticks)):
                target.on_deadline(token)
        if ticks:
            self._arm()
