"""Benchmark of /metrics with many trunks: cost in the event loop, render time, payload size.

Usage: .venv/bin/python bench/metrics_scrape.py [--trunks 10000] [--repeat 5]
                                                [--loop uvloop|asyncio] [--profile]

Builds the exporter the Monitor builds (monitor.metrics.exporter.Exporter with prometheus_client's
process, platform and GC collectors) over N synthetic trunks whose StatsTable rows and
TrunkHealth look like a day of 5 s OPTIONS probing (≈17,000 results per trunk, a few
timeouts and refusals, RTTs spread over the buckets, 1 % of trunks DOWN with an open
outage, 1 % UNKNOWN). Then measures:
  1. in process, no load: the snapshot (one step, and the longest of its sliced steps:
     what a scrape holds the event loop for), rendering text 0.0.4 and OpenMetrics, raw
     size, gzip size and the time of the streamed gzip the server does;
  2. under load: a real Scheduler drives N fake probes at 1/s (each answers at once from
     a loop callback and updates the trunk's StatsTable row, as a datagram would), and the
     scheduler's own lateness (LagHistogram, the hot path's goal: p99 < 5 ms) is compared
     with no scrape running and during scrapes made several ways: the server's (sliced
     snapshot, then text written, gzipped and streamed a piece at a time in the loop,
     yielding between pieces), a worker thread writing the text (with gzip, with a 1 ms
     GIL switch interval, without gzip), and everything in one loop step. Modes are
     interleaved over --repeat rounds so background load hits them all alike;
  3. over HTTP: the real aiohttp /metrics (monitor.metrics.server) under the same load, scraped by
     a separate process (so the client's parsing does not share this GIL) with each
     Accept header and Accept-Encoding: gzip (what Prometheus sends), and once without.
Goal (issue 6): under 1 s and under 5 MB transferred per scrape with 10,000 trunks, and
the probe loop never held more than a few ms. Before this exporter (prometheus_client
metric families rendered in the loop): text 1.7–2.5 s, OpenMetrics 2.7–3.0 s, 19.6 MB,
the loop frozen for the whole render.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import gzip
import json
import platform
import pstats
import random
import statistics
import sys
import time
import zlib
from array import array
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree, not the venv's

from monitor.events import Outage, OutageKind
from monitor.health import TrunkHealth, TrunkState
from monitor.metrics import server as metrics_server
from monitor.metrics.exporter import (
    Exporter,
    ExportSources,
    Snapshot,
    TrunkInfos,
    runtime_registry,
)
from monitor.metrics.exposition import ExpositionFormat
from monitor.metrics.server import GZIP_LEVEL, GZIP_WBITS, exposition_chunks, make_app, serve
from monitor.metrics.stats import RTT_BUCKETS, RTT_WIDTH, StatsTable
from monitor.scheduler import Scheduler
from probes.options import MalformedCounter
from probes.probe import ResultCallback
from probes.result import Outcome, ProbeResult

GOAL_SECONDS = 1.0
GOAL_BYTES = 5 * 1024 * 1024
# A day of OPTIONS every 5 s: what the counters hold on a monitor that has run a while.
PROBES_PER_TRUNK = 17_280
CARRIERS = 20
SEED = 6
# Median RTT per trunk (seconds) is drawn from this range: loopback-near SBCs to far ones.
RTT_MEDIAN_RANGE = (0.004, 0.12)
# Load phase: each fake probe every second (10,000 trunks: 10,000 probes/s, the
# notes/hot-path.md load), measured after the first round has spread out.
PROBE_INTERVAL_S = 1.0
WARMUP_S = 2.0
BASELINE_S = 0.5
# After the last scrape of a window: long enough for probes a stall delayed to fire (and
# so be counted in the window), short against the scrapes.
SETTLE_S = 0.02
# Between two modes: the schedule recovers from the previous mode's stalls.
BETWEEN_MODES_S = 0.2
# The server's deflate (zlib, or ISA-L with the speed extra); zlib for trees without one.
DEFLATE = getattr(metrics_server, "DEFLATE", zlib)
ACCEPT = {
    ExpositionFormat.TEXT: "text/plain; version=0.0.4",
    ExpositionFormat.OPENMETRICS: "application/openmetrics-text; version=1.0.0",
}
# The HTTP client, run as its own process: URL, Accept, Accept-Encoding, repeat → "ready",
# then after a line on stdin one JSON line per request (seconds, bytes received,
# Content-Encoding, Content-Type). The wait keeps the process start (fork of this big
# process: tens of ms of page-table copying in the loop's thread) out of the measurement.
SCRAPER = """
import json, sys, time, urllib.request
url, accept, encoding, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()
for _ in range(repeat):
    req = urllib.request.Request(url, headers={"Accept": accept, "Accept-Encoding": encoding})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
        enc = r.headers.get("Content-Encoding", "identity")
        ctype = r.headers.get("Content-Type")
    print(json.dumps([time.perf_counter() - start, len(body), enc, ctype]), flush=True)
