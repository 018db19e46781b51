"""Them or us, against a real Kamailio (issue 12): when every trunk of two carriers stops
answering at once, the agent counts itself cut off: no outage, no ticket request, and the
time is a monitor gap; with one trunk still answering, the same failure is the carriers'."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peers import Kamailio
from structlog.testing import capture_logs
from test_monitor_e2e import INTERVAL, scrape, wait_for

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState
from monitor.tickets.ledger import outbox_rows
from monitor.vantage import SUSPECT_REASON
from probes.responder import SipResponder


@pytest.fixture
async def control() -> AsyncIterator[SipResponder]:
    """A far end that keeps answering while Kamailio is stopped."""
    responder = SipResponder("127.0.0.1", 0)
    await responder.start()
    try:
        yield responder
    finally:
        await responder.stop()


def controlled_by(target: str) -> str:
    """The vantage section probing one control target every INTERVAL."""
    return (
        f'vantage: {{control_targets: ["{target}"], control_interval: {INTERVAL}, '
        "control_timeout: 0.15}"
    )


def monitor_for(kam: Kamailio, db: Path, extra_trunk: str = "", vantage: str = "") -> Monitor:
    text = f"""
agent: vantage-e2e
{vantage}
store: {{url: "sqlite:///{db}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: {INTERVAL}, timeout: 0.15, down_after: 3, up_after: 2}}
tickets:
  sinks: [{{name: hook, type: webhook, url: "http://127.0.0.1:9/hook", secret_env: HOOK}}]
trunks:
  - {{name: kam-udp, carrier: carrier-a, uri: "{kam.uri("udp")}"}}
  - {{name: kam-tcp, carrier: carrier-b, uri: "{kam.uri("tcp")}"}}
{extra_trunk}"""
    env = {"HOOK": "whsec_" + base64.b64encode(bytes(range(32))).decode()}
    return Monitor(config_from_text(text, source="<vantage-e2e>", env=env))


async def test_every_carrier_failing_at_once_is_the_agents_own_fault(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    monitor = monitor_for(kamailio, tmp_path / "tw.db")
    await monitor.start()
    assert monitor.store is not None and monitor.pipeline.vantage is not None
    try:
        await wait_for(
            lambda: (
                len(monitor.health) == 2
                and all(h.state is TrunkState.UP for h in monitor.health.values())
            ),
            5,
            "trunks up",
        )
        kamailio.stop()
        await wait_for(lambda: monitor.pipeline.vantage.suspect, 5, "suspect")  # type: ignore[union-attr]
        assert 'trunkwatch_agent_suspect{agent="vantage-e2e"} 1.0' in await scrape(monitor)
        await asyncio.sleep(10 * INTERVAL)  # well past down_after: still no outage
        assert all(h.open_outage is None for h in monitor.health.values())
        kamailio.start()
        await wait_for(lambda: not monitor.pipeline.vantage.suspect, 10, "back")  # type: ignore[union-attr]
        await monitor.writer.flush()
        gaps = [g for g in await monitor.store.gaps() if g.reason == SUSPECT_REASON]
        assert len(gaps) == 1 and (gaps[0].end - gaps[0].start).total_seconds() > 10 * INTERVAL
        assert await outbox_rows(monitor.store) == []  # no ticket was ever asked for
        assert not [o for o in await monitor.store.outages() if o.trunk.startswith("kam-")]
    finally:
        kamailio.start()  # a no-op when it runs
        await monitor.stop()


async def test_a_carrier_still_answering_makes_it_the_others_outage(
    kamailio: Kamailio, control: SipResponder, tmp_path: Path
) -> None:
    extra = f'  - {{name: ctl, carrier: carrier-c, uri: "sip:127.0.0.1:{control.port}"}}\n'
    monitor = monitor_for(kamailio, tmp_path / "tw.db", extra)
    await monitor.start()
    assert monitor.store is not None
    try:
        await wait_for(
            lambda: all(h.state is TrunkState.UP for h in monitor.health.values()), 5, "trunks up"
        )
        kamailio.stop()
        await wait_for(
            lambda: (
                monitor.health["kam-udp"].open_outage is not None
                and monitor.health["kam-tcp"].open_outage is not None
            ),
            5,
            "two outages",
        )
        assert monitor.pipeline.vantage is not None and not monitor.pipeline.vantage.suspect
        await monitor.writer.flush()
        opens = [r for r in await outbox_rows(monitor.store) if r.action.value == "open"]
        assert len(opens) == 2  # one ticket request per outage
    finally:
        kamailio.start()  # a no-op when it runs
        await monitor.stop()


async def test_a_control_target_still_answering_makes_it_the_carriers_outage(
    kamailio: Kamailio, control: SipResponder, tmp_path: Path
) -> None:
    # Every trunk (two carriers) fails at once, but the control target (another SIP
    # responder: the other site's agent, say) still answers: their side, not ours.
    target = f"sip:127.0.0.1:{control.port}"
    vantage = controlled_by(target)
    monitor = monitor_for(kamailio, tmp_path / "tw.db", vantage=vantage)
    await monitor.start()
    assert monitor.store is not None and monitor.pipeline.vantage is not None
    try:
        await wait_for(
            lambda: (
                len(monitor.health) == 2
                and all(h.state is TrunkState.UP for h in monitor.health.values())
            ),
            5,
            "trunks up",
        )
        up = f'trunkwatch_control_target_up{{agent="vantage-e2e",target="{target}"}}'
        assert f"{up} 1.0" in await scrape(monitor)
        with capture_logs() as logs:
            kamailio.stop()
            await wait_for(
                lambda: all(h.open_outage is not None for h in monitor.health.values()),
                5,
                "two outages",
            )
        assert not monitor.pipeline.vantage.suspect
        assert [e for e in logs if e["event"] == "vantage_their_side"]
        await monitor.writer.flush()
        opens = [r for r in await outbox_rows(monitor.store) if r.action.value == "open"]
        assert len(opens) == 2  # one ticket request per outage
        assert not [g for g in await monitor.store.gaps() if g.reason == SUSPECT_REASON]
    finally:
        kamailio.start()  # a no-op when it runs
        await monitor.stop()


async def test_control_targets_failing_too_make_the_agent_suspect(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    # The control target is a TCP listener; it goes away with Kamailio: our side.
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    target = f"tcp://127.0.0.1:{port}"
    vantage = controlled_by(target)
    monitor = monitor_for(kamailio, tmp_path / "tw.db", vantage=vantage)
    await monitor.start()
    assert monitor.store is not None and monitor.pipeline.vantage is not None
    up = f'trunkwatch_control_target_up{{agent="vantage-e2e",target="{target}"}}'
    try:
        await wait_for(
            lambda: (
                len(monitor.health) == 2
                and all(h.state is TrunkState.UP for h in monitor.health.values())
                and monitor.pipeline.vantage.controls[target] is not None  # type: ignore[union-attr]
            ),
            5,
            "trunks and control target up",
        )
        listener.close()
        await listener.wait_closed()
        kamailio.stop()
        await wait_for(lambda: monitor.pipeline.vantage.suspect, 5, "suspect")  # type: ignore[union-attr]
        await asyncio.sleep(10 * INTERVAL)  # well past down_after: still no outage
        assert monitor.pipeline.vantage.suspect
        assert all(h.open_outage is None for h in monitor.health.values())
        text = await scrape(monitor)
        assert f"{up} 0.0" in text
        assert 'trunkwatch_agent_suspect{agent="vantage-e2e"} 1.0' in text
        await monitor.writer.flush()
        assert await outbox_rows(monitor.store) == []
    finally:
        listener.close()
        kamailio.start()  # a no-op when it runs
        await monitor.stop()
