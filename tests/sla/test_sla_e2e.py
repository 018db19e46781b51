"""End to end: a real monitor against Kamailio with an induced outage, then the CLI's report
(PDF text checked with pdftotext), evidence export and verification, and tampering caught."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from peers import Kamailio
from sla_world import pdf_text
from typer.testing import CliRunner

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState
from monitor.sla_cli import evidence_app, sla_app
from monitor.store import Store

INTERVAL = 0.2
TZ = "America/Mexico_City"
SLA_SECTION = """
sla:
  signing_key_file: evidence.key
  services:
    - {name: kam-voice, rule: all, parts: [kam-udp]}
  contracts:
    - name: kam-contract
      carrier: Kamailio Telecom
      services: [kam-voice]
      target_pct: 99.9
      basis: thirty_day
      clock: detection
      tz: America/Mexico_City
      acceptance: 2020-01-01
      monthly_fee: 1000
      currency: MXN
      credit_tiers: [{below_pct: 99.9, credit_pct: 10}]
"""


def monitor_yaml(kam: Kamailio, db: Path) -> str:
    return f"""
agent: e2e
store: {{url: "sqlite:///{db}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: {INTERVAL}, timeout: 0.15, down_after: 3, up_after: 2}}
trunks:
  - name: kam-udp
    carrier: kam
    uri: "{kam.uri("udp")}"
"""


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(sla_app, name="sla")
    root.add_typer(evidence_app, name="evidence")
    return root


async def invoke(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, cli(), list(args))
    return result.exit_code, result.output


async def test_induced_outage_report_and_evidence(kamailio: Kamailio, tmp_path: Path) -> None:
    db = tmp_path / "tw.db"
    text = monitor_yaml(kamailio, db)
    config_file = tmp_path / "trunkwatch.yaml"
    config_file.write_text(text + SLA_SECTION)
    monitor = Monitor(config_from_text(text, source="<e2e>"))
    await monitor.start()
    try:
        await wait_for(lambda: monitor.health["kam-udp"].state is TrunkState.UP, 5, "up")
        stopped_at = datetime.now(UTC)
        await asyncio.to_thread(kamailio.stop)
        await wait_for(lambda: monitor.health["kam-udp"].state is TrunkState.DOWN, 5, "down")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(kamailio.start)
        started_at = datetime.now(UTC)
        await wait_for(lambda: monitor.health["kam-udp"].state is TrunkState.UP, 8, "up again")
    finally:
        await monitor.stop()

    store = await Store.open(f"sqlite:///{db}", agent="e2e")
    try:
        (outage,) = await store.outages()
    finally:
        await store.close()
    assert outage.restored_at is not None
    down_us = (outage.restored_at - outage.first_failure_at) // timedelta(microseconds=1)
    slack = timedelta(seconds=INTERVAL + 0.3)
    assert started_at - stopped_at - slack <= outage.restored_at - outage.first_failure_at
    assert outage.restored_at - outage.first_failure_at <= started_at - stopped_at + slack

    month = datetime.now(UTC).astimezone(ZoneInfo(TZ)).strftime("%Y-%m")
    code, out = await invoke(
        "sla",
        "report",
        "-c",
        str(config_file),
        "-s",
        "kam-voice",
        "-m",
        month,
        "-f",
        "json",
        "-o",
        str(tmp_path / "r.json"),
        "--lang",
        "en",
    )
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    (line,) = report["outages"]
    assert line["id"] == outage.id and line["source"] == "monitor"
    # Clock detection: the whole outage (first failure → restoration) counts, to the microsecond.
    counted_us = int(Decimal(line["counted"]["seconds"]) * 1_000_000)
    assert counted_us == down_us
    assert report["availability"]["tnodisp"]["seconds"] == line["counted"]["seconds"]
    minutes_text = line["counted"]["minutes"]

    code, out = await invoke(
        "sla",
        "report",
        "-c",
        str(config_file),
        "-s",
        "kam-voice",
        "-m",
        month,
        "-f",
        "pdf",
        "-o",
        str(tmp_path / "r.pdf"),
        "--lang",
        "en",
    )
    assert code == 0, out
    pdf = pdf_text(tmp_path / "r.pdf")
    assert f"{report['availability']['pct']} %" in pdf.split("\f")[0]
    assert "Kamailio Telecom" in pdf and "kam-voice" in pdf
    assert f"{minutes_text}" in pdf
    assert outage.restored_at.astimezone(ZoneInfo(TZ)).strftime("%H:%M:%S") in pdf

    bundle = tmp_path / "bundle"
    code, out = await invoke(
        "evidence", "export", "-c", str(config_file), "-m", month, "-o", str(bundle), "--no-pdf"
    )
    assert code == 0, out
    code, out = await invoke("evidence", "verify", str(bundle), "-c", str(config_file))
    assert code == 0, out
    assert out.splitlines()[-1].startswith("OK ")

    events = json.loads((bundle / "journal" / "events.json").read_text())
    victim = next(e for e in events if e["kind"] == "outage_opened")["seq"]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM journal WHERE seq = ?", (victim,))
    code, out = await invoke("evidence", "verify", str(bundle), "-c", str(config_file))
    assert code == 1
    assert f"FAIL journal seq {victim}: deleted from the database" in out

    target = bundle / "records" / "trunk_outages.csv"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x01
    target.write_bytes(bytes(data))
    code, out = await invoke("evidence", "verify", str(bundle))
    assert code == 1
    assert "FAIL records/trunk_outages.csv: altered (SHA-256 does not match the manifest)" in out
