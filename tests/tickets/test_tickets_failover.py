"""SIGKILL the leader during an outage (issue 12): three `trunkwatch run` processes share one
PostgreSQL 15; another agent takes the lead within the lease, the outage closes once, one
ticket is opened and resolved, and no coverage is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peers import Kamailio
from test_tickets_quorum_e2e import AGENTS, agent_config
from tickets_support import WEBHOOK_SECRET, WebhookReceiver

from monitor.leadership import LEASE_S, OUTBOX_LEASE
from monitor.quorum import EVALUATE_S
from monitor.sla.contracts import ContractsSettings
from monitor.sla.service import SlaContext
from monitor.store import Store
from monitor.store import lease as leases

TRUNKWATCH = str(Path(sys.executable).parent / "trunkwatch")
INTERVAL = 0.2


async def poll(what: str, seconds: float, check: object) -> float:
    """Await `check()` (async) until truthy; the monotonic instant it became so."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return time.monotonic()
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_killing_the_leader_moves_the_lead_and_keeps_one_ticket(
    kamailio: Kamailio, pg_url: str, tmp_path: Path
) -> None:
    receiver = WebhookReceiver()
    hook = await receiver.start()
    env = {**os.environ, "HOOK_SECRET": WEBHOOK_SECRET}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    observer = await Store.open(pg_url, agent="observer")
    try:
        for agent in AGENTS:
            cfg = tmp_path / f"{agent}.yaml"
            cfg.write_text(agent_config(agent, pg_url, kamailio.uri("udp"), hook))
            log = (tmp_path / f"{agent}.log").open("wb")
            procs[agent] = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
                [TRUNKWATCH, "--log-format", "json", "run", "-c", str(cfg)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

        async def all_beating() -> bool:
            return set(AGENTS) <= set(await observer.heartbeats())

        await poll("three agents", 30, all_beating)

        async def all_watching() -> bool:  # each has journaled its trunk's first state
            return all([await observer.first_event_at(agent) is not None for agent in AGENTS])

        await poll("three agents watching", 30, all_watching)
        started = datetime.now(UTC)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(kamailio.stop)

        async def ticket_opened() -> bool:
            return bool(receiver.opens())

        await poll("the ticket", 20, ticket_opened)
        held = await leases.current(observer.engine, OUTBOX_LEASE)
        assert held is not None and held.holder in AGENTS
        procs[held.holder].send_signal(signal.SIGKILL)
        procs[held.holder].wait(10)
        killed = time.monotonic()

        async def taken_over() -> bool:
            now = await leases.current(observer.engine, OUTBOX_LEASE)
            return now is not None and now.holder != held.holder and now.token > held.token

        took = await poll("a new leader", LEASE_S + 10, taken_over)
        assert took - killed <= LEASE_S + 3 * INTERVAL + 2.0  # lease + renewal step + slack
        await asyncio.to_thread(kamailio.start)

        async def resolved() -> bool:
            return any(d.type == "ticket.resolve" for d in receiver.deliveries)

        await poll("the resolve", 30, resolved)
        await asyncio.sleep(2 * EVALUATE_S + 1)  # nothing else follows
        (outage,) = await observer.outages()
        assert outage.restored_at is not None
        ended = datetime.now(UTC)
        unknown = await SlaContext(observer, ContractsSettings()).unknown_time(
            started, ended, ended
        )
        assert unknown == ()  # two agents watched throughout
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await observer.close()
        await receiver.stop()
        await asyncio.to_thread(kamailio.start)
    # The leader may die between the sink's answer and its own commit: the next leader then
    # sends the same open again, with the same webhook-id (at least once, by contract), and
    # the sink's deduplication keeps it one ticket (docs/tickets-webhook.md).
    assert len({d.msg_id for d in receiver.opens()}) == 1
    assert len(receiver.tickets) == 1
    assert [d.type for d in receiver.deliveries].count("ticket.resolve") == 1
    assert timedelta(0) < outage.restored_at - outage.first_failure_at
