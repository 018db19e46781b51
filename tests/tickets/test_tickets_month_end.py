"""Month end after a real ticketed outage (issue 9): Kamailio stopped and restarted under a
running monitor with a webhook ticket sink and a `clock: ticket` contract; then every front
end — the CLI's report in four formats, `outages list`, the evidence bundle (and its check)
and the running daemon's API — gives the same minutes, availability and ticket times, and
they match the instants this test observed (stop, the carrier's acknowledgement, restart).

The CLI runs as a user runs it: a separate process whose environment lacks the sink's secret
(a report reads the store; only the commands that call a sink resolve its secret)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from peers import Kamailio
from tickets_support import WEBHOOK_SECRET, WebhookReceiver

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState

INTERVAL = 0.2
TZ = ZoneInfo("America/Mexico_City")
SERVICE = "kam-voice"
TRUNKWATCH = str(Path(sys.executable).parent / "trunkwatch")
# One probe interval, plus what a loaded 2-core machine adds between an event and its stamp.
SLACK = timedelta(seconds=INTERVAL + 0.4)


def config_text(kam: Kamailio, db: Path, hook_url: str) -> str:
    return f"""
agent: month-end
store: {{url: "sqlite:///{db}"}}
http: {{listen: 127.0.0.1, port: 0, open_reads: true}}
defaults: {{interval: {INTERVAL}, timeout: 0.15, down_after: 3, up_after: 2}}
trunks:
  - name: kam-udp
    carrier: kamailio-telecom
    uri: "{kam.uri("udp")}"
tickets:
  outbox: {{retry_initial: 50ms, retry_max: 200ms, request_timeout: 2s}}
  sinks:
    - {{name: carrier-hook, type: webhook, url: "{hook_url}", secret_env: HOOK_SECRET}}
sla:
  signing_key_file: evidence.key
  services:
    - {{name: {SERVICE}, rule: all, parts: [kam-udp]}}
  contracts:
    - name: kam-contract
      carrier: Kamailio Telecom
      services: [{SERVICE}]
      target_pct: 99.9
      basis: thirty_day
      clock: ticket
      tz: America/Mexico_City
      acceptance: 2020-01-01
      monthly_fee: 1000
      currency: MXN
      credit_tiers: [{{below_pct: 99.9, credit_pct: 10}}]
