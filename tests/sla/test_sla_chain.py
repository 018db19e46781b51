"""The journal's hash chain: Store.append links every event, the 0002 backfill agrees with
journal_chain, and any removed or edited event is named."""

from __future__ import annotations

import importlib.util
import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, select, text

from monitor.events import MonitorGap, TrunkState, TrunkStateChanged
from monitor.journal_chain import GENESIS, ChainLink, event_hash, verify_chain
from monitor.store import Store
from monitor.store.migrations import SCRIPT_LOCATION, alembic_config
from monitor.store.schema import journal

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)


def _changes(n: int, trunk: str = "t1") -> list[TrunkStateChanged]:
    states = [TrunkState.UP, TrunkState.DOWN]
    return [
        TrunkStateChanged(trunk, T0 + timedelta(seconds=i), states[i % 2], states[(i + 1) % 2], "x")
        for i in range(n)
    ]


def _links(path: Path, agent: str) -> list[ChainLink]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT seq, ts, agent, trunk, kind, payload, prev_hash, hash FROM journal "
            "WHERE agent = ? ORDER BY seq",
            (agent,),
        ).fetchall()
    return [ChainLink(r[0], datetime.fromisoformat(r[1]).replace(tzinfo=UTC), *r[2:]) for r in rows]


async def test_append_chains_every_event_across_batches_and_agents(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    a = await Store.open(f"sqlite:///{path}", agent="a")
    b = await Store.open(f"sqlite:///{path}", agent="b")
    try:
        await a.append(_changes(3))
        await b.append(_changes(2, "t2"))
        await a.append([MonitorGap("a", T0, T0 + timedelta(minutes=1), "monitor_not_running")])
    finally:
        await a.close()
        await b.close()
    links_a, links_b = _links(path, "a"), _links(path, "b")
    assert len(links_a) == 4 and len(links_b) == 2
    assert links_a[0].prev_hash == GENESIS and links_b[0].prev_hash == GENESIS
    for chain in (links_a, links_b):
        for before, after in itertools.pairwise(chain):
            assert after.prev_hash == before.hash
        assert verify_chain(chain) == []


async def test_deleted_and_edited_events_are_named(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = await Store.open(f"sqlite:///{path}", agent="a")
    await store.append(_changes(5))
    await store.close()
    links = _links(path, "a")
    removed = [link for link in links if link.seq != links[2].seq]
    breaks = verify_chain(removed)
    assert [b.seq for b in breaks] == [links[3].seq]
    assert "removed" in str(breaks[0])
    edited = list(links)
    edited[1] = ChainLink(
        links[1].seq, links[1].ts, "a", "t1", "trunk_state", links[1].payload.replace("x", "y"),
        links[1].prev_hash, links[1].hash,
    )  # fmt: skip
    breaks = verify_chain(edited)
    assert [(b.seq, "edited" in b.problem) for b in breaks] == [(links[1].seq, True)]


def test_migration_backfills_the_chain_with_the_same_hash(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    config = alembic_config()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        for i, (agent, trunk) in enumerate([("a", "t1"), ("b", None), ("a", "t2")]):
            conn.execute(
                text(
                    "INSERT INTO journal (ts, agent, trunk, kind, payload) "
                    "VALUES (:ts, :agent, :trunk, 'k', :payload)"
                ),
                {
                    "ts": (T0 + timedelta(seconds=i, microseconds=7)).replace(tzinfo=None),
                    "agent": agent,
                    "trunk": trunk,
                    "payload": f'{{"n":{i},"s":"ñ"}}',
                },
            )
        command.upgrade(config, "0002")
        rows = conn.execute(select(journal).order_by(journal.c.seq)).all()
    engine.dispose()
    heads: dict[str, str] = {}
    for row in rows:
        prev = heads.get(row.agent, GENESIS)
        assert row.prev_hash == prev
        assert row.hash == event_hash(prev, row.ts, row.agent, row.trunk, row.kind, row.payload)
        heads[row.agent] = row.hash
    assert len(heads) == 2


def test_migration_hash_is_journal_chain_hash() -> None:
    spec = importlib.util.spec_from_file_location(
        "m0002", SCRIPT_LOCATION / "versions" / "0002_sla.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for trunk in ("t", None):
        ts = T0 + timedelta(microseconds=123)
        assert module._hash("p", ts, "a", trunk, "k", "{}") == event_hash(
            "p", ts, "a", trunk, "k", "{}"
        )
