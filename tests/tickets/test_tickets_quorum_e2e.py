"""Three agents, one PostgreSQL 15, one Kamailio (issue 12): Kamailio stopped → exactly one
contract outage and one ticket; one agent's own path blocked → a vantage-local view only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from peers import Kamailio
from test_monitor_e2e import wait_for
from tickets_support import WEBHOOK_SECRET, WebhookReceiver

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState
from monitor.quorum import EVALUATE_S, QUORUM_AGENT
from monitor.store import Store

INTERVAL = 0.2
AGENTS = ("agent-1", "agent-2", "agent-3")
# One probe interval to see the failure, down_after intervals to confirm it in each agent,
# one evaluation, and scheduling slack on a loaded 2-core machine.
SLACK = timedelta(seconds=INTERVAL * 4 + EVALUATE_S + 1.0)


def agent_config(agent: str, db_url: str, uri: str, hook: str) -> str:
    return f"""
agent: {agent}
site: site-{agent}
store: {{url: "{db_url}"}}
http: {{listen: 127.0.0.1, port: 0}}
cluster: {{enabled: true}}
defaults: {{interval: {INTERVAL}, timeout: 0.15, down_after: 3, up_after: 2}}
tickets:
  sinks: [{{name: hook, type: webhook, url: "{hook}", secret_env: HOOK_SECRET}}]
trunks:
  - {{name: kam-udp, carrier: kam, uri: "{uri}"}}
"""


class UdpRelay(asyncio.DatagramProtocol):
    """One agent's path to the trunk: forwards datagrams both ways until `blocked`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.blocked = False
        self.transport: asyncio.DatagramTransport | None = None
        self.upstream: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self.opening: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.blocked:
            return
        up = self.upstream.get(addr)
        if up is None:
            task = asyncio.get_running_loop().create_task(self._open(addr, data))
            self.opening.add(task)
            task.add_done_callback(self.opening.discard)
        else:
            up.sendto(data)

    async def _open(self, client: tuple[str, int], first: bytes) -> None:
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _addr: tuple[str, int]) -> None:
                if not relay.blocked and relay.transport is not None:
                    relay.transport.sendto(data, client)

        loop = asyncio.get_running_loop()
        up, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
        self.upstream[client] = up
        up.sendto(first)


@contextlib.asynccontextmanager
async def relay_to(target: tuple[str, int]) -> AsyncIterator[tuple[UdpRelay, int]]:
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(
        lambda: UdpRelay(target), local_addr=("127.0.0.1", 0)
    )
    try:
        yield relay, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()
        for up in relay.upstream.values():
            up.close()


@contextlib.asynccontextmanager
async def agents(configs: list[str]) -> AsyncIterator[list[Monitor]]:
    monitors = [
        Monitor(config_from_text(text, env={"HOOK_SECRET": WEBHOOK_SECRET})) for text in configs
    ]
    try:
        for m in monitors:
            await m.start()
        await wait_for(
            lambda: all(m.health["kam-udp"].state is TrunkState.UP for m in monitors), 10, "up"
        )
        yield monitors
    finally:
        for m in monitors:
            await m.stop()


async def test_three_agents_one_outage_one_ticket(kamailio: Kamailio, pg_url: str) -> None:
    receiver = WebhookReceiver()
    hook = await receiver.start()
    uri = kamailio.uri("udp")
    try:
        async with agents([agent_config(a, pg_url, uri, hook) for a in AGENTS]) as monitors:
            leading = [m.tickets.leadership.is_leader for m in monitors if m.tickets.leadership]
            assert leading.count(True) == 1
            stopped_at = datetime.now(UTC)
            await asyncio.to_thread(kamailio.stop)
            await wait_for(lambda: bool(receiver.opens()), 15, "the ticket")
            await asyncio.sleep(10 * INTERVAL)  # every agent has long confirmed it by now
            assert len(receiver.opens()) == 1
            restarted_at = datetime.now(UTC)
            await asyncio.to_thread(kamailio.start)
            await wait_for(
                lambda: any(d.type == "ticket.resolve" for d in receiver.deliveries), 15, "resolve"
            )
            store = monitors[0].store
            assert store is not None
            (outage,) = await store.outages()
            views = await store.agent_views(since=stopped_at - timedelta(hours=1))
            assert sorted(agent for agent, _ in views) == list(AGENTS)
            # The contract's outage is the quorum's, journaled on its own chain.
            assert await Store(store.engine, QUORUM_AGENT).first_event_at() is not None
    finally:
        await receiver.stop()
    assert len(receiver.opens()) == 1
    assert outage.restored_at is not None
    assert abs(outage.first_failure_at - stopped_at) <= SLACK
    assert abs(outage.restored_at - restarted_at) <= SLACK + timedelta(seconds=2)


async def test_one_agents_blocked_path_is_vantage_local(kamailio: Kamailio, pg_url: str) -> None:
    receiver = WebhookReceiver()
    hook = await receiver.start()
    uri = kamailio.uri("udp")
    try:
        async with relay_to(("127.0.0.1", kamailio.udp_port)) as (relay, port):
            configs = [agent_config(a, pg_url, uri, hook) for a in AGENTS[:2]]
            configs.append(agent_config(AGENTS[2], pg_url, f"sip:127.0.0.1:{port}", hook))
            async with agents(configs) as monitors:
                relay.blocked = True
                await wait_for(
                    lambda: monitors[2].health["kam-udp"].open_outage is not None, 10, "its view"
                )
                await asyncio.sleep(10 * INTERVAL + EVALUATE_S * 2)
                store = monitors[0].store
                assert store is not None
                assert await store.outages() == []  # no contract outage
                views = await store.agent_views(since=datetime.now(UTC) - timedelta(hours=1))
                assert [agent for agent, _ in views] == [AGENTS[2]]
    finally:
        await receiver.stop()
    assert receiver.opens() == []
