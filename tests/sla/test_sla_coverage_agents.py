"""Coverage is the union of the agents' watch (issue 12): with several agents sharing one
store, time is unknown only when no agent was watching. On SQLite and PostgreSQL 15."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from peers import Kamailio

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.events import TrunkState, TrunkStateChanged
from monitor.sla.contracts import ContractsSettings
from monitor.sla.intervals import Interval, measure
from monitor.sla.service import SlaContext
from monitor.store import Store

T0 = datetime(2026, 10, 3, 0, 0, tzinfo=UTC)
HOUR = T0 + timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'trunkwatch.db'}"


@pytest.fixture
async def agents(db_url: str) -> AsyncIterator[tuple[Store, Store]]:
    a = await Store.open(db_url, agent="agent-a", site="mx")
    b = await Store.open(db_url, agent="agent-b", site="gdl")
    for store in (a, b):  # both watch from T0 and are alive at the end
        await store.append([TrunkStateChanged("t1", T0, TrunkState.UNKNOWN, TrunkState.UP, "ok")])
        await store.heartbeat(HOUR)
    yield a, b
    await a.close()
    await b.close()


async def test_one_agent_away_loses_no_coverage(agents: tuple[Store, Store]) -> None:
    a, _ = agents
    await a.record_gap(at(10), at(30), "monitor_not_running")
    unknown = await SlaContext(a, ContractsSettings()).unknown_time(T0, HOUR, HOUR)
    assert unknown == ()


async def test_only_the_time_every_agent_was_away_is_unknown(agents: tuple[Store, Store]) -> None:
    a, b = agents
    await a.record_gap(at(10), at(30), "monitor_not_running")
    await b.record_gap(at(20), at(40), "vantage_suspect")
    for store in (a, b):  # the same answer whichever agent asks
        unknown = await SlaContext(store, ContractsSettings()).unknown_time(T0, HOUR, HOUR)
        assert unknown == (Interval(at(20), at(30)),)
        assert measure(unknown) == timedelta(minutes=10)


async def test_all_agents_stopped_is_unknown_from_the_last_heartbeat(
    agents: tuple[Store, Store],
) -> None:
    a, b = agents
    await a.heartbeat(at(50))  # both stopped beating: a at 50 min, b at the hour
    now = HOUR + timedelta(minutes=30)
    unknown = await SlaContext(a, ContractsSettings()).unknown_time(T0, now, now)
    assert unknown == (Interval(HOUR, now),)
    assert [w["agent"] for w in await b.agents()] == ["agent-a", "agent-b"]


async def test_all_agents_stopped_is_exactly_the_unknown_time(
    pg_url: str, kamailio: Kamailio
) -> None:
    """Two real agents on PostgreSQL stop, and start again 3 s later: only the time both
    were away is unknown, to the recorded instants."""

    def monitor(agent: str) -> Monitor:
        text = f"""
agent: {agent}
store: {{url: "{pg_url}"}}
http: {{listen: 127.0.0.1, port: 0}}
cluster: {{enabled: true}}
defaults: {{interval: 0.2, timeout: 0.15}}
trunks: [{{name: kam, carrier: kam, uri: "{kamailio.uri("udp")}"}}]
"""
        return Monitor(config_from_text(text))

    first = [monitor("agent-a"), monitor("agent-b")]
    for m in first:
        await m.start()
    await asyncio.sleep(0.5)  # both have journaled their trunk's state: both watch
    began = datetime.now(UTC)
    await first[0].stop()
    await asyncio.sleep(1.0)  # b alone watches: no coverage lost
    await first[1].stop()
    away = time.monotonic()
    await asyncio.sleep(3.0)
    again = [monitor("agent-a"), monitor("agent-b")]
    for m in again:
        await m.start()
    away_s = time.monotonic() - away
    try:
        store = again[0].store
        assert store is not None
        gaps = {g.agent: g for g in await store.gaps()}
        ended = datetime.now(UTC)
        unknown = await SlaContext(store, ContractsSettings()).unknown_time(began, ended, ended)
    finally:
        for m in again:
            await m.stop()
    both_away = Interval(gaps["agent-b"].start, gaps["agent-a"].end)
    assert unknown == (both_away,)
    assert abs(measure(unknown).total_seconds() - away_s) < 0.5
