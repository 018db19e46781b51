"""The `trunkwatch` command as a user runs it: a real process, real peers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from peers import Kamailio, free_port

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "rfc4475"
TRUNKWATCH = str(Path(sys.executable).parent / "trunkwatch")


def tw(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRUNKWATCH, "--log-format", "json", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return str(r.read().decode())


def json_lines(text: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_demo_shows_an_outage_open_and_close(tmp_path: Path) -> None:
    port = free_port("tcp")
    folder = tmp_path / "demo"
    proc = subprocess.Popen(
        [TRUNKWATCH, "--log-format", "json", "demo", "--duration", "8", "--port", str(port),
         "--interval", "0.2", "--silent-at", "1.5", "--silent-for", "3", "--period", "100",
         "--dir", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen_down = False
    last = ""
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            last = metrics(port)
        except OSError:
            time.sleep(0.1)
            continue
        if 'trunkwatch_trunk_state{agent="demo",state="down",trunk="demo-trunk"} 1.0' in last:
            seen_down = True
        up = 'trunkwatch_trunk_state{agent="demo",state="up",trunk="demo-trunk"} 1.0'
        if seen_down and up in last:
            break
        time.sleep(0.1)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert seen_down, "the trunk never showed DOWN at /metrics"
    assert 'trunkwatch_outages_opened_total{agent="demo",trunk="demo-trunk"} 1.0' in last
    assert 'trunkwatch_outage_open{agent="demo",trunk="demo-trunk"} 0.0' in last
    events = json_lines(out)
    names = [e["event"] for e in events]
    for name in ("demo_started", "demo_responder_silent", "trunk_down", "outage_opened",
                 "outage_closed", "trunk_up", "monitor_stopped"):  # fmt: skip
        assert name in names, (name, names)
    closed = next(e for e in events if e["event"] == "outage_closed")
    assert 2.6 <= float(str(closed["duration_s"])) <= 3.6  # silent for 3 s, probed every 0.2 s
    # The stop says where its time went, phase by phase.
    stopped = next(e for e in events if e["event"] == "monitor_stopped")
    took = stopped["stop_s"]
    assert isinstance(took, dict), stopped
    assert list(took) == ["probes", "tasks", "journal", "samples", "tickets", "store", "http"]
    assert all(0 <= float(s) < 20 for s in took.values()), took
    ticket = next(e for e in events if e["event"] == "ticket_opened")
    assert ticket["external_id"] == "DEMO-1"

    # The README's month-end workflow on what the demo left behind.
    config = str(folder / "trunkwatch.yaml")
    month = datetime.now(ZoneInfo("America/Mexico_City")).strftime("%Y-%m")
    r = tw("sla", "report", "-c", config, "-s", "demo-voice", "-m", month, "-f", "json",
           "--lang", "en")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    (outage,) = report["outages"]
    assert outage["id"] == closed["outage_id"]
    assert (outage["ticket_source"], outage["carrier_ticket"]) == ("ticket", "DEMO-1")
    assert outage["ticket_opened_at"] > outage["first_failure_at"]
    assert float(outage["counted"]["seconds"]) > 0 and float(outage["unclaimed"]["seconds"]) > 0
    assert float(report["availability"]["pct"]) <= 100
    bundle = tmp_path / "bundle"
    r = tw("evidence", "export", "-c", config, "-m", month, "-o", str(bundle), "--no-pdf")
    assert r.returncode == 0, r.stderr
    r = tw("evidence", "verify", str(bundle))
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("OK "), r.stdout


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text('trunks:\n  - name: a\n    uri: "sip:127.0.0.1:5060"\n')
    r = tw("check-config", "-c", str(good))
    assert r.returncode == 0, r.stderr
    assert "1 trunk" in r.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'trunks:\n  - name: a\n    uri: "sip:127.0.0.1:5060"\n    interval: 2s\n    timeout: 5s\n'
    )
    r = tw("check-config", "-c", str(bad))
    assert r.returncode == 2
    assert "bad.yaml:5" in r.stderr and "timeout" in r.stderr


def test_migrate_brings_the_schema_to_head_once(tmp_path: Path) -> None:
    from monitor.store.migrations import HEAD_REVISION

    db = tmp_path / "tw.db"
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"store:\n  url: sqlite:///{db}\ntrunks: []\n")
    r = tw("migrate", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert f"migrated from empty to {HEAD_REVISION}" in r.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (HEAD_REVISION,)
        ]
    r = tw("migrate", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert f"already at {HEAD_REVISION}" in r.stdout

    cfg.write_text(f"store:\n  url: sqlite:///{tmp_path}/no/such/dir/tw.db\ntrunks: []\n")
    r = tw("migrate", "-c", str(cfg))
    assert r.returncode == 2
    assert "store.url" in r.stderr and "Traceback" not in r.stderr


def test_example_config_checks(tmp_path: Path) -> None:
    r = tw("check-config", "-c", str(REPO / "docs" / "trunkwatch.example.yaml"),
           env={"TRUNKWATCH_CARRIER_B_PASSWORD": "not-a-real-secret"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "not-a-real-secret" not in r.stdout + r.stderr


def test_sip_lint_exit_codes() -> None:
    valid = FIXTURES / "TC_WSINV.dat"
    invalid = FIXTURES / "TC_BADINV01_I.dat"
    r = tw("sip", "lint", str(valid))
    assert r.returncode == 0 and "valid: request INVITE" in r.stdout
    r = tw("sip", "lint", str(valid), str(invalid))
    assert r.returncode == 1
    assert f"{invalid}: invalid:" in r.stdout
    r = tw("sip", "lint", "/nonexistent/file.sip")
    assert r.returncode == 2
    r = tw("sip", "lint")
    assert r.returncode == 2


def test_probe_options_against_kamailio(kamailio: Kamailio) -> None:
    r = tw("probe", "options", "-v", kamailio.uri("udp"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "outcome: ok" in r.stdout
    assert "status: 200 Keepalive" in r.stdout
    assert "rtt: " in r.stdout
    assert "OPTIONS sip:127.0.0.1:" in r.stdout  # -v prints the request

    closed = free_port("udp")
    r = tw("probe", "options", f"sip:127.0.0.1:{closed}", "--timeout", "1")
    assert r.returncode == 1
    assert "outcome: refused" in r.stdout

    r = tw("probe", "options", "not a uri")
    assert r.returncode == 2


def test_run_serves_metrics_and_stops_on_sigterm(kamailio: Kamailio, tmp_path: Path) -> None:
    port = free_port("tcp")
    cfg = tmp_path / "tw.yaml"
    cfg.write_text(
        f"agent: cli\nstore: {{url: sqlite:///{tmp_path / 'tw.db'}}}\n"
        f"http: {{port: {port}}}\n"
        f"defaults: {{interval: 0.5}}\n"
        f'trunks: [{{name: kam, uri: "{kamailio.uri("udp")}"}}]\n'
    )
    proc = subprocess.Popen(
        [TRUNKWATCH, "--log-format", "json", "run", "-c", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        text = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                text = metrics(port)
            except OSError:
                text = ""
            if 'trunkwatch_probe_success{agent="cli",probe="options",trunk="kam"} 1.0' in text:
                break
            time.sleep(0.2)
        assert 'trunkwatch_probe_success{agent="cli",probe="options",trunk="kam"} 1.0' in text
        assert "trunkwatch_build_info{" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "monitor_stopped" in out
