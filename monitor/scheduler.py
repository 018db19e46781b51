"""The probe loop (hot path): starts every probe at its own interval on a timer wheel.

Targets are kept in 1 ms slots and one loop timer fires per non-empty slot: measured
here, waking the loop once per probe (a `call_at` per target) cost ~100 µs of CPU per
probe in context switches and epoll calls at 10k probes/s, while a slot batches the
~10 sends due in the same millisecond into one wake-up. No task sleeps per target
(10k sleeping tasks cost 17–20 ms gen-2 GC pauses here); rescheduling is drift-free
from the planned time, and lateness is measured against the monotonic clock.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import zlib
from collections.abc import Callable, Collection, Sequence

from monitor.log import RateLimitedLog, get_logger
from monitor.metrics.exposition import Histogram
from probes.clock import SYSTEM_CLOCK, Clock
from probes.probe import Probe
from probes.result import Outcome, ProbeResult

log = get_logger("trunkwatch.scheduler")

# Width of one timer-wheel slot: probes due within it share one loop wake-up; it is also
# the wheel's contribution to lateness (a probe is never sent before its planned time).
TICK_NS = 1_000_000
# The cap the drain's threshold was measured against (see before_tick).
DRAIN_CAP = 2000
# Lateness buckets (seconds): the goal is p99 < 5 ms at 10k targets per second.
LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Scheduled:
    """One probe on its schedule; the probe calls it with its result."""

    __slots__ = ("due_ns", "in_flight", "interval_ns", "probe", "removed", "scheduler")

    def __init__(self, scheduler: Scheduler, probe: Probe, interval_ns: int) -> None:
        self.scheduler = scheduler
        self.probe = probe
        self.interval_ns = interval_ns
        self.due_ns = 0  # planned monotonic send time of the next probe
        self.in_flight = False
        self.removed = False  # taken off the schedule (a reload): fired no more, results dropped

    # The item itself is the probe's callback: a bound method kept per trunk was 64 bytes
    # (6 MB at 100,000 trunks), a closure ~210 and slower to build.
    def __call__(self, result: ProbeResult) -> None:
        if self.removed:
            return  # a probe taken off the schedule (its close() may still call back)
        sched = self.scheduler
        if self.in_flight:
            self.in_flight = False
            sched.in_flight -= 1
        if result.outcome is Outcome.PROBE_CRASHED and sched._running:
            sched._crashed(result, self)  # not the probes closed by stop()
        try:
            sched.on_result(result)
        except Exception:
            sched._bug("result_handler_failed", self)


@functools.lru_cache(maxsize=256)
def interval_ns(interval: float) -> int:
    """The interval in ns (at least a tick), one int shared by the trunks with that interval:
    10 s is past the small ints, 32 bytes a trunk (3 MB at 100,000) each made apart."""
    return max(int(interval * 1e9), TICK_NS)


def phase_ns(trunk: str, interval_ns: int) -> int:
    """A stable offset in [0, interval) per trunk name: keeps one trunk's probes evenly
    spaced across restarts and spreads thousands of targets over the whole interval.

    Scaled, not taken modulo: a 32-bit hash modulo a 10 s interval (10**10 ns > 2**32)
    put every phase in the first 4.3 s, and 100,000 trunks then fired in bursts of 23k/s.
    """
    return (zlib.crc32(trunk.encode()) * interval_ns) >> 32


class Scheduler:
    """Fires probes on time and hands their results to `on_result`."""

    def __init__(
        self,
        probes: Sequence[tuple[Probe, float]],
        on_result: Callable[[ProbeResult], None],
        *,
        max_in_flight: int = 2000,
        clock: Clock = SYSTEM_CLOCK,
        before_tick: Callable[[], None] | None = None,
    ) -> None:
        # Bound once: the hot path calls them per probe. The monotonic reading must be in
        # the event loop's time base (CLOCK_MONOTONIC, as the system clock's is): the wheel
        # arms loop timers at those instants.
        self._mono_ns = clock.monotonic_ns
        self._wall_ns = clock.wall_ns
        self.items = [Scheduled(self, probe, interval_ns(interval)) for probe, interval in probes]
        self.on_result = on_result
        # Reads the answers already waiting (SharedUdp.drain) before a slot's sends once
        # three quarters of the in-flight cap are used: libuv reads at most 32 datagrams per
        # socket per loop turn, so when turns are long (a scrape's steps at 100,000 trunks)
        # answers queued up behind the sends, the cap filled, and probes were skipped with
        # their answers already here. Below that the loop's own reads keep up, and cost
        # less: draining on every slot kept a busy loop behind (measured at 10,000/s).
        self._before_tick = before_tick
        self.max_in_flight = self._drain_above = 0
        self.set_limit(max_in_flight)
        self.in_flight = 0
        self.lag = Histogram(LAG_BUCKETS)
        self.skipped = 0  # probes not started because the previous one or the cap was busy
        self.errors = 0  # exceptions raised by probe code or result handling (bugs)
        self.started = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error_log = RateLimitedLog(log)  # a bug firing per probe must not flood logs
        self._running = False
        self._slots: dict[int, list[Scheduled]] = {}  # tick number -> targets due in it
        self._ticks: list[int] = []  # heap of the tick numbers in _slots
        self._timer: asyncio.TimerHandle | None = None
        self._timer_tick = -1  # the tick _timer is armed for

    def set_limit(self, max_in_flight: int) -> None:
        """The in-flight cap (a reload changes it with the trunks): a probe due while this
        many are in flight is skipped."""
        self.max_in_flight = max_in_flight
        # The drain threshold stays where it was measured (3/4 of 2,000) under a larger cap:
        # the socket's buffer, not the cap, bounds how many answers may queue unread.
        self._drain_above = min(max_in_flight, DRAIN_CAP) * 3 // 4

    def start(self) -> None:
        """Arm every target; first sends are spread over each target's interval."""
        self._loop = asyncio.get_running_loop()
        self._running = True
        now = self._mono_ns()
        for item in self.items:
            self._schedule(item, now)
        self._arm()

    def _schedule(self, item: Scheduled, now: int) -> None:
        item.due_ns = now + phase_ns(item.probe.trunk, item.interval_ns)
        self._enqueue(item)

    def add(self, probe: Probe, interval: float, *, after: Scheduled | None = None) -> None:
        """Put one more probe on the schedule (a reload), at its trunk's stable phase, or
        where `after` (the probe it replaces, same interval) would have gone next."""
        item = Scheduled(self, probe, interval_ns(interval))
        self.items.append(item)
        if not self._running:
            return
        if after is not None and after.interval_ns == item.interval_ns and after.due_ns:
            item.due_ns = after.due_ns  # the changed trunk keeps its rhythm: no probe skipped
            self._enqueue(item)
        else:
            self._schedule(item, self._mono_ns())
        self._arm()

    def remove(
        self, trunks: Collection[str], *, kinds: Collection[str] | None = None
    ) -> list[Scheduled]:
        """Take the probes of these trunks (of these kinds; None: all) off the schedule;
        returns them, to be closed.

        Their slots keep the items until due (then skipped): finding them in the wheel
        would cost a scan per removal, the flag costs nothing.
        """
        gone = [
            item
            for item in self.items
            if item.probe.trunk in trunks and (kinds is None or item.probe.kind in kinds)
        ]
        for item in gone:
            item.removed = True
            if item.in_flight:
                item.in_flight = False
                self.in_flight -= 1
        if gone:
            self.items = [item for item in self.items if not item.removed]
        return gone

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._slots.clear()
        self._ticks.clear()

    def _enqueue(self, item: Scheduled) -> None:
        tick = -(-item.due_ns // TICK_NS)  # ceil: the slot at or after the planned time
        slot = self._slots.get(tick)
        if slot is None:
            self._slots[tick] = [item]
            heapq.heappush(self._ticks, tick)
        else:
            slot.append(item)

    def _arm(self) -> None:
        if not self._ticks or not self._running:
            return
        first = self._ticks[0]
        if first == self._timer_tick and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_tick = first
        self._timer = self._loop.call_at(first * TICK_NS / 1e9, self._on_tick)

    def _on_tick(self) -> None:
        self._timer = None
        self._timer_tick = -1
        if self._before_tick is not None and self.in_flight > self._drain_above:
            self._before_tick()
        current = self._mono_ns() // TICK_NS
        ticks, slots = self._ticks, self._slots
        while ticks and ticks[0] <= current and self._running:
            for item in slots.pop(heapq.heappop(ticks)):
                self._fire(item)
        self._arm()

    def _fire(self, item: Scheduled) -> None:
        if item.removed:
            return
        now = self._mono_ns()
        lateness = now - item.due_ns
        self.lag.observe(lateness / 1e9 if lateness > 0 else 0.0)
        item.due_ns += item.interval_ns
        if item.due_ns <= now:
            # More than a whole interval late (a stalled loop): skip the missed slots
            # instead of bursting to catch up.
            missed = (now - item.due_ns) // item.interval_ns + 1
            item.due_ns += missed * item.interval_ns
            self.skipped += missed
        self._enqueue(item)
        if item.in_flight or self.in_flight >= self.max_in_flight:
            self.skipped += 1
            return
        item.in_flight = True
        self.in_flight += 1
        self.started += 1
        try:
            item.probe.start(item)
        except Exception:
            self._bug("probe_start_failed", item)
            if item.in_flight:
                item.in_flight = False
                self.in_flight -= 1
                self.on_result(
                    ProbeResult(
                        trunk=item.probe.trunk,
                        probe=item.probe.kind,
                        outcome=Outcome.PROBE_CRASHED,
                        sent_wall_ns=self._wall_ns(),
                        detail="probe raised",
                    )
                )

    def _crashed(self, result: ProbeResult, item: Scheduled) -> None:
        """A probe that ended on its own bug (probes/options.py `crashed`): counted, logged."""
        self.errors += 1
        self._error_log.error(
            "probe_crashed",
            now_ns=self._mono_ns(),
            trunk=item.probe.trunk,
            probe=item.probe.kind,
            detail=result.detail,
        )

    def _bug(self, event: str, item: Scheduled) -> None:
        self.errors += 1
        self._error_log.error(
            event,
            now_ns=self._mono_ns(),
            trunk=item.probe.trunk,
            probe=item.probe.kind,
            exc_info=True,
        )
