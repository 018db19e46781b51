"""Benchmark of /metrics with many trunks: scrape time and payload size of both formats.

Usage: .venv/bin/python bench/metrics_scrape.py [--trunks 10000] [--repeat 5] [--profile]

Builds the exporter the Monitor builds (TrunkwatchCollector plus the process, platform
and GC collectors in one registry) over N synthetic trunks whose ProbeStats and
TrunkHealth look like a day of 5 s OPTIONS probing (≈17,000 results per trunk, a few
timeouts and refusals, RTTs spread over the buckets, 1 % of trunks DOWN with an open
outage, 1 % UNKNOWN). Then measures:
  1. in process: rendering the Prometheus text format (0.0.4) and OpenMetrics, best and
     median of --repeat runs, payload size raw and gzipped;
  2. over HTTP: the real aiohttp /metrics handler (monitor.server) on 127.0.0.1, fetched
     with each Accept header, and the longest event-loop stall during the scrape (the
     handler renders in the loop, so that stall is added to the probes' lateness).
Goal (issue 6): under 1 s and under 5 MB with 10,000 trunks. --profile prints where the
time of one text rendering goes (cProfile, top functions by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import platform
import pstats
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS,
)
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from monitor.events import Outage, OutageKind
from monitor.exporter import ExportSources, TrunkInfo, TrunkwatchCollector
from monitor.health import TrunkHealth, TrunkState
from monitor.scheduler import Scheduler
from monitor.server import make_app, serve
from monitor.stats import RTT_BUCKETS, ProbeStats
from probes.options import MalformedCounter
from probes.result import Outcome

GOAL_SECONDS = 1.0
GOAL_BYTES = 5 * 1024 * 1024
# A day of OPTIONS every 5 s: what the counters hold on a monitor that has run a while.
PROBES_PER_TRUNK = 17_280
CARRIERS = 20
SEED = 6
# Median RTT per trunk (seconds) is drawn from this range: loopback-near SBCs to far ones.
RTT_MEDIAN_RANGE = (0.004, 0.12)
LOOP_TICK_S = 0.001
TEXT_FORMAT = "text/plain; version=0.0.4"


def synthetic_sources(n: int) -> ExportSources:
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    trunks: list[TrunkInfo] = []
    stats: list[ProbeStats] = []
    health: dict[str, TrunkHealth] = {}
    opened: dict[str, int] = {}
    for i in range(n):
        carrier = f"carrier-{i % CARRIERS:02d}"
        name = f"{carrier}-sbc-{i:05d}"
        trunks.append(TrunkInfo(name, carrier, rng.choice(("udp", "udp", "tcp", "tls"))))
        st = ProbeStats(name, "options")
        timeouts = rng.choice((0, 0, 1, 3, 12, 40))
        refused = rng.choice((0, 0, 0, 2))
        counts = {Outcome.OK: PROBES_PER_TRUNK - timeouts - refused, Outcome.TIMEOUT: timeouts}
        if refused:
            counts[Outcome.REFUSED] = refused
        st.outcome_counts = counts
        median = rng.uniform(*RTT_MEDIAN_RANGE)
        answered = counts[Outcome.OK]
        rtt_counts = [0] * (len(RTT_BUCKETS) + 1)
        for _ in range(50):  # 50 sampled RTTs, scaled to the answered count
            rtt = rng.lognormvariate(0, 0.35) * median
            index = next((k for k, b in enumerate(RTT_BUCKETS) if rtt <= b), len(RTT_BUCKETS))
            rtt_counts[index] += answered // 50
        st.rtt_counts = rtt_counts
        st.rtt_n = sum(rtt_counts)
        st.rtt_sum = st.rtt_n * median
        st.last_success, st.last_status, st.last_duration_s = 1, 200, median
        h = TrunkHealth(name, state=TrunkState.UP)
        roll = rng.random()
        if roll < 0.01:
            h.state = TrunkState.DOWN
            h.open_outage = Outage(
                id=f"o-{i}",
                trunk=name,
                kind=OutageKind.OUTAGE,
                first_failure_at=now - timedelta(minutes=3),
                confirmed_at=now,
                first_outcome="timeout",
            )
            st.last_success, st.last_status = 0, 0
        elif roll < 0.02:
            h.state = TrunkState.UNKNOWN
        stats.append(st)
        health[name] = h
        opened[name] = rng.choice((0, 0, 0, 1, 2))
    return ExportSources(
        agent="bench",
        loop_name="asyncio",
        trunks=trunks,
        stats=stats,
        health=health,
        scheduler=Scheduler([], lambda result: None),
        malformed=MalformedCounter(),
        outages_opened=opened,
        store_pending=lambda: 0,
        store_errors=lambda: 0,
        gaps_recorded=lambda: 0,
    )


def registry_for(sources: ExportSources) -> CollectorRegistry:
    """The registry Monitor._register_metrics builds."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrunkwatchCollector(sources))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def timed(render: Callable[[], bytes], repeat: int) -> tuple[list[float], bytes]:
    times: list[float] = []
    body = b""
    for _ in range(repeat):
        start = time.perf_counter()
        body = render()
        times.append(time.perf_counter() - start)
    return times, body


