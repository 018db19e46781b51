"""100,000 trunks in one agent (issue #13): the whole `trunkwatch` process, measured from outside.

Usage: .venv/bin/python bench/scale.py [--trunks 100000] [--interval 10] [--duration 90]
                                      [--warmup SECONDS] [--max-in-flight N] [--migrate-in-run]

Writes an N-trunk config into a temp dir (every trunk points at one local Kamailio,
`children=1`, started here as bench/options_loop.py does; SQLite store in the temp dir),
then measures, each as a separate process started from this tree (`python -m monitor.cli`):
`check-config` wall time and peak RSS; `migrate` (as the systemd unit's ExecStartPre; not
with --migrate-in-run); `run` until `monitor_started` and until the first
probes reach Kamailio (its CPU time starts moving); over --duration after --warmup (default
one interval: every trunk probed once; the start-up's first-state journal writes may still
be under way, pass e.g. 40 to measure after them): probes skipped by the scheduler,
scheduler lateness p99 (histogram buckets), CPU % of one core and RSS, Kamailio's CPU and
the machine's busy share (also during one scrape); then one gzip
`/metrics` scrape (time, size), the trunks still UNKNOWN, and SIGTERM to exit. The window
holds the rendering of the scrape that opens it; a third scrape right after the second
gives the lateness during one scrape, and (roughly) the window's lateness less it. Prints
one table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from options_loop import free_port, start_kamailio, stop

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Kamailio's CPU must move by this many clock ticks (10 ms each here, ~300 OPTIONS at
# ~35 µs each) before the probes count as arrived; its idle timers stay far below that.
FIRST_PROBES_TICKS = 2
POLL_S = 0.05


def config_text(
    n: int, port: int, interval: float, db: Path, http_port: int, max_in_flight: int | None = None
) -> str:
    timeout = min(0.8 * interval, 4.0)
    lines = [
        "agent: scale",
        f'store: {{url: "sqlite:///{db}"}}',
        f"http: {{listen: 127.0.0.1, port: {http_port}}}",
        *([f"scheduler: {{max_in_flight: {max_in_flight}}}"] if max_in_flight else []),
        f"defaults: {{interval: {interval}, timeout: {timeout}}}",
        "trunks:",
    ]
    lines += [f'  - {{name: t{i:06d}, uri: "sip:127.0.0.1:{port}"}}' for i in range(n)]
    return "\n".join(lines) + "\n"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor.cli", "--log-format", "json", *args]


def start_run(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    """`trunkwatch run` from this tree, its output in `log`, in a session of its own."""
    return subprocess.Popen(
        cli("run", "-c", str(cfg)),
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def group_ticks(pgid: int) -> int:
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def busy_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The machine's busy share between two machine_ticks() readings, % of all cores."""
    ticks = after[1] - before[1]
    return 100 * (after[0] - before[0]) / ticks if ticks else float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Scrape:
    seconds: float
    gzip_bytes: int
    text: str


def scrape(port: int) -> Scrape:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"}
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
        encoding = response.headers.get("Content-Encoding", "")
    seconds = time.perf_counter() - t0
    text = gzip.decompress(body).decode() if encoding == "gzip" else body.decode()
    return Scrape(seconds, len(body), text)


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def lag_buckets(text: str) -> dict[float, float]:
    out: dict[float, float] = {}
    pattern = r'^trunkwatch_scheduler_lag_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$'
    for le, value in re.findall(pattern, text, re.M):
        out[float(le)] = float(value)
    return out


def between(before: dict[float, float], after: dict[float, float]) -> dict[float, float]:
    """Cumulative bucket counts of the probes between two scrapes' snapshots."""
    return {le: after[le] - before.get(le, 0.0) for le in sorted(after)}


def p99_bound(delta: dict[float, float]) -> float:
    """The upper bound of the bucket holding the 99th percentile of a window."""
    total = delta.get(float("inf"), 0.0)
    for le, count in delta.items():
        if total and count >= 0.99 * total:
            return le
    return float("nan")


def lag_shares(delta: dict[float, float]) -> str:
    """A window's share of probes at or under each bucket's bound, e.g. "≤5ms 97.1%"."""
    total = delta.get(float("inf"), 0.0)
    if not total:
        return ""
    return " ".join(f"≤{1e3 * le:g}ms {100 * n / total:.1f}%" for le, n in delta.items() if le < 1)


def unknown_trunks(text: str) -> int:
    return len(re.findall(r'^trunkwatch_trunk_state\{[^}]*state="unknown"[^}]*\} 1$', text, re.M))


