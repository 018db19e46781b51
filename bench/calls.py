"""Benchmark of concurrent G.711 test calls through the pjsua2 worker pool.

Usage: .venv/bin/python bench/calls.py [--calls 10 50 100] [--seconds 10] [--far-end sipp]
       [--capture on|off]   (the workers' RTP capture, issue #14: on needs root)

For each N: a pool sized for N calls (all workers started first, as in a running monitor),
N calls placed at once to a far end on loopback that echoes RTP (SIPp `-sn uas -rtp_echo`,
one process; or `--far-end responder`: trunkwatch call responders, 4 calls each). Prints
per N: outcomes, setup time p50/p99/max, CPU of the pool's workers per call (% of one core,
measured over the calls' steady middle), RSS per worker and per call, and whether the
statistics stay accurate (loss, jitter, MOS, reference tone heard) on this clean path.
Goal of issue #3: >= 50 concurrent calls per core with zero loss and jitter < 1 ms, <= 40 MB
per 4-call worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.call import CallProbe, CallSettings
from probes.call_responder import CallResponder, ResponderSettings
from probes.pjsua.pool import RTP_PORTS_PER_WORKER, PoolSettings, WorkerPool
from probes.pjsua.protocol import PJSUA_MAX_CALLS
from probes.probe import run_once
from probes.result import Outcome, ProbeResult

LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# CPU is measured from this long after the calls were placed (all answered, media flowing)
# until this long before their planned end.
SETTLE_S = 2.0
TAIL_S = 1.0
# Ports for the bench (below the ephemeral range, away from the tests' 12000-20000).
SIPP_PORT = 21_060
SIPP_MEDIA_PORT = 21_100
POOL_RTP_MIN = 22_000
RESPONDER_SIP_BASE = 24_000
RESPONDER_RTP_BASE = 25_000


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (seconds), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@contextlib.contextmanager
def sipp_echo(workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp is not installed (apt-get install sip-tester)")
    proc = subprocess.Popen(
        [sipp, "-sn", "uas", "-i", LOOPBACK, "-p", str(SIPP_PORT), "-mi", LOOPBACK,
         "-mp", str(SIPP_MEDIA_PORT), "-rtp_echo", "-nostdin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((LOOPBACK, SIPP_PORT))
            except OSError:
                break
        time.sleep(0.02)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.asynccontextmanager
async def responders(count: int) -> AsyncIterator[list[CallResponder]]:
    started: list[CallResponder] = []
    try:
        for i in range(count):
            r = CallResponder(
                ResponderSettings(
                    address=LOOPBACK,
                    port=RESPONDER_SIP_BASE + i,
                    rtp_port=RESPONDER_RTP_BASE + 16 * i,
                    detect_tone=False,
                )
            )
            await r.start()
            started.append(r)
        yield started
    finally:
        await asyncio.gather(*(r.stop() for r in started))


async def run_size(n: int, seconds: float, far_end: str, capture: bool) -> dict[str, object]:
    settings = PoolSettings(
        max_calls=n,
        sip_address=LOOPBACK,
        media_address=LOOPBACK,
        rtp_port_min=POOL_RTP_MIN,
        capture_rtp=capture,
    )
    settings = replace(settings, min_workers=settings.max_workers)
    pool = WorkerPool(settings)
    t0 = time.monotonic()
    await pool.start()
    start_s = time.monotonic() - t0
    pids = [w.pid for w in pool.workers if w.pid is not None]
    idle0 = {p: cpu_seconds(p) for p in pids}
    await asyncio.sleep(2.0)
    idle_pct = sum(cpu_seconds(p) - idle0[p] for p in pids) / 2.0 * 100 / len(pids)

    async with contextlib.AsyncExitStack() as stack:
        if far_end == "sipp":
            workdir = Path(tempfile.mkdtemp(prefix="bench-calls-"))
            stack.callback(shutil.rmtree, workdir, True)
            sipp = stack.enter_context(sipp_echo(workdir))
            uris = [f"sip:echo@{LOOPBACK}:{SIPP_PORT}"] * n
            far_pids = [sipp.pid]
        else:
            rs = await stack.enter_async_context(responders(math.ceil(n / PJSUA_MAX_CALLS)))
            uris = [rs[i % len(rs)].uri for i in range(n)]
            far_pids = [r.worker.pid for r in rs if r.worker and r.worker.pid]
        probes = [
            CallProbe(CallSettings(trunk=f"bench-{i}", uri=uri, max_call_s=seconds), pool)
            for i, uri in enumerate(uris)
        ]
        me = os.getpid()
        whole0 = sum(cpu_seconds(p) for p in pids)
        placed = time.monotonic()
        tasks = [asyncio.create_task(run_once(p)) for p in probes]
        await asyncio.sleep(SETTLE_S)
        window = max(1.0, seconds - SETTLE_S - TAIL_S)
        c0 = {p: cpu_seconds(p) for p in [*pids, *far_pids, me]}
        await asyncio.sleep(window / 2)
        rss = [rss_mb(p) for p in pids]
        await asyncio.sleep(window / 2)
        c1 = {p: cpu_seconds(p) for p in c0}
        results: list[ProbeResult] = await asyncio.gather(*tasks)
        wall = time.monotonic() - placed
        whole = sum(cpu_seconds(p) for p in pids) - whole0
    counts = await pool.counts()
    await pool.stop()

    workers_cpu = sum(c1[p] - c0[p] for p in pids) / window * 100
    far_cpu = sum(c1[p] - c0[p] for p in far_pids) / window * 100
    parent_cpu = (c1[me] - c0[me]) / window * 100
    outcomes = Counter(r.outcome.value for r in results)
    ok = [r for r in results if r.outcome is Outcome.OK and r.call and r.call.rx]
    setup = [r.call.setup_s for r in results if r.call and r.call.setup_s is not None]
    rx = [r.call.rx for r in ok if r.call and r.call.rx]
    jitter = [d.jitter_mean_s for d in rx if d.jitter_mean_s is not None]
    jitter_max = [d.jitter_worst_s for d in rx if d.jitter_worst_s is not None]
    mos = [r.call.mos for r in ok if r.call and r.call.mos is not None]
    sources = Counter(str(r.call.rtt_source) for r in ok if r.call)
    return {
        "calls": n,
        "workers": len(pids),
        "pool_start_s": round(start_s, 2),
        "idle_cpu_pct_per_worker": round(idle_pct, 2),
        "outcomes": dict(outcomes),
        "setup_p50_ms": round(pct(setup, 0.5) * 1000, 1) if setup else None,
        "setup_p99_ms": round(pct(setup, 0.99) * 1000, 1) if setup else None,
        "setup_max_ms": round(max(setup) * 1000, 1) if setup else None,
        "wall_s": round(wall, 1),
        "workers_cpu_pct": round(workers_cpu, 1),
        "cpu_pct_per_call": round(workers_cpu / n, 3),
        "calls_per_core": round(100 / (workers_cpu / n)) if workers_cpu else None,
        "worker_cpu_ms_per_call_total": round(whole / n * 1000),  # setup, media, analysis
        "parent_cpu_pct": round(parent_cpu, 1),
        "far_end_cpu_pct": round(far_cpu, 1),
        "rss_mb_per_worker_mean": round(statistics.fmean(rss), 1),
        "rss_mb_per_worker_max": round(max(rss), 1),
        "rss_mb_per_call": round(sum(rss) / n, 1),
        "rx_lost_total": sum(d.lost or 0 for d in rx),
        "rx_packets_total": sum(d.packets or 0 for d in rx),
        "jitter_mean_ms": round(statistics.fmean(jitter) * 1000, 3) if jitter else None,
        "jitter_worst_call_ms": round(max(jitter_max) * 1000, 3) if jitter_max else None,
        "mos_min": round(min(mos), 2) if mos else None,
        "rtt_sources": dict(sources),
        "tone_heard": sum(bool(d.tone_found) for d in rx),
        "leftover_calls": sum(c.calls + c.pj_calls + c.pj_call_objects for c in counts),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--far-end", choices=["sipp", "responder"], default="sipp")
    parser.add_argument("--capture", choices=["on", "off"], default="on")
    args = parser.parse_args()
    assert RTP_PORTS_PER_WORKER * math.ceil(max(args.calls) / PJSUA_MAX_CALLS) < 2_000
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"far end {args.far_end}, calls of {args.seconds:g} s, "
          f"capture {args.capture}")  # fmt: skip
    for n in args.calls:
        row = await run_size(n, args.seconds, args.far_end, args.capture == "on")
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