"""


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def tw(*args: str) -> str:
    """The CLI in its own process, without the webhook secret in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "HOOK_SECRET"}
    done = subprocess.run(
        [TRUNKWATCH, "--log-format", "json", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"trunkwatch {' '.join(args)}: {done.stderr}"
    return done.stdout


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def near(value: datetime, observed: datetime, what: str) -> None:
    assert abs(value - observed) <= SLACK, f"{what}: {value} vs observed {observed}"


async def test_every_front_end_counts_the_ticketed_outage_alike(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    receiver = WebhookReceiver()
    hook_url = await receiver.start()
    db = tmp_path / "tw.db"
    text = config_text(kamailio, db, hook_url)
    config_file = tmp_path / "trunkwatch.yaml"
    config_file.write_text(text)
    monitor = Monitor(
        config_from_text(text, base_dir=tmp_path, env={"HOOK_SECRET": WEBHOOK_SECRET})
    )
    await monitor.start()
    month = datetime.now(UTC).astimezone(TZ).strftime("%Y-%m")
    try:
        await wait_for(lambda: monitor.health["kam-udp"].state is TrunkState.UP, 5, "up")
        stopped_at = datetime.now(UTC)
        await asyncio.to_thread(kamailio.stop)
        await wait_for(lambda: bool(receiver.opens()), 10, "the ticket.open delivery")
        acknowledged_at = receiver.opens()[0].received_at
        await asyncio.sleep(1.0)
        await asyncio.to_thread(kamailio.start)
        restarted_at = datetime.now(UTC)
        await wait_for(lambda: monitor.health["kam-udp"].state is TrunkState.UP, 8, "up again")
        await wait_for(
            lambda: any(d.type == "ticket.resolve" for d in receiver.deliveries), 10, "resolve"
        )
        # The daemon's API, while it runs.
        url = f"http://127.0.0.1:{monitor.bound_port}/api/v1/services/{SERVICE}/report"
        async with (
            aiohttp.ClientSession() as http,
            http.get(url, params={"month": month, "format": "json", "lang": "en"}) as resp,
        ):
            assert resp.status == 200, await resp.text()
            api = json.loads(await resp.read())
    finally:
        await monitor.stop()
        await receiver.stop()
    assert len(receiver.opens()) == 1

    # The CLI's report, four formats.
    def report(fmt: str) -> Path:
        out = tmp_path / f"report.{fmt}"
        tw("sla", "report", "-c", str(config_file), "-s", SERVICE, "-m", month,
           "-f", fmt, "--lang", "en", "-o", str(out))  # fmt: skip
        return out

    cli = json.loads(report("json").read_text())
    (line,) = cli["outages"]
    assert line["ticket_source"] == "ticket", line
    assert line["carrier_ticket"] == "HOOK-1"
    ticket_at = instant(line["ticket_opened_at"])
    restored_at = instant(line["restored_at"])
    first_failure_at = instant(line["first_failure_at"])
    # What the test saw: the outage starts at the stop, the contract's clock at the carrier's
    # acknowledgement, and it ends at the restart.
    near(first_failure_at, stopped_at, "first failure")
    near(ticket_at, acknowledged_at, "ticket opened")
    near(restored_at, restarted_at, "restoration")
    counted = Decimal(line["counted"]["seconds"])
    assert counted == Decimal((restored_at - ticket_at) / timedelta(microseconds=1)) / 10**6
    assert Decimal(line["unclaimed"]["seconds"]) > 0 and "before_ticket" in line["reasons"]
    pct, exact = cli["availability"]["pct"], cli["availability"]["exact"]
    ttotal = Fraction(Decimal(cli["availability"]["ttotal"]["seconds"]))
    assert Fraction(exact) == (ttotal - Fraction(counted)) / ttotal * 100 < 100
    assert cli["availability"]["tnodisp"]["seconds"] == line["counted"]["seconds"]

    # The same figures from the API, which the daemon built from its own wiring.
    (api_line,) = api["outages"]
    assert (api["availability"]["pct"], api["availability"]["exact"]) == (pct, exact)
    for key in ("id", "ticket_opened_at", "restored_at", "counted", "unclaimed", "reasons"):
        assert api_line[key] == line[key], key

    # CSV: one row, the same figures.
    (row,) = csv.DictReader(io.StringIO(report("csv").read_text()))
    assert row["availability_pct"] == pct
    assert row["ticket_opened_at"] == line["ticket_opened_at"]
    assert row["counted_minutes"] == line["counted"]["minutes"]
    assert row["carrier_ticket"] == "HOOK-1"

    # HTML and PDF: the headline and the outage's times in the contract's zone.
    local_ticket = ticket_at.astimezone(TZ).strftime("%H:%M:%S")
    html = report("html").read_text()
    assert f"{pct} %" in html and local_ticket in html and line["counted"]["minutes"] in html
    pdf = pdf_text(report("pdf"))
    assert f"{pct} %" in pdf.split("\f")[0]
    assert local_ticket in pdf and line["counted"]["minutes"] in pdf

    # `outages list`
    (listed,) = json.loads(tw("outages", "list", "-c", str(config_file), "-s", SERVICE,
                              "-m", month))  # fmt: skip
    for key in ("id", "ticket_opened_at", "counted", "unclaimed", "reasons", "carrier_ticket"):
        assert listed[key] == line[key], key

    # The evidence bundle carries the ticket and the same report, and verifies.
    bundle = tmp_path / "bundle"
    tw("evidence", "export", "-c", str(config_file), "-m", month, "-o", str(bundle),
       "--no-pdf", "--lang", "en")  # fmt: skip
    tickets = json.loads((bundle / "records" / "tickets.json").read_text())
    assert [t["carrier_ref"] for t in tickets] == ["HOOK-1"]
    assert instant(tickets[0]["opened_at"]) == ticket_at
    bundled = json.loads((bundle / "reports" / f"{SERVICE}.json").read_text())
    assert (bundled["availability"]["pct"], bundled["availability"]["exact"]) == (pct, exact)
    assert bundled["outages"][0]["counted"] == line["counted"]
    services = json.loads((bundle / "records" / "service_outages.json").read_text())
    assert [instant(s["ticket_opened_at"]) for s in services] == [ticket_at]
    verified = tw("evidence", "verify", str(bundle), "-c", str(config_file))
    assert verified.splitlines()[-1].startswith("OK ")


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