"""


def synthetic_sources(n: int) -> ExportSources:
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    trunks: list[tuple[str, str, str]] = []
    stats = StatsTable()
    health: dict[str, TrunkHealth] = {}
    opened: dict[str, int] = {}
    for i in range(n):
        carrier = f"carrier-{i % CARRIERS:02d}"
        name = f"{carrier}-sbc-{i:05d}"
        trunks.append((name, carrier, rng.choice(("udp", "udp", "tcp", "tls"))))
        stats.add(name)
        timeouts = rng.choice((0, 0, 1, 3, 12, 40))
        refused = rng.choice((0, 0, 0, 2))
        ok = PROBES_PER_TRUNK - timeouts - refused
        for outcome, count in ((Outcome.OK, ok), (Outcome.TIMEOUT, timeouts)):
            stats.outcome_column(outcome)[i] = count
        if refused:
            stats.outcome_column(Outcome.REFUSED)[i] = refused
        median = rng.uniform(*RTT_MEDIAN_RANGE)
        answered = ok
        rtt_counts = [0] * (len(RTT_BUCKETS) + 1)
        for _ in range(50):  # 50 sampled RTTs, scaled to the answered count
            rtt = rng.lognormvariate(0, 0.35) * median
            index = next((k for k, b in enumerate(RTT_BUCKETS) if rtt <= b), len(RTT_BUCKETS))
            rtt_counts[index] += answered // 50
        stats.rtt_counts[i * RTT_WIDTH : (i + 1) * RTT_WIDTH] = array(
            stats.rtt_counts.typecode, rtt_counts
        )
        stats.rtt_sum[i] = sum(rtt_counts) * median
        stats.last_success[i], stats.last_status[i], stats.last_duration_s[i] = 1, 200, median
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
            stats.last_success[i], stats.last_status[i] = 0, 0
        elif roll < 0.02:
            h.state = TrunkState.UNKNOWN
        health[name] = h
        opened[name] = rng.choice((0, 0, 0, 1, 2))
    return ExportSources(
        agent="bench",
        loop_name="asyncio",
        trunks=TrunkInfos.of(trunks),
        stats=stats,
        health=health,
        scheduler=Scheduler([], lambda result: None),
        malformed=MalformedCounter(),
        outages_opened=opened,
        store_pending=lambda: 0,
        store_errors=lambda: 0,
        gaps_recorded=lambda: 0,
        samples_dropped=lambda: 0,
    )


# ---- part 1: in process, no load ------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def best_median(times: list[float]) -> str:
    return f"best {ms(min(times))}  median {ms(statistics.median(times))}"


def sliced_snapshot_steps(exporter: Exporter) -> list[float]:
    """Duration of each loop step of `snapshot_sliced` (the time a scrape holds the loop)."""
    steps: list[float] = []

    async def run() -> None:
        task = asyncio.ensure_future(exporter.snapshot_sliced())
        while not task.done():
            # One loop iteration runs exactly one step of the task, then this callback.
            start = time.perf_counter()
            await asyncio.sleep(0)
            steps.append(time.perf_counter() - start)
        await task

    asyncio.run(run())
    return steps


def server_steps(exporter: Exporter, fmt: ExpositionFormat) -> tuple[float, list[float]]:
    """A whole server scrape (sliced snapshot, then exposition_chunks with gzip) in a loop
    with nothing else to do: its wall time and each loop step it took (the loop holds)."""
    steps: list[float] = []

    async def scrape() -> None:
        snap = await exporter.snapshot_sliced()
        async for _chunk in exposition_chunks(exporter, snap, fmt, True):
            pass

    async def run() -> float:
        began = time.perf_counter()
        task = asyncio.ensure_future(scrape())
        while not task.done():
            start = time.perf_counter()
            await asyncio.sleep(0)
            steps.append(time.perf_counter() - start)
        await task
        return time.perf_counter() - began

    return asyncio.run(run()), steps


def in_process(exporter: Exporter, repeat: int) -> None:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        snap = exporter.snapshot()
        times.append(time.perf_counter() - start)
    print(f"  snapshot, one step          {best_median(times)}")
    longest = max(max(sliced_snapshot_steps(exporter)) for _ in range(repeat))
    print(f"  snapshot, sliced            longest step {ms(longest)} (the loop hold per step)")
    for fmt in ExpositionFormat:
        times, gz_times = [], []
        body = packed = b""
        for _ in range(repeat):
            start = time.perf_counter()
            body = exporter.expose(snap, fmt)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            packed = encode_variant(exporter, snap, fmt, True, 0.0)
            gz_times.append(time.perf_counter() - start)
        # Equal up to the runtime families (process CPU time, GC counts move between calls).
        runtime = b"# HELP process_"
        assert gzip.decompress(packed).split(runtime)[0] == body.split(runtime)[0]
        lines = body.count(b"\n")
        walls, steps = [], []
        for _ in range(repeat):
            wall, held = server_steps(exporter, fmt)
            walls.append(wall)
            steps += held
        steps.sort()
        print(
            f"  {fmt.name.lower():<11} render {best_median(times)}  {len(body) / 1e6:5.2f} MB raw"
            f" ({lines:,} lines);  render+gzip -{GZIP_LEVEL} {best_median(gz_times)}"
            f"  {len(packed) / 1e6:5.2f} MB;  server scrape (sliced snapshot, steps, gzip"
            f" thread) {best_median(walls)}, loop hold per step: median"
            f" {ms(steps[len(steps) // 2])}, max {ms(steps[-1])}"
            f" ({len(steps) // repeat} steps)"
        )


# ---- part 2 and 3: under load -------------------------------------------------------------


class FakeProbe:
    """Answers at once from a loop callback, like a datagram_received would."""

    kind = "options"

    def __init__(self, trunk: str) -> None:
        self.trunk = trunk
        self._loop = asyncio.get_running_loop()

    def start(self, on_done: ResultCallback) -> None:
        now = time.time_ns()
        result = ProbeResult(
            self.trunk,
            "options",
            Outcome.OK,
            now,
            rtt_ns=3_000_000,
            duration_ns=3_000_000,
            status_code=200,
        )
        self._loop.call_soon(on_done, result)

    async def close(self) -> None:
        return None


class LagWindows:
    """The scheduler's lateness samples, cut into windows by sample index."""

    def __init__(self, sched: Scheduler) -> None:
        self.samples: array[float] = array("d")
        sched.lag.samples = self.samples

    def mark(self) -> int:
        return len(self.samples)

    def summary(self, ranges: list[tuple[int, int]]) -> str:
        window = sorted(x for start, end in ranges for x in self.samples[start:end])
        if not window:
            return "no probes fired"

        def q(fraction: float) -> str:
            return f"{window[min(len(window) - 1, int(fraction * len(window)))] * 1e3:6.2f}"

        return (
            f"lag p50 {q(0.5)}  p99 {q(0.99)}  p99.9 {q(0.999)}  max {window[-1] * 1e3:6.1f} ms"
            f"  ({len(window):,} probes)"
        )


