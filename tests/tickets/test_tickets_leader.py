"""Leases with fencing tokens (issue 12), on SQLite and on a real PostgreSQL 15: one agent
leads the ticket outbox, another takes over once the lease expires, and a deposed leader
can claim nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tickets_support import FAST_OUTBOX, outage, settings, webhook_settings

from monitor.events import OutageClosed, OutageOpened
from monitor.leadership import Leadership
from monitor.quorum import QUORUM_AGENT, QuorumLoop, outage_id
from monitor.store import Store
from monitor.store import lease as leases
from monitor.tickets.ledger import TicketStore, append_with_outbox, outbox_rows
from monitor.tickets.routing import TicketRouting
from probes.clock import FakeClock, utc_now
from probes.instants import ns_from_utc

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)
TTL = timedelta(seconds=10)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'trunkwatch.db'}"


@pytest.fixture
async def two(db_url: str) -> AsyncIterator[tuple[Store, Store]]:
    a = await Store.open(db_url, agent="agent-a")
    b = await Store.open(db_url, agent="agent-b")
    yield a, b
    await a.close()
    await b.close()


async def take(store: Store, second: float) -> leases.Lease | None:
    at = T0 + timedelta(seconds=second)
    return await leases.acquire(store.engine, "outbox", store.agent, at, TTL)


async def test_one_holder_at_a_time_and_a_new_token_on_each_takeover(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    first = await leases.acquire(a.engine, "outbox", "agent-a", T0, TTL)
    assert first is not None and first.token == 1
    assert (
        await leases.acquire(b.engine, "outbox", "agent-b", T0 + timedelta(seconds=9), TTL) is None
    )
    renewed = await leases.renew(a.engine, first, T0 + timedelta(seconds=5), TTL)
    assert renewed is not None and renewed.token == 1
    assert renewed.expires_at == T0 + timedelta(seconds=15)
    # Still valid at 14 s (renewed); expired from 15 s: b takes it with the next token.
    assert (
        await leases.acquire(b.engine, "outbox", "agent-b", T0 + timedelta(seconds=14), TTL) is None
    )
    taken = await take(b, 15)
    assert taken is not None and taken.token == 2 and taken.holder == "agent-b"
    # a, paused through its expiry, cannot renew: its token is no longer the current one.
    assert await leases.renew(a.engine, renewed, T0 + timedelta(seconds=16), TTL) is None
    assert await leases.current(a.engine, "outbox") == taken


async def test_a_restarted_agent_takes_its_own_lease_at_once_with_a_new_token(
    two: tuple[Store, Store],
) -> None:
    a, _ = two
    old = await leases.acquire(a.engine, "outbox", "agent-a", T0, TTL)
    new = await leases.acquire(a.engine, "outbox", "agent-a", T0 + timedelta(seconds=1), TTL)
    assert old is not None and new is not None and new.token == old.token + 1
    assert await leases.renew(a.engine, old, T0 + timedelta(seconds=2), TTL) is None


async def test_release_lets_the_next_agent_lead_without_waiting(two: tuple[Store, Store]) -> None:
    a, b = two
    held = await leases.acquire(a.engine, "outbox", "agent-a", T0, TTL)
    assert held is not None
    await leases.release(a.engine, held, T0 + timedelta(seconds=1))
    taken = await leases.acquire(b.engine, "outbox", "agent-b", T0 + timedelta(seconds=1), TTL)
    assert taken is not None and taken.token == 2


async def test_leadership_moves_when_the_leader_stops_renewing_and_fences_the_old_one(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    clock_a, clock_b = FakeClock(wall=ns_from_utc(T0)), FakeClock(wall=ns_from_utc(T0))
    lead_a = Leadership(a.engine, "agent-a", clock=clock_a)
    acquired: list[str] = []
    lead_b = Leadership(
        b.engine, "agent-b", clock=clock_b, on_acquired=lambda: acquired.append("b")
    )
    await lead_a.step()
    await lead_b.step()
    assert lead_a.is_leader and not lead_b.is_leader and acquired == []
    # a stops renewing (killed, paused); 10 s later b leads.
    for clock in (clock_a, clock_b):
        clock.advance(10)
    await lead_b.step()
    assert lead_b.is_leader and acquired == ["b"]
    assert not lead_a.is_leader  # its own clock says its lease ran out
    # The fence: a request in the outbox can be claimed by b, never by a.
    routing = TicketRouting.build(webhook_settings("http://127.0.0.1:9/hook"), [("mx-1", "c")])
    await append_with_outbox(a, [OutageOpened(outage("mx-1"))], routing, T0)
    (row,) = await TicketStore(a.engine).live_rows()
    assert not await TicketStore(a.engine, fence=lead_a.fence).claim(row, T0)
    assert await TicketStore(b.engine, fence=lead_b.fence).claim(row, T0)
    # a wakes up believing it still leads: its renewal fails and it steps down.
    await lead_a.step()
    assert not lead_a.is_leader and lead_a.lease is None


async def test_a_deposed_leaders_verdict_is_not_written(two: tuple[Store, Store]) -> None:
    a, b = two
    clock = FakeClock(wall=ns_from_utc(T0))
    lead_a = Leadership(a.engine, "agent-a", clock=clock)
    lead_b = Leadership(b.engine, "agent-b", clock=clock)
    await lead_a.step()
    clock.advance(11)  # a stops renewing (paused); its lease runs out and b takes it
    await lead_b.step()
    assert lead_b.is_leader and lead_a.lease is not None  # a has not noticed yet
    # Both agents see the trunk down: a majority of the two agents alive.
    now = utc_now(clock)
    for store in (a, b):
        await store.heartbeat(now)
    views = [Store(a.engine, agent, views=True) for agent in ("agent-a", "agent-b")]
    for n, store in enumerate(views):
        o = outage("mx-1", at=now - timedelta(seconds=5 - n))
        await store.append([OutageOpened(o)])
    routing = TicketRouting.build(webhook_settings("http://127.0.0.1:9/hook"), [("mx-1", "c")])
    stale = QuorumLoop(
        a, routing, {"mx-1": None}, lambda: True, lease=lambda: lead_a.lease, clock=clock
    )
    assert await stale.step() == []  # a still believes it leads: the lease says otherwise
    assert await a.outages() == []
    leader = QuorumLoop(
        b,
        routing,
        {"mx-1": None},
        lambda: lead_b.is_leader,
        lease=lambda: lead_b.lease,
        clock=clock,
    )
    (opened,) = await leader.step()
    assert isinstance(opened, OutageOpened)
    assert [o.id for o in await a.outages()] == [opened.outage.id]


async def test_a_quorum_over_before_any_leader_came_is_journaled_once_with_its_tickets(
    pg_url: str,
) -> None:
    # Two agents see mx-1 down 20:00:00–20:01:00 and 20:00:04–20:00:50 while no agent leads
    # (the lease lapsed); at 20:02 a leader starts: one outage, 4 s → 50 s, and its open
    # and close requests at each sink, once, whichever leader looks.
    clock = FakeClock(wall=ns_from_utc(T0 + timedelta(minutes=2)))
    now = utc_now(clock)
    a = await Store.open(pg_url, agent="agent-a")
    b = await Store.open(pg_url, agent="agent-b")
    try:
        for store, start, end in ((a, 0, 60), (b, 4, 50)):
            await store.heartbeat(now)
            view = Store(a.engine, store.agent, views=True)
            o = outage("mx-1", at=T0 + timedelta(seconds=start))
            restored = T0 + timedelta(seconds=end)
            await view.append(
                [OutageOpened(o), OutageClosed(o.closed(restored_at=restored, closed_at=restored))]
            )
        sinks = [
            {"name": n, "type": "webhook", "url": "http://127.0.0.1:9", "secret_env": "HOOK_SECRET"}
            for n in ("hook-1", "hook-2")
        ]
        routing = TicketRouting.build(
            settings({"outbox": FAST_OUTBOX, "sinks": sinks}), [("mx-1", "c")]
        )
        loops = [
            QuorumLoop(store, routing, {"mx-1": None}, lambda: True, clock=clock)
            for store in (a, b)
        ]
        opened, closed = await loops[0].step()
        assert isinstance(opened, OutageOpened) and isinstance(closed, OutageClosed)
        (verdict,) = await Store(a.engine, QUORUM_AGENT).outages()
        assert verdict.id == outage_id("mx-1", T0 + timedelta(seconds=4))
        assert (verdict.first_failure_at, verdict.confirmed_at, verdict.restored_at) == (
            T0 + timedelta(seconds=4),
            T0 + timedelta(seconds=6),  # b's view confirmed then: the quorum was reached
            T0 + timedelta(seconds=50),
        )
        rows = sorted((r.sink, r.action.value) for r in await outbox_rows(a))
        assert rows == [
            ("hook-1", "open"), ("hook-1", "resolve"), ("hook-2", "open"), ("hook-2", "resolve")
        ]  # fmt: skip
        # The same leader later, and the next leader: judged already, nothing more.
        clock.advance(1)
        assert await loops[0].step() == []
        assert await loops[1].step() == []
        assert len(await outbox_rows(a)) == 4
        assert len(await Store(a.engine, QUORUM_AGENT).outages()) == 1
    finally:
        await a.close()
        await b.close()
