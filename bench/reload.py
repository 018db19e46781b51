"""Reload without a restart, measured from outside (issue #13).

Starts `trunkwatch run` with N trunks against a local Kamailio (as bench/scale.py), waits
until every trunk was probed, rewrites the config with `--change` trunks removed and as
many added, sends SIGHUP, and prints: the time from SIGHUP to the `config_reloaded` log
line, the counts it reports, and over the window around the reload the probes skipped and
the scheduler's lateness p99 (a bucket bound), next to the same window without a reload.

    .venv/bin/python bench/reload.py --trunks 10000 --interval 1 --change 1000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from options_loop import free_port, start_kamailio, stop
from scale import ROOT, between, cli, lag_buckets, p99_bound, sample, scrape

SKIPPED = "trunkwatch_scheduler_skipped_probes_total"


def config_text(names: list[str], port: int, interval: float, db: Path, http_port: int) -> str:
    lines = [
        "agent: reload-bench",
        f'store: {{url: "sqlite:///{db}"}}',
        f"http: {{listen: 127.0.0.1, port: {http_port}}}",
        f"defaults: {{interval: {interval}, timeout: {min(0.8 * interval, 4.0)}}}",
        "trunks:",
    ]
    lines += [f'  - {{name: {n}, uri: "sip:127.0.0.1:{port}"}}' for n in names]
    return "\n".join(lines) + "\n"


def window(http_port: int, seconds: float, during: object = None) -> tuple[float, float]:
    """Probes skipped and the lateness p99 bound over `seconds` (calling `during` first)."""
    before = scrape(http_port).text
    if callable(during):
        during()
    time.sleep(seconds)
    after = scrape(http_port).text
    skipped = sample(after, SKIPPED) - sample(before, SKIPPED)
    return skipped, p99_bound(between(lag_buckets(before), lag_buckets(after)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--change", type=int, default=1_000, help="trunks removed and added")
    parser.add_argument("--window", type=float, default=10.0, help="measured window (s)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, tree {ROOT}")
    names = [f"t{i:06d}" for i in range(args.trunks)]
    with tempfile.TemporaryDirectory(prefix="tw-reload-") as tmp:
        workdir = Path(tmp)
        kam_port, http_port = free_port(), free_port()
        cfg, db, log = workdir / "tw.yaml", workdir / "tw.db", workdir / "run.log"
        cfg.write_text(config_text(names, kam_port, args.interval, db, http_port))
        kam = start_kamailio(workdir, kam_port, children=1)
        run = subprocess.Popen(
            cli("run", "-c", str(cfg)), cwd=ROOT, stdout=log.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 600
            while '"event": "monitor_started"' not in log.read_text(errors="replace"):
                if run.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"no start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            time.sleep(2 * args.interval + 2)  # every trunk probed, first states written
            quiet = window(http_port, args.window)

            changed = names[args.change :] + [f"n{i:06d}" for i in range(args.change)]
            cfg.write_text(config_text(changed, kam_port, args.interval, db, http_port))
            sent: list[float] = []

            def hup() -> None:
                sent.append(time.perf_counter())
                os.kill(run.pid, signal.SIGHUP)

            reloaded = window(http_port, args.window, hup)
            report = next(  # the log line carries load_s and apply_s too
                json.loads(line)
                for line in log.read_text(errors="replace").splitlines()
                if '"config_reloaded"' in line
            )
            # The log line's own instant against the SIGHUP's (same clock: UTC wall time).
            hup_wall = time.time() - (time.perf_counter() - sent[0])
            done_wall = _wall(report["ts"])
        finally:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(120)
            stop(kam)
    print(f"\n{args.trunks} trunks at {args.interval:g} s, -{args.change} +{args.change}:")
    print(
        f"  SIGHUP to config_reloaded: {done_wall - hup_wall:.2f} s "
        f"(reading and validating {report['load_s']} s, applying {report['apply_s']} s)"
    )
    print(
        f"  reported: added {report['added']}, removed {report['removed']}, "
        f"changed {report['changed']}, unchanged {report['unchanged']}"
    )
    print(f"  {args.window:g} s without a reload: skipped {quiet[0]:.0f}, p99 ≤ {quiet[1]} s")
    print(
        f"  {args.window:g} s around the reload: skipped {reloaded[0]:.0f}, p99 ≤ {reloaded[1]} s"
    )


def _wall(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    main()