Scrape = Callable[[Exporter, ExpositionFormat], Awaitable[None]]


def encode_variant(
    exporter: Exporter, snap: Snapshot, fmt: ExpositionFormat, gzip: bool, handover_s: float
) -> bytes:
    """exposition_chunks's work without the yields (for a thread or one step), with an
    optional sleep after each piece to hand the GIL over to the loop."""
    packer = DEFLATE.compressobj(GZIP_LEVEL, DEFLATE.DEFLATED, GZIP_WBITS) if gzip else None
    out = []
    for piece in exporter.render(snap, fmt):
        data = piece.encode()
        out.append(packer.compress(data) if packer is not None else data)
        if handover_s:
            time.sleep(handover_s)
    if packer is not None:
        out.append(packer.flush())
    return b"".join(out)


def scrape_modes(pool: ThreadPoolExecutor) -> dict[str, Scrape]:
    async def server(exporter: Exporter, fmt: ExpositionFormat) -> None:
        snap = await exporter.snapshot_sliced()
        async for _chunk in exposition_chunks(exporter, snap, fmt, True):
            pass

    def on_thread(gzip: bool) -> Scrape:
        async def scrape(exporter: Exporter, fmt: ExpositionFormat) -> None:
            snap = await exporter.snapshot_sliced()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(pool, encode_variant, exporter, snap, fmt, gzip, 0.0)

        return scrape

    async def thread_1ms_switch(exporter: Exporter, fmt: ExpositionFormat) -> None:
        before = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        try:
            await on_thread(True)(exporter, fmt)
        finally:
            sys.setswitchinterval(before)

    async def one_step(exporter: Exporter, fmt: ExpositionFormat) -> None:
        encode_variant(exporter, exporter.snapshot(), fmt, True, 0.0)

    return {
        "server: steps in the loop, gzip thread": server,
        "worker thread, gzip": on_thread(True),
        "worker thread, gzip, switchinterval 1 ms": thread_1ms_switch,
        "worker thread, no gzip": on_thread(False),
        "in the loop, gzip, one step (no yield)": one_step,
    }


