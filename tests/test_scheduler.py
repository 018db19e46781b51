"""The scheduler on a real event loop with in-process probes (no network needed here)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from monitor.scheduler import TICK_NS, Scheduler, phase_ns
from probes.probe import ResultCallback
from probes.result import Outcome, ProbeResult


@dataclass
class FakeProbe:
    """Completes after `delay` seconds; records the monotonic time of each start."""

    trunk: str
    delay: float = 0.0
    raise_on_start: bool = False
    kind: str = "options"
    starts: list[float] = field(default_factory=list)

    def start(self, on_done: ResultCallback) -> None:
        if self.raise_on_start:
            raise RuntimeError("bug in probe")
        self.starts.append(time.monotonic())
        result = ProbeResult(self.trunk, self.kind, Outcome.OK, time.time_ns(), rtt_ns=1000)
        asyncio.get_running_loop().call_later(self.delay, on_done, result)

    async def close(self) -> None:
        return None


async def run_for(scheduler: Scheduler, seconds: float) -> None:
    scheduler.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        scheduler.stop()
    await asyncio.sleep(0.01)  # let results already scheduled arrive


async def test_each_target_is_probed_at_its_interval() -> None:
    fast, slow = FakeProbe("fast"), FakeProbe("slow")
    results: list[ProbeResult] = []
    scheduler = Scheduler([(fast, 0.05), (slow, 0.2)], results.append)
    await run_for(scheduler, 1.0)
    assert 17 <= len(fast.starts) <= 21
    assert 4 <= len(slow.starts) <= 6
    gaps = [b - a for a, b in zip(fast.starts, fast.starts[1:], strict=False)]
    # Drift-free: rescheduled from the planned time, so the mean gap is the interval.
    assert sum(gaps) / len(gaps) == pytest.approx(0.05, abs=0.005)
    assert len(results) == scheduler.started


async def test_start_times_spread_over_the_interval() -> None:
    probes = [FakeProbe(f"trunk-{i}") for i in range(200)]
    scheduler = Scheduler([(p, 1.0) for p in probes], lambda r: None)
    t0 = time.monotonic()
    await run_for(scheduler, 1.05)
    offsets = sorted(p.starts[0] - t0 for p in probes)
    # Phases come from a hash of the name: every tenth of the interval gets some.
    deciles = {min(int(o * 10), 9) for o in offsets}
    assert deciles == set(range(10))


async def test_lateness_is_measured() -> None:
    probe = FakeProbe("t")
    scheduler = Scheduler([(probe, 0.02)], lambda r: None)
    scheduler.start()
    await asyncio.sleep(0.1)
    time.sleep(0.06)  # noqa: ASYNC251 - block the loop on purpose: the next fires are late
    await asyncio.sleep(0.05)
    scheduler.stop()
    assert scheduler.lag.n >= 5
    assert scheduler.lag.max >= 0.03


async def test_a_busy_probe_is_not_started_twice() -> None:
    slow = FakeProbe("slow", delay=0.25)
    scheduler = Scheduler([(slow, 0.1)], lambda r: None)
    await run_for(scheduler, 0.6)
    assert scheduler.skipped >= 2
    assert len(slow.starts) <= 3


async def test_in_flight_cap() -> None:
    probes = [FakeProbe(f"t{i}", delay=2.0) for i in range(10)]
    scheduler = Scheduler([(p, 0.5) for p in probes], lambda r: None, max_in_flight=4)
    await run_for(scheduler, 0.45)
    assert sum(len(p.starts) for p in probes) == 4
    assert scheduler.skipped == scheduler.lag.n - 4 > 0  # every other fire was refused


async def test_a_probe_that_raises_is_counted_and_the_loop_goes_on() -> None:
    bad, good = FakeProbe("bad", raise_on_start=True), FakeProbe("good")
    results: list[ProbeResult] = []
    scheduler = Scheduler([(bad, 0.05), (good, 0.05)], results.append)
    scheduler.start()
    try:
        # Until four failures are counted (bounded): a count, not a time a loaded machine
        # may not keep.
        for _ in range(300):
            if scheduler.errors >= 4 and len(good.starts) >= 4:
                break
            await asyncio.sleep(0.01)
    finally:
        scheduler.stop()
    await asyncio.sleep(0.01)
    assert scheduler.errors >= 4
    assert scheduler.in_flight == 0
    crashed = [r for r in results if r.trunk == "bad"]
    assert crashed and all(r.outcome is Outcome.PROBE_CRASHED for r in crashed)
    assert len(good.starts) >= 4


async def test_a_result_handler_that_raises_does_not_stop_the_loop() -> None:
    probe = FakeProbe("t")

    def handler(result: ProbeResult) -> None:
        raise ValueError("bug in handler")

    scheduler = Scheduler([(probe, 0.05)], handler)
    await run_for(scheduler, 0.3)
    assert len(probe.starts) >= 4
    assert scheduler.errors == len(probe.starts)
    assert scheduler.in_flight == 0


def test_phases_spread_over_the_whole_interval() -> None:
    # A 10 s interval is longer than 2**32 ns: every tenth of it must get its share of
    # 100,000 trunks (a hash modulo the interval left the last 5.7 s empty).
    interval_ns = 10 * 10**9
    tenths = [0] * 10
    for i in range(100_000):
        phase = phase_ns(f"t{i:06d}", interval_ns)
        assert 0 <= phase < interval_ns
        tenths[phase * 10 // interval_ns] += 1
    assert min(tenths) > 9_000, tenths
    assert phase_ns("t000001", interval_ns) == phase_ns("t000001", interval_ns)  # stable


def test_trunks_with_one_interval_share_its_int() -> None:
    # 10 s in ns is past the small ints CPython keeps: one object, not 32 bytes a trunk.
    probes = [(FakeProbe(f"t{i}"), 10.0) for i in range(3)] + [(FakeProbe("fast"), 0.0001)]
    scheduler = Scheduler(probes, lambda result: None)
    slow = [item.interval_ns for item in scheduler.items[:3]]
    assert slow == [10_000_000_000] * 3 and slow[0] is slow[1] is slow[2]
    assert scheduler.items[3].interval_ns == TICK_NS  # never below a tick