def report(label: str, times: list[float], body: bytes) -> None:
    start = time.perf_counter()
    packed = gzip.compress(body, compresslevel=6)
    gzip_s = time.perf_counter() - start
    lines = body.count(b"\n")
    ok = "meets" if min(times) < GOAL_SECONDS and len(body) < GOAL_BYTES else "MISSES"
    print(
        f"  {label:<22} best {min(times) * 1000:7.1f} ms"
        f"  median {statistics.median(times) * 1000:7.1f} ms"
        f"  {len(body) / 1e6:6.2f} MB ({lines:,} lines, {len(body) / max(lines, 1):.0f} B/line)"
        f"  gzip -6: {len(packed) / 1e6:5.2f} MB in {gzip_s * 1000:.0f} ms  [{ok} goal]"
    )


async def over_http(registry: CollectorRegistry, repeat: int) -> None:
    runner, port = await serve(make_app(registry, lambda: True), "127.0.0.1", 0)
    stall = 0.0

    async def ticker() -> None:
        nonlocal stall
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LOOP_TICK_S)
            stall = max(stall, loop.time() - before - LOOP_TICK_S)

    tick = asyncio.create_task(ticker())
    try:
        async with aiohttp.ClientSession() as session:
            for label, accept in (("text 0.0.4", TEXT_FORMAT), ("OpenMetrics 1.0", OPENMETRICS)):
                times: list[float] = []
                size = 0
                stall = 0.0
                for _ in range(repeat):
                    start = time.perf_counter()
                    async with session.get(
                        f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept}
                    ) as response:
                        body = await response.read()
                        encoding = response.headers.get("Content-Encoding", "identity")
                    times.append(time.perf_counter() - start)
                    size = len(body)
                print(
                    f"  {label:<22} best {min(times) * 1000:7.1f} ms  median "
                    f"{statistics.median(times) * 1000:7.1f} ms  {size / 1e6:6.2f} MB on the wire "
                    f"({encoding})  longest event-loop stall {stall * 1000:.0f} ms"
                )
    finally:
        tick.cancel()
        await runner.cleanup()


def profile(registry: CollectorRegistry) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    generate_latest(registry)
    profiler.disable()
    print("\nProfile of one text rendering (top 15 by own time):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trunks", type=int, nargs="+", default=[10_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    for n in args.trunks:
        start = time.perf_counter()
        registry = registry_for(synthetic_sources(n))
        print(f"\n{n:,} trunks (synthetic sources built in {time.perf_counter() - start:.1f} s)")
        print(" in process:")
        report("text 0.0.4", *timed(partial(generate_latest, registry), args.repeat))
        report("OpenMetrics 1.0", *timed(partial(generate_openmetrics, registry), args.repeat))
        print(" over HTTP (monitor.server /metrics):")
        asyncio.run(over_http(registry, args.repeat))
        if args.profile:
            profile(registry)
    print(f"\ngoal: under {GOAL_SECONDS:.0f} s and under {GOAL_BYTES / 2**20:.0f} MB per scrape")


if __name__ == "__main__":
    main()
