"""What holds the probe loop while /metrics is scraped, in the running monitor (issue #13).

Usage: .venv/bin/python bench/scrape_stalls.py [--trunks 100000] [--interval 10]
                                               [--warmup 40] [--scrapes 2]

Runs the real Monitor in this process (SQLite store in a temp dir, every trunk pointing at
one local Kamailio `children=1`, as bench/scale.py) and, after --warmup, puts a ticker on
its loop every 0.5 ms: a gap between two ticks longer than STALL_S is a stall, a time the
loop ran something else (a scrape's step, probes, a collection) or was not scheduled. It
prints the stalls of a quiet stretch, then those of --scrapes gzip scrapes made from
another process one after another (2 s apart), with the cyclic GC's collections in that
window (count, total and longest pause per generation) and the longest stalls with the
collections inside them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from options_loop import free_port, start_kamailio, stop
from scale import config_text

from monitor.app import Monitor
from monitor.config import load_config

TICK_S = 0.0005
STALL_S = 0.004
QUIET_S = 3.0
# The scrape, from a process of its own: its reading does not run on the monitor's loop.
CLIENT = """
import sys, time, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})
t0 = time.perf_counter()
with urllib.request.urlopen(request, timeout=60) as response:
    size = len(response.read())
print(f"{time.perf_counter() - t0:.2f} {size}")
"""

Span = tuple[float, float]


class Ticker:
    """Records every gap longer than STALL_S between two runs of a 0.5 ms loop callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.stalls: list[Span] = []
        self.running = True
        self._last = time.perf_counter()
        loop.call_soon(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self._last > STALL_S:
            self.stalls.append((self._last, now))
        self._last = now
        if self.running:
            self.loop.call_later(TICK_S, self._tick)


class Collections:
    """Each cyclic collection: (generation, start, end), by `gc.callbacks`."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, float, float]] = []
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
        else:
            self.runs.append((info["generation"], self._started, now))

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)

    def text(self, since: float) -> str:
        parts = []
        for generation in range(3):
            pauses = sorted(
                (end - start) * 1000
                for g, start, end in self.runs
                if g == generation and start >= since
            )
            if pauses:
                parts.append(
                    f"gen{generation} {len(pauses)}× {sum(pauses):.0f} ms (max {pauses[-1]:.1f})"
                )
        return ", ".join(parts) or "none"


def stall_text(stalls: list[Span], seconds: float) -> str:
    total = sum(end - start for start, end in stalls)
    long = sum(1 for start, end in stalls if end - start > 0.010)
    return (
        f"{len(stalls)} stalls > {STALL_S * 1000:g} ms ({long} > 10 ms), "
        f"{total * 1000:.0f} ms of {seconds:.1f} s"
    )


async def run(args: argparse.Namespace, port: int, workdir: Path) -> None:
    http_port = free_port()
    path = workdir / "trunkwatch.yaml"
    path.write_text(config_text(args.trunks, port, args.interval, workdir / "tw.db", http_port))
    monitor = Monitor(load_config(path))
    await monitor.start()
    collections = Collections()
    try:
        await asyncio.sleep(args.warmup)
        ticker = Ticker(asyncio.get_running_loop())
        quiet_from = time.perf_counter()
        await asyncio.sleep(QUIET_S)
        quiet = list(ticker.stalls)
        gc_text = collections.text(quiet_from)
        print(f"quiet {QUIET_S:g} s: {stall_text(quiet, QUIET_S)}; GC: {gc_text}")
        began = time.perf_counter()
        for i in range(args.scrapes):
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, f"http://127.0.0.1:{http_port}/metrics",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await client.communicate()
            seconds, size = out.decode().split()
            print(f"scrape {i + 1}: {seconds} s, {int(size) / 1e6:.2f} MB gzip", flush=True)
            await asyncio.sleep(2)
        ticker.running = False
        window = time.perf_counter() - began
        stalls = ticker.stalls[len(quiet) :]
        print(f"scrapes' window: {stall_text(stalls, window)}; GC: {collections.text(began)}")
        print("longest stalls, with the collections inside them:")
        for start, end in sorted(stalls, key=lambda s: s[0] - s[1])[:8]:
            inside = [
                f"gen{g} {(e - s) * 1000:.1f} ms"
                for g, s, e in collections.runs
                if start <= s and e <= end
            ]
            print(f"  {(end - start) * 1000:6.1f} ms  {', '.join(inside) or '-'}")
    finally:
        collections.close()
        await monitor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trunks", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=40.0)
    parser.add_argument("--scrapes", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tw-stalls-"))
    port = free_port()
    kamailio = start_kamailio(workdir, port, children=1)
    try:
        time.sleep(1)
        uvloop.run(run(args, port, workdir))
    finally:
        stop(kamailio)


if __name__ == "__main__":
    main()