async def under_load(
    sources: ExportSources,
    repeat: int,
    *,
    http: bool,
    interval: float = PROBE_INTERVAL_S,
    server_only: bool = False,
) -> None:
    loop = asyncio.get_running_loop()
    sched = Scheduler(
        [(FakeProbe(t), interval) for t in sources.trunks.trunk], sources.stats.record
    )
    sources.scheduler = sched
    windows = LagWindows(sched)
    exporter = Exporter(sources, runtime=runtime_registry())
    sched.start()
    gc.collect()
    gc.freeze()
    pool = ThreadPoolExecutor(1, thread_name_prefix="metrics-render")
    runner, port = await serve(make_app(exporter, lambda: True), "127.0.0.1", 0)
    try:
        await asyncio.sleep(max(WARMUP_S, interval))  # the first round spreads out
        rate = len(sources.trunks) / interval
        print(f" under load ({rate:,.0f} probes/s, loop {type(loop).__module__}),")
        print(f"  {repeat} rounds, each: {BASELINE_S} s without scrape, then every mode once per")
        print("  format (interleaved, so background load on the machine hits all modes alike):")
        modes = scrape_modes(pool)
        if server_only:
            modes = dict(list(modes.items())[:1])
        ranges: dict[str, list[tuple[int, int]]] = {name: [] for name in ["no scrape", *modes]}
        times: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(repeat):
            start = windows.mark()
            await asyncio.sleep(BASELINE_S)
            ranges["no scrape"].append((start, windows.mark()))
            for label, scrape in modes.items():
                for fmt in ExpositionFormat:
                    start = windows.mark()
                    began = time.perf_counter()
                    await scrape(exporter, fmt)
                    times[label].append(time.perf_counter() - began)
                    await asyncio.sleep(SETTLE_S)
                    ranges[label].append((start, windows.mark()))
                    await asyncio.sleep(BETWEEN_MODES_S)
        for label, spans in ranges.items():
            took = (
                f"  scrape median {ms(statistics.median(times[label]))}" if label in times else ""
            )
            print(f"  {label:<42} {windows.summary(spans)}{took}")
        if http:
            await over_http(port, windows, repeat)
    finally:
        await runner.cleanup()
        pool.shutdown()
        sched.stop()