def lateness(before: str, after: str, during: str) -> dict[str, float | str]:
    """Lateness over the window (which holds the first scrape's rendering), during one
    scrape (the window from the second scrape to a third made at once), and, roughly,
    the window without a scrape: its counts less the one scrape's. That takes the two
    renderings to be alike, which they are only roughly, so only its p99 bucket is given
    (a share could come out above 100 %)."""
    first, second, third = (lag_buckets(text) for text in (before, after, during))
    whole, scraping = between(first, second), between(second, third)
    outside = {le: n - scraping.get(le, 0.0) for le, n in whole.items()}
    return {
        "lag_p99_bound_s": p99_bound(whole),
        "lag_shares": lag_shares(whole),
        "lag_p99_scrape_s": p99_bound(scraping),
        "lag_shares_scrape": lag_shares(scraping),
        "lag_p99_outside_s": p99_bound(outside),
    }


def stop_phases(log: Path, term_wall: float, exit_wall: float) -> str:
    """Where SIGTERM-to-exit went, from the run's `monitor_stopped` line: before the stop,
    each stop phase (its `stop_s`), and after the line until the process ended."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if '"monitor_stopped"' in line:
            entry = json.loads(line)
            took: dict[str, float] = entry.get("stop_s", {})
            logged = datetime.fromisoformat(entry["ts"]).timestamp()
            began = logged - sum(took.values())
            phases = ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in took.items())
            return (
                f"before the stop {began - term_wall:.1f}; {phases}; "
                f"after its last line {exit_wall - logged:.1f}"
            )
    return ""


def one_shot(command: str, cfg: Path) -> tuple[float, float, int]:
    """A command that exits (check-config, migrate): wall time, peak RSS, exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cli(command, "-c", str(cfg)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    if proc.returncode != 0:
        raise SystemExit(f"{command} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=90.0, help="measured window (s)")
    parser.add_argument("--warmup", type=float, help="after the first probes (s; one interval)")
    parser.add_argument(
        "--max-in-flight", type=int, help="the scheduler's cap (default: the monitor's)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--migrate-in-run",
        action="store_true",
        help="no `trunkwatch migrate` first: `run` migrates the new database (and keeps Alembic)",
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, tree {ROOT}")
    figures: dict[str, float | int | str] = {
        "trunks": args.trunks,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "warmup_s": args.interval + 1.0 if args.warmup is None else args.warmup,
        "max_in_flight": args.max_in_flight or "default",
    }
    with tempfile.TemporaryDirectory(prefix="tw-scale-") as tmp:
        workdir = Path(tmp)
        kam_port, http_port = free_port(), free_port()
        cfg = workdir / "trunkwatch.yaml"
        cfg.write_text(
            config_text(
                args.trunks,
                kam_port,
                args.interval,
                workdir / "tw.db",
                http_port,
                args.max_in_flight,
            )
        )
        wall, peak, _ = one_shot("check-config", cfg)
        figures |= {"check_config_s": wall, "check_config_peak_rss_mb": peak}
        print(f"check-config: {wall:.2f} s, peak RSS {peak:.0f} MB")
        if not args.migrate_in_run:  # as the systemd unit's ExecStartPre
            wall, peak, _ = one_shot("migrate", cfg)
            print(f"migrate: {wall:.2f} s, peak RSS {peak:.0f} MB")

        kam = start_kamailio(workdir, kam_port, children=1)
        log = workdir / "run.log"
        try:
            kam_idle = group_ticks(kam.pid)
            t0 = time.perf_counter()
            run = start_run(cfg, log)
            started = first = None
            while started is None or first is None:
                if run.poll() is not None:
                    raise SystemExit(f"run exited early: {log.read_text()[-2000:]}")
                now = time.perf_counter() - t0
                if started is None and '"event": "monitor_started"' in log.read_text(
                    errors="replace"
                ):
                    started = now
                if first is None and group_ticks(kam.pid) - kam_idle >= FIRST_PROBES_TICKS:
                    first = now
                if now > 600:
                    raise SystemExit("no start within 600 s")
                time.sleep(POLL_S)
            figures |= {"monitor_started_s": started, "first_probes_s": first}
            print(f"run: monitor_started at {started:.2f} s, first probes at {first:.2f} s")

            time.sleep(float(figures["warmup_s"]))  # by default every trunk probed once
            # Counters are snapshotted when a scrape starts (its rendering can take
            # seconds at 100k trunks): rates are per second between the two starts.
            s0 = time.perf_counter()
            before = scrape(http_port)
            cpu0, w0 = proc_cpu_s(run.pid), time.perf_counter()
            kam0, machine0 = group_ticks(kam.pid), machine_ticks()
            peak_rss = 0.0
            while time.perf_counter() - w0 < args.duration:
                time.sleep(1.0)
                peak_rss = max(peak_rss, rss_mb(run.pid))
            cpu1, w1 = proc_cpu_s(run.pid), time.perf_counter()
            kam1, machine1 = group_ticks(kam.pid), machine_ticks()
            steady = rss_mb(run.pid)
            s1 = time.perf_counter()
            after = scrape(http_port)
            machine2 = machine_ticks()
            # A third scrape at once: its window holds the second one's rendering and
            # little else, which tells the lateness a scrape causes from the rest.
            during = scrape(http_port)
            skipped = sample(after.text, "trunkwatch_scheduler_skipped_probes_total") - sample(
                before.text, "trunkwatch_scheduler_skipped_probes_total"
            )
            fired = sample(after.text, "trunkwatch_scheduler_lag_seconds_count") - sample(
                before.text, "trunkwatch_scheduler_lag_seconds_count"
            )
            skipped_total = sample(after.text, "trunkwatch_scheduler_skipped_probes_total")
            figures |= {
                "steady_rss_mb": steady,
                "peak_rss_mb": peak_rss,
                "cpu_pct_one_core": 100 * (cpu1 - cpu0) / (w1 - w0),
                "kamailio_cpu_pct_one_core": 100 * (kam1 - kam0) / CLK_TCK / (w1 - w0),
                "machine_busy_pct": busy_pct(machine0, machine1),
                "machine_busy_pct_scrape": busy_pct(machine1, machine2),
                "skipped_in_window": skipped,
                "skipped_pct_in_window": 100 * skipped / fired if fired else float("nan"),
                "skipped_since_start": skipped_total,
                **lateness(before.text, after.text, during.text),
                "unknown_trunks": unknown_trunks(after.text),
                "unknown_pct": 100 * unknown_trunks(after.text) / args.trunks,
                "scrape_s": after.seconds,
                "scrape_gzip_mb": after.gzip_bytes / 1e6,
                "probes_per_s_window": fired / (s1 - s0),
                "sent_per_s_window": (fired - skipped) / (s1 - s0),
            }
            t_term, term_wall = time.perf_counter(), time.time()
            os.kill(run.pid, signal.SIGTERM)
            try:
                run.wait(120)
                figures["sigterm_exit_s"] = time.perf_counter() - t_term
                figures["stop_phases"] = stop_phases(log, term_wall, time.time())
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
                figures["sigterm_exit_s"] = float("inf")
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
            stop(kam)
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def print_table(f: dict[str, float | int | str]) -> None:
    n, interval = int(f["trunks"]), float(f["interval_s"])
    rows = [
        ("check-config", f"{f['check_config_s']:.1f} s, {f['check_config_peak_rss_mb']:.0f} MB"),
        ("run until monitor_started", f"{f['monitor_started_s']:.1f} s"),
        ("run until first probes", f"{f['first_probes_s']:.1f} s"),
        ("steady RSS", f"{f['steady_rss_mb']:.0f} MB (peak {f['peak_rss_mb']:.0f} MB)"),
        (
            "probes skipped by the scheduler",
            f"{f['skipped_pct_in_window']:.1f} % in the window "
            f"({f['skipped_in_window']:.0f}; {f['skipped_since_start']:.0f} since start)",
        ),
        (
            "probes due / sent per second",
            f"{f['probes_per_s_window']:.0f}/s / {f['sent_per_s_window']:.0f}/s",
        ),
        (
            f"trunks still UNKNOWN after {f['duration_s']:g} s + {f['warmup_s']:g} s warm-up",
            f"{f['unknown_pct']:.1f} % ({f['unknown_trunks']})",
        ),
        ("scheduler lateness p99", f"≤ {1e3 * float(f['lag_p99_bound_s']):g} ms (bucket)"),
        ("scheduler lateness, share within", str(f["lag_shares"])),
        (
            "… during one scrape: p99; share within",
            f"≤ {1e3 * float(f['lag_p99_scrape_s']):g} ms; {f['lag_shares_scrape']}",
        ),
        (
            "… the window less that scrape: p99 (roughly)",
            f"≤ {1e3 * float(f['lag_p99_outside_s']):g} ms",
        ),
        ("CPU", f"{f['cpu_pct_one_core']:.1f} % of one core"),
        (
            "… Kamailio's; the machine busy (all cores), in the window / during one scrape",
            f"{f['kamailio_cpu_pct_one_core']:.1f} % of one core; "
            f"{f['machine_busy_pct']:.1f} % / {f['machine_busy_pct_scrape']:.1f} %",
        ),
        ("one /metrics scrape", f"{f['scrape_s']:.2f} s, {f['scrape_gzip_mb']:.2f} MB gzip"),
        ("SIGTERM to exit", f"{f['sigterm_exit_s']:.1f} s ({f.get('stop_phases') or '-'})"),
    ]
    print(f"\n| {n:,} trunks at {interval:g} s | figure |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
