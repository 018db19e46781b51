"""The SLA of a month from a three-agent store equals the single-agent one fed the same
facts (issue 12), on PostgreSQL 15: the quorum's outages are counted, the agents' own
views are not, and coverage is the agents' union."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

from sla_world import NOW, SERVICE, TRUNK, mx, outage, settings

from monitor.events import TrunkState, TrunkStateChanged
from monitor.quorum import QuorumLoop
from monitor.sla.reports import make_report, report_dict
from monitor.sla.service import SlaContext
from monitor.store import Store
from monitor.tickets.config import TicketsSettings
from monitor.tickets.routing import TicketRouting
from probes.clock import FakeClock
from probes.instants import ns_from_utc

START = mx(10, 1, 0)
AGENTS = ("agent-1", "agent-2", "agent-3")
# Each agent's view of two outages of the trunk (first failure, restoration): they differ
# by a few seconds from vantage to vantage, as real agents' do.
VIEWS = {
    "agent-1": [
        (mx(10, 5, 10, 0, 0), mx(10, 5, 11, 0, 4)),
        (mx(10, 20, 3, 0, 2), mx(10, 20, 3, 30)),
    ],
    "agent-2": [
        (mx(10, 5, 10, 0, 3), mx(10, 5, 11, 0, 1)),
        (mx(10, 20, 3, 0, 5), mx(10, 20, 3, 31)),
    ],
    "agent-3": [(mx(10, 5, 10, 0, 9), mx(10, 5, 11, 0, 0))],  # missed the second one
}
# What a majority (2 of 3) agreed: from the 2nd earliest first failure to the 2nd
# restoration that broke it.
AGREED = [(mx(10, 5, 10, 0, 3), mx(10, 5, 11, 0, 1)), (mx(10, 20, 3, 0, 5), mx(10, 20, 3, 30))]


async def feed_agents(url: str) -> None:
    """Each agent journals its own view; the leader's loop turns them into the verdict."""
    stores = [await Store.open(url, agent=a, views=True) for a in AGENTS]
    try:
        for store in stores:
            up = TrunkStateChanged(TRUNK, START, TrunkState.UNKNOWN, TrunkState.UP, "ok")
            await store.append([up])
        clock = FakeClock(wall=ns_from_utc(START))
        routing = TicketRouting.build(TicketsSettings(), [(TRUNK, "CarrierX")])
        loop = QuorumLoop(stores[0], routing, {TRUNK: None}, lambda: True, clock=clock)
        edges = sorted({at for spans in VIEWS.values() for span in spans for at in span})
        for instant in edges:
            for agent, store in zip(AGENTS, stores, strict=True):
                for n, (first, restored) in enumerate(VIEWS[agent]):
                    opened, closed = outage(f"{agent}-{n}", first, restored)
                    if first == instant:
                        await store.append([opened])
                    if restored == instant:
                        await store.append([closed])
            for store in stores:
                await store.heartbeat(instant)
            clock.wall = ns_from_utc(instant + timedelta(seconds=1))
            await loop.step()
        for store in stores:
            await store.heartbeat(NOW)
    finally:
        for store in stores:
            await store.close()


async def feed_single(url: str) -> None:
    store = await Store.open(url, agent="single")
    try:
        await store.append(
            [TrunkStateChanged(TRUNK, START, TrunkState.UNKNOWN, TrunkState.UP, "ok")]
        )
        for n, (first, restored) in enumerate(AGREED):
            opened, closed = outage(f"single-{n}", first, restored)
            await store.append([opened])
            await store.append([closed])
        await store.heartbeat(NOW)
    finally:
        await store.close()


async def test_three_agents_and_one_agent_give_the_same_month(
    tmp_path: Path, pg_url: str, postgres: object
) -> None:
    contracts = settings(tmp_path, clock="detection")
    await feed_agents(pg_url)
    single_url = f"sqlite:///{tmp_path / 'single.db'}"
    await feed_single(single_url)
    results = []
    reports = []
    for url in (pg_url, single_url):
        store = await Store.open(url, agent="reader")
        try:
            ctx = SlaContext(store, contracts)
            period = ctx.month(SERVICE, "2026-10")
            results.append((await ctx.sla(SERVICE, period, NOW)).result)
            reports.append(report_dict(await make_report(ctx, SERVICE, "2026-10", NOW, lang="en")))
            counted = [(o.first_failure_at, o.restored_at) for o in await store.outages()]
        finally:
            await store.close()
        assert counted == [(a.astimezone(UTC), b.astimezone(UTC)) for a, b in AGREED]
    many, one = results
    assert many.tnodisp == one.tnodisp == sum((b - a for a, b in AGREED), timedelta())
    assert many.availability_exact == one.availability_exact
    assert many.coverage_exact == one.coverage_exact
    # The report shows the same figures, and with three agents what each one saw.
    three, single = reports
    assert three["availability"] == single["availability"]
    assert single["agent_views"] == []
    seen = sorted((v["agent"], v["first_failure_at"]) for v in three["agent_views"])
    expected = sorted(
        (agent, first.astimezone(UTC).isoformat())
        for agent, spans in VIEWS.items()
        for first, _ in spans
    )
    assert seen == expected
