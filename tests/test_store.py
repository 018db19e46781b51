"""The durable store on real SQLite files: schema, journal round trip, restart mid-outage."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, StatementError

from monitor.events import (
    Event,
    MonitorGap,
    Outage,
    OutageClosed,
    OutageKind,
    OutageOpened,
    TrunkState,
    TrunkStateChanged,
)
from monitor.health import HealthPolicy, TrunkHealth, reduce
from monitor.journal_chain import verify_chain
from monitor.store import GAP_REASON_NOT_RUNNING, JournalCorruptError, Store, resume
from monitor.store import engine as store_engine
from monitor.store.engine import async_url
from monitor.store.migrations import HEAD_REVISION
from monitor.store.schema import heartbeats, journal, metadata
from monitor.store.store import APPEND_SLICE
from probes.instants import ns_from_utc
from probes.result import Outcome, ProbeResult

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)
MEXICO = ZoneInfo("America/Mexico_City")
AGENT = "agent-1"
POLICY = HealthPolicy(down_after=3, up_after=2)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both backends: SQLite (one agent) and PostgreSQL (shared)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'trunkwatch.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url, agent=AGENT)
    yield opened
    await opened.close()


def probe(trunk: str, at: datetime, outcome: Outcome) -> ProbeResult:
    return ProbeResult(trunk=trunk, probe="options", outcome=outcome, sent_wall_ns=ns_from_utc(at))


def feed(health: TrunkHealth, start: datetime, codes: str) -> list[Event]:
    """One result per code (o = ok, f = timeout), a second apart, arriving 100 ms later."""
    events: list[Event] = []
    for i, code in enumerate(codes):
        at = start + timedelta(seconds=i)
        outcome = Outcome.OK if code == "o" else Outcome.TIMEOUT
        events.extend(
            reduce(
                health, probe(health.trunk, at, outcome), at + timedelta(milliseconds=100), POLICY
            )
        )
    return events


def outage(id_: str, trunk: str, first: datetime, restored: datetime | None = None) -> Outage:
    o = Outage(
        id=id_,
        trunk=trunk,
        kind=OutageKind.OUTAGE,
        first_failure_at=first,
        confirmed_at=first + timedelta(seconds=3),
        first_outcome="timeout",
        detail="no answer",
    )
    if restored is not None:
        o = o.closed(restored_at=restored, closed_at=restored + timedelta(seconds=1))
    return o


def open_(o: Outage) -> Outage:
    """The outage as it was when opened."""
    return replace(o, restored_at=None, closed_at=None)


# --- schema -------------------------------------------------------------------------------


def _schema(conn: Connection) -> dict[str, Any]:
    insp = inspect(conn)
    return {
        "tables": set(insp.get_table_names()),
        "columns": {t: {c["name"] for c in insp.get_columns(t)} for t in metadata.tables},
        "diff": compare_metadata(MigrationContext.configure(conn), metadata),
        "version": conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one(),
        "pragmas": {
            p: conn.exec_driver_sql(f"PRAGMA {p}").scalar_one()
            for p in ("journal_mode", "synchronous", "foreign_keys")
        }
        if conn.dialect.name == "sqlite"
        else None,
    }


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from monitor.store.migrations import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def test_migrations_create_the_schema(store: Store) -> None:
    async with store.engine.connect() as conn:
        schema = await conn.run_sync(_schema)
    assert schema["tables"] >= {"journal", "outages", "monitor_gaps", "heartbeats"}
    assert schema["columns"]["journal"] == {
        "seq", "ts", "agent", "trunk", "kind", "payload", "prev_hash", "hash",
    }  # fmt: skip
    assert schema["columns"]["outages"] == {
        "id", "trunk", "kind", "first_failure_at", "confirmed_at", "restored_at",
        "closed_at", "first_outcome", "detail", "agent", "end_cause",
    }  # fmt: skip
    assert schema["columns"]["monitor_gaps"] == {"id", "agent", "start_at", "end_at", "reason"}
    assert schema["columns"]["heartbeats"] == {"agent", "last_seen_at", "site"}
    assert schema["columns"]["leases"] == {"name", "holder", "token", "expires_at"}
    assert schema["diff"] == []  # the migration builds exactly what schema.py declares
    assert schema["version"] == _head_revision()
    if store.engine.dialect.name == "sqlite":  # WAL, synchronous=NORMAL (1), foreign keys on
        assert schema["pragmas"] == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1}


async def test_reopening_keeps_data_and_does_not_remigrate(db_url: str) -> None:
    first = await Store.open(db_url, agent=AGENT)
    await first.heartbeat(T0)
    await first.close()
    second = await Store.open(db_url, agent=AGENT)
    try:
        assert await second.last_heartbeat() == T0
    finally:
        await second.close()


def test_the_head_revision_constant_is_the_scripts_head() -> None:
    assert HEAD_REVISION == _head_revision()  # a new migration must move it too


def test_a_restart_on_a_current_schema_does_not_load_alembic(db_url: str) -> None:
    """Alembic is ~10 MB of the daemon for good: only a schema behind HEAD loads it."""
    script = (
        "import asyncio, sys\n"
        "from monitor.store import Store\n"
        "async def main():\n"
        f"    store = await Store.open({db_url!r}, agent={AGENT!r})\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def loaded() -> str:
        run = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        return run.stdout.strip()

    first = loaded()
    if db_url.startswith("sqlite"):  # a new file; the shared PostgreSQL may be at head already
        assert first == "['alembic', 'mako']"
    assert loaded() == "[]"


async def test_memory_database_works_across_calls() -> None:
    store = await Store.open("sqlite:///:memory:", agent=AGENT)
    try:
        await store.heartbeat(T0)
        assert await store.last_heartbeat() == T0
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "not supported"),
        ("not a url", "not valid"),
        ("sqlite:////nonexistent-dir-for-trunkwatch/x.db", "does not exist"),
    ],
)
async def test_bad_urls_get_clear_errors(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await Store.open(url, agent=AGENT)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/tw.db", "sqlite+aiosqlite:///var/tw.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("postgresql://tw:s3cret@db.example/tw", "postgresql+asyncpg://tw:s3cret@db.example/tw"),
        ("postgres://tw@db.example/tw", "postgresql+asyncpg://tw@db.example/tw"),
        ("postgresql+asyncpg://tw@db/tw", "postgresql+asyncpg://tw@db/tw"),
    ],
)
def test_plain_urls_map_to_async_drivers(
    url: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mapping only: whether asyncpg is installed is tests/test_config_secrets.py's concern.
    monkeypatch.setattr(store_engine, "OPTIONAL_DRIVERS", {})
    if url.startswith("sqlite:///var"):
        (tmp_path / "var").mkdir()
        url = url.replace("var", str(tmp_path / "var"))
        expected = expected.replace("var", str(tmp_path / "var"))
    assert async_url(url) == expected


# --- journal ------------------------------------------------------------------------------


async def test_append_and_load_round_trip(store: Store) -> None:
    a, b = TrunkHealth("carrier-a"), TrunkHealth("carrier-b")
    events = feed(a, T0, "offf") + feed(b, T0, "o") + feed(a, T0 + timedelta(seconds=10), "oo")
    kinds = [e.kind for e in events]
    assert kinds.count("outage_opened") == kinds.count("outage_closed") == 1
    await store.append(events[:4])  # up to and including the open
    await store.append(events[4:])
    assert await store.load_journal() == events

    (stored,) = await store.outages()
    (closed,) = [e.outage for e in events if isinstance(e, OutageClosed)]
    assert stored == closed and stored.restored_at == T0 + timedelta(seconds=10)
    assert await store.open_outages() == []


async def test_outage_row_is_inserted_open_and_updated_on_close(store: Store) -> None:
    open_ = outage("o-1", "carrier-a", T0)
    await store.append([OutageOpened(open_)])
    assert await store.open_outages() == [open_]
    closed = open_.closed(restored_at=T0 + timedelta(minutes=90), closed_at=T0 + timedelta(hours=2))
    await store.append([OutageClosed(closed)])
    assert await store.open_outages() == []
    assert await store.outages() == [closed]


async def test_close_whose_open_is_not_here_is_kept(store: Store) -> None:
    # e.g. a journal imported from another database: the closed outage must not be lost
    closed = outage("o-9", "carrier-a", T0, restored=T0 + timedelta(minutes=3))
    await store.append([OutageClosed(closed)])
    assert await store.outages() == [closed]


async def test_append_is_all_or_nothing(store: Store) -> None:
    first = outage("o-1", "carrier-a", T0)
    await store.append([OutageOpened(first)])
    change = TrunkStateChanged("carrier-b", T0, TrunkState.UP, TrunkState.DOWN, "timeout")
    with pytest.raises(IntegrityError):  # the same outage opened twice: a bug upstream
        await store.append([change, OutageOpened(first)])
    assert await store.load_journal() == [OutageOpened(first)]


async def test_a_batch_longer_than_a_slice_chains_and_commits_as_one(store: Store) -> None:
    """append() builds and inserts APPEND_SLICE rows per await (the probe loop runs between
    them); the hash chain runs on across slices, and a failure in a later slice still
    leaves nothing written."""
    n = 2 * APPEND_SLICE + 37
    changes = [
        TrunkStateChanged(
            f"t{i:04d}", T0 + timedelta(milliseconds=i), TrunkState.UNKNOWN, TrunkState.UP, "ok"
        )
        for i in range(n)
    ]
    await store.append(changes)
    assert await store.load_journal() == changes
    links = await store.journal_run(store.agent, 1, 10**9)
    assert len(links) == n and verify_chain(links) == []
    first = outage("o-1", "carrier-a", T0)
    await store.append([OutageOpened(first)])
    with pytest.raises(IntegrityError):  # the outage row fails after every slice went in
        await store.append([*changes, OutageOpened(first)])
    assert len(await store.journal_run(store.agent, 1, 10**9)) == n + 1


async def test_load_journal_is_per_agent(db_url: str, store: Store) -> None:
    other = await Store.open(db_url, agent="agent-2")
    try:
        mine = TrunkStateChanged("carrier-a", T0, TrunkState.UNKNOWN, TrunkState.UP, "ok")
        theirs = TrunkStateChanged("carrier-a", T0, TrunkState.UNKNOWN, TrunkState.DOWN, "timeout")
        await store.append([mine])
        await other.append([theirs])
        assert await store.load_journal() == [mine]
        assert await other.load_journal() == [theirs]
    finally:
        await other.close()


async def test_corrupt_journal_row_names_its_seq(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(journal).values(ts=T0, agent=AGENT, trunk="a", kind="trunk_state", payload="{")
        )
    with pytest.raises(JournalCorruptError, match="seq 1"):
        await store.load_journal()


# --- instants at the boundary -------------------------------------------------------------


async def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = datetime(2026, 10, 3, 14, 0)
    with pytest.raises(ValueError, match="naive"):
        await store.heartbeat(naive)
    with pytest.raises(ValueError, match="naive"):
        await store.outages(since=naive)
    # the column type itself refuses, whoever writes through it
    async with store.engine.begin() as conn:
        with pytest.raises(StatementError, match="naive") as caught:
            await conn.execute(insert(heartbeats).values(agent="x", last_seen_at=naive))
    assert isinstance(caught.value.orig, ValueError)
    assert await store.last_heartbeat() is None


async def test_aware_non_utc_input_is_stored_as_utc(store: Store, db_url: str) -> None:
    local = datetime(2026, 10, 3, 14, 0, 0, 250_000, tzinfo=MEXICO)  # 20:00:00.25 UTC
    await store.heartbeat(local)
    got = await store.last_heartbeat()
    assert got == local and got is not None and got.tzinfo is UTC
    assert (got.hour, got.microsecond) == (20, 250_000)
    first = datetime(2026, 10, 3, 8, 0, tzinfo=MEXICO)
    await store.append([OutageOpened(outage("o-1", "carrier-a", first))])
    (stored,) = await store.outages()
    assert stored.first_failure_at.tzinfo is UTC and stored.first_failure_at.hour == 14
    # what the database holds is the UTC wall time
    async with store.engine.connect() as conn:
        seen = (
            await conn.exec_driver_sql("SELECT CAST(last_seen_at AS TEXT) FROM heartbeats")
        ).scalar_one()
    assert str(seen).startswith("2026-10-03 20:00:00.25")


# --- queries ------------------------------------------------------------------------------


async def test_outages_query_filters(store: Store) -> None:
    h = timedelta(hours=1)
    early_a = outage("a-1", "carrier-a", T0, restored=T0 + h)  # 20:00-21:00
    late_a = outage("a-2", "carrier-a", T0 + 5 * h, restored=T0 + 6 * h)  # 01:00-02:00
    open_b = outage("b-1", "carrier-b", T0 + 2 * h)  # 22:00 - still open
    await store.append([OutageOpened(open_(o)) for o in (early_a, late_a, open_b)])
    await store.append([OutageClosed(early_a), OutageClosed(late_a)])

    def ids(found: list[Outage]) -> list[str]:
        return [o.id for o in found]

    assert ids(await store.outages()) == ["a-1", "b-1", "a-2"]  # by first failure
    assert ids(await store.outages(trunk="carrier-a")) == ["a-1", "a-2"]
    assert ids(await store.outages(trunk="carrier-c")) == []
    # overlap with [since, until): an open outage reaches every later window
    assert ids(await store.outages(since=T0 + 3 * h)) == ["b-1", "a-2"]
    assert ids(await store.outages(until=T0 + 2 * h)) == ["a-1"]  # b-1 starts at until
    assert ids(await store.outages(since=T0 + h, until=T0 + 5 * h)) == ["b-1"]  # edges touch
    assert ids(await store.outages(since=T0 + h / 2, until=T0 + h * 5.5)) == ["a-1", "b-1", "a-2"]
    assert ids(await store.outages(trunk="carrier-b", since=T0 + 10 * h)) == ["b-1"]
    local_since = (T0 + 3 * h).astimezone(MEXICO)
    assert ids(await store.outages(since=local_since)) == ["b-1", "a-2"]


async def test_gaps_recorded_and_journaled(store: Store) -> None:
    gap = await store.record_gap(T0, T0 + timedelta(minutes=5), "monitor_not_running")
    assert await store.gaps() == [gap]
    assert await store.gaps(agent="someone-else") == []
    assert await store.load_journal() == [gap]
    with pytest.raises(ValueError, match="end after"):
        await store.record_gap(T0, T0, "zero")


# --- restart --------------------------------------------------------------------------------


async def test_restart_mid_outage_resumes_the_same_outage(db_url: str) -> None:
    # first run: trunk a goes down, trunk b is up; heartbeat at 20:00:10
    store = await Store.open(db_url, agent=AGENT)
    assert await resume(store, T0) == {}  # fresh database: nothing to replay, no gap
    a, b = TrunkHealth("carrier-a"), TrunkHealth("carrier-b")
    await store.append(feed(a, T0, "offf") + feed(b, T0, "oo"))
    (opened,) = await store.open_outages()
    await store.heartbeat(T0 + timedelta(seconds=10))
    await store.close()

    # second run, 20 minutes later
    restart = T0 + timedelta(minutes=20)
    store = await Store.open(db_url, agent=AGENT)
    try:
        healths = await resume(store, restart)
        assert healths["carrier-a"].state is TrunkState.DOWN
        assert healths["carrier-a"].open_outage == opened
        assert healths["carrier-b"].state is TrunkState.UNKNOWN  # the gap is unknown time
        (gap,) = await store.gaps()
        assert (gap.start, gap.end) == (T0 + timedelta(seconds=10), restart)
        assert gap.reason == GAP_REASON_NOT_RUNNING and gap.agent == AGENT
        assert await store.last_heartbeat() == restart

        # the trunk is still failing after the restart: no second outage
        a = healths["carrier-a"]
        more = feed(a, restart, "fffff")
        assert more == []
        # then it recovers: the original outage closes
        more = feed(a, restart + timedelta(seconds=5), "oo")
        await store.append(more)
        (closed,) = await store.outages()
        assert closed.id == opened.id and closed.first_failure_at == opened.first_failure_at
        assert closed.restored_at == restart + timedelta(seconds=5)
    finally:
        await store.close()

    # a third start replays the whole history consistently, with a second, later gap
    store = await Store.open(db_url, agent=AGENT)
    try:
        healths = await resume(store, restart + timedelta(hours=1))
        assert healths["carrier-a"].open_outage is None
        assert healths["carrier-a"].state is TrunkState.UNKNOWN
        gaps = await store.gaps()
        assert len(gaps) == 2 and gaps[1].start == restart + timedelta(
            seconds=6, microseconds=100_000
        )
        assert gaps[0].end <= gaps[1].start  # gaps never overlap
        assert len(await store.outages()) == 1
    finally:
        await store.close()


async def test_resume_uses_the_latest_sign_of_life(store: Store) -> None:
    # the journal saw the monitor alive after its last heartbeat: the gap starts there
    await store.heartbeat(T0)
    change = TrunkStateChanged(
        "carrier-a", T0 + timedelta(seconds=7), TrunkState.UNKNOWN, TrunkState.UP, "ok"
    )
    await store.append([change])
    await resume(store, T0 + timedelta(minutes=1))
    (gap,) = await store.gaps()
    assert (gap.start, gap.end) == (T0 + timedelta(seconds=7), T0 + timedelta(minutes=1))
    journal_after = await store.load_journal()
    assert [e.kind for e in journal_after] == ["trunk_state", "monitor_gap", "trunk_state"]
    assert isinstance(journal_after[1], MonitorGap)
    last = journal_after[2]
    assert isinstance(last, TrunkStateChanged) and last.new is TrunkState.UNKNOWN


async def test_resume_with_the_clock_behind_records_no_gap(store: Store) -> None:
    await store.heartbeat(T0)
    await resume(store, T0 - timedelta(seconds=1))
    assert await store.gaps() == []


async def test_concurrent_first_opens_migrate_once(db_url: str) -> None:
    # daemon and a CLI command starting together on a fresh file: both must come up
    stores = await asyncio.gather(*(Store.open(db_url, agent=f"agent-{i}") for i in range(3)))
    try:
        for i, s in enumerate(stores):
            await s.heartbeat(T0 + timedelta(seconds=i))
        assert [await s.last_heartbeat() for s in stores] == [
            T0 + timedelta(seconds=i) for i in range(3)
        ]
    finally:
        for s in stores:
            await s.close()


async def test_every_agent_is_listed_with_its_site(db_url: str) -> None:
    a = await Store.open(db_url, agent="agent-mx", site="mexico-city")
    b = await Store.open(db_url, agent="agent-gdl", site="guadalajara")
    try:
        await a.heartbeat(T0)
        await b.heartbeat(T0 + timedelta(seconds=5))
        await a.heartbeat(T0 + timedelta(seconds=10))
        assert await b.agents() == [
            {
                "agent": "agent-gdl",
                "site": "guadalajara",
                "last_seen_at": "2026-10-03T20:00:05+00:00",
            },
            {
                "agent": "agent-mx",
                "site": "mexico-city",
                "last_seen_at": "2026-10-03T20:00:10+00:00",
            },
        ]
    finally:
        await a.close()
        await b.close()


async def test_this_processs_writers_queue_for_sqlites_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write transaction held across awaits (the journal writer on a busy loop) made the
    lease renewal and the heartbeat fail on SQLite's busy timeout ("database is locked"):
    they now queue behind it in this process and succeed once it commits."""
    from sqlalchemy.exc import OperationalError

    from monitor.store import lease as leases

    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 200)
    store = await Store.open(f"sqlite:///{tmp_path / 'tw.db'}", agent="a1")
    engine = store.engine
    held = asyncio.Event()

    async def long_writer() -> None:
        async with store_engine.writing(engine) as conn:
            await conn.execute(text("UPDATE leases SET holder = holder"))
            held.set()
            await asyncio.sleep(0.6)  # three busy timeouts

    try:
        writer = asyncio.create_task(long_writer())
        await held.wait()
        # Without the queue: SQLite's busy handler gives up after 200 ms.
        with pytest.raises(OperationalError, match="locked"):
            async with store_engine._transaction(engine) as conn:
                await conn.execute(text("UPDATE leases SET holder = holder"))
        # Through it: the lease and the heartbeat wait their turn.
        now = datetime.now(UTC)
        lease = await leases.acquire(engine, "ticket-outbox", "a1", now, timedelta(seconds=10))
        assert lease is not None and lease.token == 1
        await store.heartbeat(now)
        assert writer.done()  # they ran after the long transaction committed
        assert (await store.heartbeats())["a1"] == now
    finally:
        await store.close()
