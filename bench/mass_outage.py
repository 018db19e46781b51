"""A carrier-wide outage: every trunk of one far end down at once, then back (issue #13).

Usage: .venv/bin/python bench/mass_outage.py [--trunks 5000] [--interval 10]
                                             [--down SECONDS] [--after SECONDS]

Runs `trunkwatch run` from this tree (SQLite store in a temp dir) against the built-in SIP
responder in a process of its own, silences the responder after four intervals, lets it
answer again after --down seconds, stops the monitor --after seconds later, and prints what
the store kept as evidence: transitions and sample rows per kind, trunks with samples,
rows per trunk (min/max) and the sample rows the writer dropped (its `samples_dropped` log
lines); the probe loop's lateness from the outage's start to the end (what writing the
evidence costs it), and the monitor's RSS before the outage and its highest after. Every
trunk should have samples around both transitions, none dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from options_loop import free_port
from scale import (
    between,
    config_text,
    lag_buckets,
    lag_shares,
    p99_bound,
    rss_mb,
    sample,
    scrape,
    start_run,
)

ROOT = Path(__file__).resolve().parent.parent
RESPONDER = """
import asyncio, signal, sys
import uvloop
from probes.responder import ResponderMode, SipResponder

async def main() -> None:
    responder = SipResponder()
    await responder.start()
    print(responder.port, flush=True)
    def toggle() -> None:
        silent = responder.mode is ResponderMode.SILENT
        responder.mode = ResponderMode.NORMAL if silent else ResponderMode.SILENT
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, toggle)
    await asyncio.Event().wait()

uvloop.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=5_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--down", type=float, help="outage length (s; default 14 intervals)")
    parser.add_argument("--after", type=float, help="after restoration (s; default 10 intervals)")
    args = parser.parse_args()
    down = args.down if args.down is not None else 14 * args.interval
    after = args.after if args.after is not None else 10 * args.interval
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, tree {ROOT}")
    with tempfile.TemporaryDirectory(prefix="tw-mass-") as tmp:
        workdir = Path(tmp)
        responder = subprocess.Popen(
            [sys.executable, "-c", RESPONDER],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert responder.stdout is not None
        port = next(int(line) for line in responder.stdout if line.strip().isdigit())
        db = workdir / "tw.db"
        cfg = workdir / "trunkwatch.yaml"
        http_port = free_port()
        cfg.write_text(config_text(args.trunks, port, args.interval, db, http_port))
        log = workdir / "run.log"
        run = start_run(cfg, log)
        try:
            time.sleep(4 * args.interval + 10)
            before = lag_buckets(scrape(http_port).text)
            rss_before = rss_mb(run.pid)
            os.kill(responder.pid, signal.SIGUSR1)  # silent: the outage
            peak = peak_rss_mb(run.pid, down)
            os.kill(responder.pid, signal.SIGUSR1)  # answering again
            peak = max(peak, peak_rss_mb(run.pid, after))
            last = scrape(http_port).text
            lag = lag_buckets(last)
        finally:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(300)
            responder.kill()
            responder.wait()
        report(sqlite3.connect(db), log, args.trunks)
        # Exact; the rate-limited log lines are a floor.
        counted = sample(last, "trunkwatch_store_samples_dropped_total")
        print(f"rows dropped at the cap before the stop: {counted:,.0f}")
        lateness = between(before, lag)
        print(f"probe lateness, outage to end: p99 ≤ {1e3 * p99_bound(lateness):g} ms (bucket)")
        print(f"  share within: {lag_shares(lateness)}")
        print(
            f"RSS before the outage {rss_before:.0f} MB, highest from it to the end {peak:.0f} MB"
        )


def peak_rss_mb(pid: int, seconds: float) -> float:
    """The highest RSS of `pid` over the next `seconds` (read every second)."""
    peak, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, rss_mb(pid))
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
    return peak


def report(db: sqlite3.Connection, log: Path, trunks: int) -> None:
    transitions = dict(
        db.execute(
            "SELECT kind, count(*) FROM journal WHERE kind IN ('outage_opened', 'outage_closed')"
            " GROUP BY kind"
        ).fetchall()
    )
    print(f"\n| {trunks:,} trunks, all down at once | outage_opened | outage_closed |")
    print("|---|---|---|")
    rows = {
        kind: db.execute(
            "SELECT coalesce(sum(n), 0), count(*), min(n), max(n) FROM ("
            " SELECT trunk, count(*) AS n FROM probe_samples WHERE transition_kind = ?"
            " GROUP BY trunk)",
            (kind,),
        ).fetchone()
        for kind in ("outage_opened", "outage_closed")
    }
    opened, closed = rows["outage_opened"], rows["outage_closed"]
    print(
        f"| transitions | {transitions.get('outage_opened', 0):,} |"
        f" {transitions.get('outage_closed', 0):,} |"
    )
    print(f"| trunks with samples | {opened[1]:,} | {closed[1]:,} |")
    print(f"| sample rows | {opened[0]:,} | {closed[0]:,} |")
    print(f"| rows per trunk (min–max) | {opened[2]}–{opened[3]} | {closed[2]}–{closed[3]} |")
    dropped = [
        json.loads(line)
        for line in log.read_text(errors="replace").splitlines()
        if '"samples_dropped"' in line
    ]
    at_stop = sum(int(line.get("count", 0)) for line in dropped if line.get("reason"))
    total = sum(int(line.get("count", 0)) for line in dropped)
    print(
        f"\nsamples_dropped: {len(dropped)} log lines, {total:,} rows"
        f" ({at_stop:,} of them unwritten when the stop's time was up)"
    )


if __name__ == "__main__":
    main()
