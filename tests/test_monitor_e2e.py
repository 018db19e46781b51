"""The whole monitor against a real Kamailio: outages open and close, restarts resume them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from peers import Kamailio, Promtool, TlsFiles
from structlog.testing import capture_logs

from monitor.app import Monitor
from monitor.config import Config, config_from_text
from monitor.health import TrunkState
from monitor.metrics import exporter as exporter_module
from monitor.metrics import pacing
from monitor.metrics.exporter import Exporter
from monitor.store import Store

INTERVAL = 0.2


def kamailio_config(kam: Kamailio, tls: TlsFiles, db: Path, **overrides: object) -> Config:
    text = f"""
agent: e2e
store: {{url: "sqlite:///{db}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: {INTERVAL}, timeout: 0.15, down_after: 3, up_after: 2}}
trunks:
  - name: kam-udp
    carrier: kam
    uri: "{kam.uri("udp")}"
  - name: kam-tcp
    carrier: kam
    uri: "{kam.uri("tcp")}"
  - name: kam-tls
    carrier: kam
    uri: "{kam.uri("tls")}"
    tls: {{ca_file: "{tls.ca}"}}
"""
    return config_from_text(text, source="<e2e>")


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def states(monitor: Monitor) -> set[TrunkState]:
    return {h.state for h in monitor.health.values()}


async def scrape(monitor: Monitor, accept: str = "text/plain") -> str:
    url = f"http://127.0.0.1:{monitor.bound_port}/metrics"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Accept": accept}) as r,
    ):
        assert r.status == 200
        return await r.text()


async def test_outage_opens_and_closes_with_kamailio(
    kamailio: Kamailio, tls_ca: TlsFiles, tmp_path: Path, promtool: Promtool
) -> None:
    db = tmp_path / "tw.db"
    monitor = Monitor(kamailio_config(kamailio, tls_ca, db))
    await monitor.start()
    try:
        await wait_for(lambda: states(monitor) == {TrunkState.UP}, 5, "all trunks up")
        metrics = await scrape(monitor)
        for transport in ("udp", "tcp", "tls"):
            assert (
                f'trunkwatch_probe_success{{agent="e2e",probe="options",'
                f'trunk="kam-{transport}"}} 1.0' in metrics
            )
        rc, out = promtool.check_metrics(metrics)
        assert rc == 0, out

        stopped_at = datetime.now(UTC)
        await asyncio.to_thread(kamailio.stop)
        await wait_for(lambda: states(monitor) == {TrunkState.DOWN}, 5, "all trunks down")
        metrics = await scrape(monitor)
        assert 'trunkwatch_outage_open{agent="e2e",trunk="kam-udp"} 1.0' in metrics
        assert 'trunkwatch_trunk_state{agent="e2e",state="down",trunk="kam-tls"} 1.0' in metrics

        await asyncio.to_thread(kamailio.start)
        started_at = datetime.now(UTC)
        await wait_for(lambda: states(monitor) == {TrunkState.UP}, 8, "all trunks up again")
    finally:
        await monitor.stop()

    store = await Store.open(f"sqlite:///{db}", agent="e2e")
    try:
        outages = await store.outages()
    finally:
        await store.close()
    assert sorted(o.trunk for o in outages) == ["kam-tcp", "kam-tls", "kam-udp"]
    slack = timedelta(seconds=INTERVAL + 0.2)  # one interval, plus the stop/start call itself
    for outage in outages:
        assert outage.restored_at is not None and outage.closed_at is not None
        assert stopped_at - slack <= outage.first_failure_at <= stopped_at + slack, outage
        assert started_at - slack <= outage.restored_at <= started_at + slack, outage
        assert outage.confirmed_at >= outage.first_failure_at
        assert outage.closed_at >= outage.restored_at


async def test_restart_mid_outage_resumes_the_same_outage(
    kamailio: Kamailio, tls_ca: TlsFiles, tmp_path: Path
) -> None:
    db = tmp_path / "tw.db"
    cfg = kamailio_config(kamailio, tls_ca, db)
    await asyncio.to_thread(kamailio.stop)

    first = Monitor(cfg)
    await first.start()
    try:
        await wait_for(lambda: states(first) == {TrunkState.DOWN}, 5, "outage opened")
        ids = {name: h.open_outage.id for name, h in first.health.items() if h.open_outage}
    finally:
        await first.stop()
    assert len(ids) == 3
    await asyncio.sleep(0.5)  # the monitor is not running: unknown time

    second = Monitor(cfg)
    await second.start()
    try:
        resumed = {n: h.open_outage.id for n, h in second.health.items() if h.open_outage}
        assert resumed == ids
        assert second.gaps_recorded == 1
        await asyncio.to_thread(kamailio.start)
        await wait_for(lambda: states(second) == {TrunkState.UP}, 8, "recovery")
    finally:
        await second.stop()

    store = await Store.open(f"sqlite:///{db}", agent="e2e")
    try:
        outages = await store.outages()
        gaps = await store.gaps()
    finally:
        await store.close()
    assert {o.id for o in outages} == set(ids.values())  # no second outage
    assert all(o.closed_at is not None for o in outages)
    assert len(gaps) == 1
    assert gaps[0].end - gaps[0].start >= timedelta(seconds=0.4)


async def test_openmetrics_is_negotiated(
    kamailio: Kamailio, tls_ca: TlsFiles, tmp_path: Path
) -> None:
    monitor = Monitor(kamailio_config(kamailio, tls_ca, tmp_path / "tw.db"))
    await monitor.start()
    try:
        await wait_for(lambda: states(monitor) == {TrunkState.UP}, 5, "up")
        text = await scrape(monitor, accept="application/openmetrics-text; version=1.0.0")
    finally:
        await monitor.stop()
    assert text.rstrip().endswith("# EOF")
    assert "# TYPE trunkwatch_probe_outcome counter" in text
    ok = 'trunkwatch_probe_outcome_total{agent="e2e",outcome="ok",probe="options",trunk="kam-udp"}'
    assert ok in text


async def test_sla_api_and_gauges_are_served(
    kamailio: Kamailio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running monitor mounts /api/v1 and exports the SLA figures the reports compute."""
    monkeypatch.setenv("TW_E2E_API_TOKEN", "test-token")
    cfg = config_from_text(
        f"""
agent: e2e
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0, open_reads: true}}
defaults: {{interval: {INTERVAL}, timeout: 0.15}}
trunks: [{{name: kam-udp, uri: "{kamailio.uri("udp")}"}}]
sla:
  signing_key_file: {tmp_path / "evidence.key"}
  api_token_env: TW_E2E_API_TOKEN
  services: [{{name: voice, parts: [kam-udp]}}]
  contracts:
    - name: c1
      carrier: kam
      services: [voice]
      target_pct: 99.5
      tz: America/Mexico_City
      acceptance: 2026-01-01
      monthly_fee: 1000
"""
    )
    monitor = Monitor(cfg)
    await monitor.start()
    try:
        await wait_for(lambda: states(monitor) == {TrunkState.UP}, 5, "up")
        base = f"http://127.0.0.1:{monitor.bound_port}/api/v1"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/services") as r:
                assert r.status == 200
                assert "voice" in await r.text()
            async with session.post(f"{base}/outages", json={}) as r:
                assert r.status in (401, 403)  # writes need the bearer token
        await wait_for(
            lambda: monitor.sla_metrics is not None and bool(monitor.sla_metrics.samples()),
            10,
            "SLA gauges computed",
        )
        metrics = await scrape(monitor)
    finally:
        await monitor.stop()
    assert 'trunkwatch_availability_ratio{service="voice",window="month"}' in metrics
    assert "# TYPE trunkwatch_availability_ratio gauge" in metrics


async def test_outage_opens_a_ticket_and_the_sla_clock_starts_there(
    kamailio: Kamailio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running monitor: outage → signed webhook ticket within 1 s → resolved on recovery;
    the SLA sees the ticket's acknowledgement as the start of the contract clock."""
    import base64
    import hashlib
    import hmac

    from aiohttp import web

    secret = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    monkeypatch.setenv("TW_E2E_HOOK_SECRET", f"whsec_{secret}")
    received: list[tuple[float, dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}."
        mac = hmac.new(base64.b64decode(secret), signed.encode() + body, hashlib.sha256)
        expected = "v1," + base64.b64encode(mac.digest()).decode()
        assert expected in request.headers["webhook-signature"].split(" ")
        received.append((time.monotonic(), await request.json()))
        return web.json_response({"id": f"T-{len(received)}"})

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    runner = web.AppRunner(hook_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = runner.addresses[0][1]
    cfg = config_from_text(
        f"""
agent: e2e
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: {INTERVAL}, timeout: 0.15, down_after: 3, up_after: 2}}
trunks: [{{name: kam-udp, carrier: kam, uri: "{kamailio.uri("udp")}"}}]
tickets:
  sinks:
    - {{name: hook, type: webhook, url: "http://127.0.0.1:{hook_port}/hook",
        secret_env: TW_E2E_HOOK_SECRET}}
sla:
  signing_key_file: {tmp_path / "evidence.key"}
  services: [{{name: voice, parts: [kam-udp]}}]
  contracts:
    - {{name: c1, carrier: kam, services: [voice], target_pct: 99.5, clock: ticket,
        tz: America/Mexico_City, acceptance: 2026-01-01, monthly_fee: 1000}}
"""
    )
    monitor = Monitor(cfg)
    await monitor.start()
    try:
        await wait_for(lambda: states(monitor) == {TrunkState.UP}, 5, "up")
        await asyncio.to_thread(kamailio.stop)
        await wait_for(lambda: states(monitor) == {TrunkState.DOWN}, 5, "down")
        confirmed = time.monotonic()
        await wait_for(lambda: len(received) >= 1, 5, "ticket opened")
        assert received[0][0] - confirmed < 1.0  # requested within 1 s of confirmation
        await asyncio.to_thread(kamailio.start)
        await wait_for(lambda: states(monitor) == {TrunkState.UP}, 8, "up again")
        await wait_for(lambda: len(received) >= 2, 5, "ticket resolved")
        assert monitor.sla is not None
        tickets = await monitor.sla.all_tickets()
    finally:
        await monitor.stop()
        await runner.cleanup()
    assert len(tickets) == 1 and tickets[0].opened_at is not None
    assert tickets[0].acknowledged_at == tickets[0].opened_at
    kinds = [body["type"] for _, body in received]
    assert kinds[0] == "ticket.open" and kinds[-1] == "ticket.resolve", kinds


async def test_first_states_are_one_summary_line_not_one_per_trunk(
    kamailio: Kamailio, tls_ca: TlsFiles, tmp_path: Path
) -> None:
    monitor = Monitor(kamailio_config(kamailio, tls_ca, tmp_path / "tw.db"))
    with capture_logs() as logs:
        await monitor.start()
        try:
            await wait_for(lambda: states(monitor) == {TrunkState.UP}, 5, "all trunks up")
        finally:
            await monitor.stop()
    events = [e["event"] for e in logs]
    assert "trunk_up" not in events
    (summary,) = [e for e in logs if e["event"] == "trunk_states_learned"]
    assert summary["up"] == 3


async def test_first_probes_go_out_while_the_exporter_is_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The exporter's label texts (~0.7 s at 100,000 trunks) are made after the scheduler
    # started, a slice at a time: probes are sent between the slices, not after them all.
    monkeypatch.setattr(pacing, "STEP_S", 0.0)
    monkeypatch.setattr(pacing, "MAX_STEP_S", 0.0)
    monkeypatch.setattr(exporter_module, "SNAPSHOT_SLICE", 1)  # ~5,000 slices, ≥ 0.1 s
    trunks = "".join(f'  - {{name: t{i:04d}, uri: "sip:127.0.0.1:9"}}\n' for i in range(1000))
    cfg = config_from_text(
        f'store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}\n'
        "http: {listen: 127.0.0.1, port: 0}\n"
        f"defaults: {{interval: 1, timeout: 0.5}}\ntrunks:\n{trunks}",
        source="<first-probes>",
    )
    monitor = Monitor(cfg)
    make = Exporter._trunk_label  # the last columns' texts (RTT, health) are made with it
    started: list[int] = []

    def watched(self: Exporter, trunk: str) -> str:
        assert monitor.scheduler is not None
        started.append(monitor.scheduler.started)
        return make(self, trunk)

    monkeypatch.setattr(Exporter, "_trunk_label", watched)
    await monitor.start()
    try:
        assert len(started) >= 1000
        assert started[-1] > 0  # probes were sent before the last text was made
    finally:
        await monitor.stop()