async def over_http(port: int, windows: LagWindows, repeat: int) -> None:
    print(" over HTTP (monitor.metrics.server /metrics, client in its own process):")
    url = f"http://127.0.0.1:{port}/metrics"
    for fmt in ExpositionFormat:
        for encoding in ("gzip", "identity"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                SCRAPER,
                url,
                ACCEPT[fmt],
                encoding,
                str(repeat if encoding == "gzip" else 1),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            await proc.stdout.readline()  # "ready"
            await asyncio.sleep(BETWEEN_MODES_S)
            start = windows.mark()
            out, _ = await proc.communicate(b"go\n")
            await asyncio.sleep(SETTLE_S)
            end = windows.mark()
            rows = [json.loads(line) for line in out.decode().splitlines()]
            times = [row[0] for row in rows]
            size, got_encoding, ctype = rows[-1][1], rows[-1][2], rows[-1][3]
            meets = "meets" if max(times) < GOAL_SECONDS and size < GOAL_BYTES else "MISSES"
            print(
                f"  {fmt.name.lower():<11} Accept-Encoding {encoding:<8} {best_median(times)}"
                f"  {size / 1e6:5.2f} MB on the wire ({got_encoding}, {ctype.split(';')[0]})"
                f"  [{meets} goal]"
            )
            print(f"  {'':<11} during the client's run: {windows.summary([(start, end)])}")


def profile(exporter: Exporter) -> None:
    snap = exporter.snapshot()
    profiler = cProfile.Profile()
    profiler.enable()
    exporter.expose(snap, ExpositionFormat.TEXT)
    profiler.disable()
    print("\nProfile of one text rendering (top 15 by own time):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trunks", type=int, nargs="+", default=[10_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--interval", type=float, default=PROBE_INTERVAL_S, help="probe interval under load (s)"
    )
    parser.add_argument(
        "--server-only", action="store_true", help="under load, only the server's way"
    )
    parser.add_argument("--no-load", action="store_true", help="skip parts 2 and 3")
    parser.add_argument("--no-http", action="store_true", help="skip part 3")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.node()}")
    print(f"gzip by {DEFLATE.__name__}")
    for n in args.trunks:
        start = time.perf_counter()
        sources = synthetic_sources(n)
        exporter = Exporter(sources, runtime=runtime_registry())
        gc.collect()
        gc.freeze()  # as Monitor.start does: the long-lived objects stay out of GC scans
        print(f"\n{n:,} trunks (synthetic sources built in {time.perf_counter() - start:.1f} s)")
        print(" in process, no load:")
        in_process(exporter, args.repeat)
        if not args.no_load:
            with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
                runner.run(
                    under_load(
                        sources,
                        args.repeat,
                        http=not args.no_http,
                        interval=args.interval,
                        server_only=args.server_only,
                    )
                )
        if args.profile:
            profile(exporter)
    print(
        f"\ngoal: under {GOAL_SECONDS:.0f} s and under {GOAL_BYTES / 2**20:.0f} MB per scrape,"
        " scheduler lag p99 < 5 ms"
    )


if __name__ == "__main__":
    main()
