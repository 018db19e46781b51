"""The monitor's heap and cyclic GC over its first minute with many trunks (issue #13).

Usage: .venv/bin/python bench/heap_gc.py [--trunks 100000] [--interval 10] [--seconds 60]
                                         [--lines N]

Runs the real Monitor in this process (SQLite store in a temp dir, every trunk pointing at
one local Kamailio `children=1`, as bench/scale.py), and every 5 s prints RSS, the journal
backlog (start-up transitions not yet written), probes started and skipped, and the
cyclic GC's collections per generation with their total and longest pause
(`gc.callbacks`). At the end: the objects the GC still walks (generations 0-2, not the
frozen start-up heap), by type. A full collection's pause grows with that number; with
one probe every 10 s per trunk, a pause longer than ~200 ms fills the in-flight cap.

`--lines N` traces allocations from before the config is read (tracemalloc: the monitor
runs several times slower, so use a fifth of the trunks) and prints the N source lines
holding the most live memory at the end, in bytes per trunk.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from options_loop import free_port, start_kamailio, stop
from scale import config_text

from monitor.app import Monitor
from monitor.config import load_config


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class GcPauses:
    """Collections per generation: count, total and longest pause (ms)."""

    def __init__(self) -> None:
        self.stats = {g: [0, 0.0, 0.0] for g in range(3)}
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._started) * 1000
        entry = self.stats[info["generation"]]
        entry[0] += 1
        entry[1] += pause
        entry[2] = max(entry[2], pause)

    def text(self) -> str:
        return " ".join(
            f"gen{g} {n}×/{total:.0f} ms (max {longest:.0f})"
            for g, (n, total, longest) in self.stats.items()
        )


def print_lines(trunks: int, lines: int) -> None:
    """The source lines holding the most traced memory, per trunk, and the total."""
    stats = tracemalloc.take_snapshot().statistics("lineno")
    total = sum(stat.size for stat in stats)
    print(f"traced: {total / 1e6:.0f} MB, {total / trunks:.0f} bytes per trunk")
    root = str(Path(__file__).resolve().parent.parent) + "/"
    for stat in stats[:lines]:
        frame = stat.traceback[0]
        where = frame.filename.removeprefix(root).split("site-packages/")[-1]
        print(
            f"  {stat.size / trunks:6.0f} B  {stat.count / trunks:5.2f} blocks"
            f"  {where}:{frame.lineno}"
        )


async def run(
    trunks: int, interval: float, seconds: float, port: int, workdir: Path, lines: int
) -> None:
    path = workdir / "trunkwatch.yaml"
    path.write_text(config_text(trunks, port, interval, workdir / "tw.db", free_port()))
    if lines:
        tracemalloc.start()
    pauses = GcPauses()
    monitor = Monitor(load_config(path))
    began = time.monotonic()
    await monitor.start()
    print(f"started in {time.monotonic() - began:.1f} s, rss {rss_mb():.0f} MB", flush=True)
    began = time.monotonic()
    try:
        while (elapsed := time.monotonic() - began) < seconds:
            await asyncio.sleep(5)
            sched = monitor.scheduler
            assert sched is not None
            backlog = len(monitor.writer.pending)
            print(
                f"t={elapsed + 5:3.0f}s rss {rss_mb():4.0f} MB  backlog {backlog:6d}"
                f"  started {sched.started:8d}  skipped {sched.skipped:7d}  {pauses.text()}",
                flush=True,
            )
        walked = collections.Counter(
            type(o).__name__ for g in range(3) for o in gc.get_objects(generation=g)
        )
        print(f"objects the GC walks: {sum(walked.values())}; frozen: {gc.get_freeze_count()}")
        print("  " + ", ".join(f"{name} {n}" for name, n in walked.most_common(8)))
        if lines:
            print_lines(trunks, lines)
    finally:
        await monitor.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trunks", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--lines", type=int, default=0, help="trace memory: the top N lines")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tw-heap-"))
    port = free_port()
    kamailio = start_kamailio(workdir, port, children=1)
    try:
        time.sleep(1)
        uvloop.run(run(args.trunks, args.interval, args.seconds, port, workdir, args.lines))
    finally:
        stop(kamailio)


if __name__ == "__main__":
    main()
