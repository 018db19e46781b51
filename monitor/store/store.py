"""The durable store: the event journal and the tables derived from it, in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.events import (
    Event,
    EventDecodeError,
    MonitorGap,
    Outage,
    OutageClosed,
    OutageKind,
    OutageOpened,
    as_utc,
    from_json,
)
from monitor.journal_chain import GENESIS, ChainLink, chain_rows
from monitor.store.engine import create_engine, writing
from monitor.store.migrations import upgrade_to_head
from monitor.store.schema import agent_outages, heartbeats, journal, monitor_gaps, outages

# Imported for its side effect: the ticket tables join schema.metadata (migration 0003).

# Journal rows built, hashed and inserted per await (~6 ms of loop time at ~30 µs a row).
APPEND_SLICE = 200


class JournalCorruptError(ValueError):
    """A journal row that does not decode; names its seq so it can be looked at."""


class Store:
    """One agent's view of the database; instances come from ``await Store.open(...)``."""

    def __init__(
        self, engine: AsyncEngine, agent: str, site: str | None = None, *, views: bool = False
    ) -> None:
        self._engine = engine
        self.agent = agent
        # views: one of several agents, whose outages are its view (agent_outages); the
        # contract's outages are the quorum's, written by the leader (monitor/quorum.py).
        self._written = agent_outages if views else outages
        self.site = site  # where the agent runs; kept beside its heartbeat
        self._chain_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, url: str, *, agent: str, site: str | None = None, views: bool = False
    ) -> Store:
        """Connect (``sqlite:///x.db``, ``sqlite:///:memory:``, ``postgresql://...``); migrate."""
        if not agent:
            raise ValueError("agent name must not be empty")
        engine = create_engine(url)
        try:
            async with writing(engine) as conn:
                await conn.run_sync(upgrade_to_head)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, agent, site, views=views)

    @property
    def engine(self) -> AsyncEngine:
        """For modules that keep their own tables in this database (maintenance, SLA)."""
        return self._engine

    async def close(self) -> None:
        await self._engine.dispose()

    async def append(
        self,
        events: Sequence[Event],
        *,
        extra: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> None:
        """Journal ``events`` and update the outage and gap tables, all or nothing.

        ``extra`` runs last in the same transaction (the ticket outbox queues its requests
        there: monitor.tickets.ledger.append_with_outbox); if it raises, nothing is written.
        """
        if not events:
            return
        # One appender at a time per agent, so two batches never chain to the same head.
        async with self._chain_lock, writing(self._engine) as conn:
            head = await self._chain_head(conn)
            # Rows are built, hashed and inserted a slice at a time inside the transaction:
            # each await lets the probe loop run. Building 2,000 at once (the start-up of
            # 100,000 trunks) held the loop ~60 ms per batch.
            for start in range(0, len(events), APPEND_SLICE):
                rows = self._journal_rows(events[start : start + APPEND_SLICE], head)
                head = str(rows[-1]["hash"])
                await conn.execute(insert(journal), rows)
            for e in events:
                if isinstance(e, OutageOpened):
                    await conn.execute(insert(self._written).values(self._outage_row(e.outage)))
                elif isinstance(e, OutageClosed):
                    await self._close_outage(conn, e.outage)
                elif isinstance(e, MonitorGap):
                    await conn.execute(
                        insert(monitor_gaps).values(
                            agent=e.agent, start_at=e.start, end_at=e.end, reason=e.reason
                        )
                    )
            if extra is not None:
                await extra(conn)

    def _journal_rows(self, events: Sequence[Event], head: str) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = [
            {
                "ts": e.at,
                "agent": self.agent,
                "trunk": e.trunk,
                "kind": e.kind,
                "payload": e.to_json(),
            }
            for e in events
        ]
        links = chain_rows(
            (
                (e.at, self.agent, e.trunk, e.kind, str(r["payload"]))
                for e, r in zip(events, rows, strict=True)
            ),
            head,
        )
        for row, (prev_hash, digest) in zip(rows, links, strict=True):
            row["prev_hash"], row["hash"] = prev_hash, digest
        return rows

    async def _chain_head(self, conn: AsyncConnection) -> str:
        query = (
            select(journal.c.hash)
            .where(journal.c.agent == self.agent, journal.c.hash.is_not(None))
            .order_by(journal.c.seq.desc())
            .limit(1)
        )
        head: str | None = (await conn.execute(query)).scalar_one_or_none()
        return head or GENESIS

    async def _close_outage(self, conn: AsyncConnection, outage: Outage) -> None:
        table = self._written
        result = await conn.execute(
            update(table)
            .where(table.c.id == outage.id)
            .values(
                restored_at=outage.restored_at,
                closed_at=outage.closed_at,
                end_cause=outage.end_cause,
            )
        )
        if result.rowcount == 0:
            # Its open predates this database (e.g. journal imported from elsewhere):
            # keep the closed outage rather than lose it.
            await conn.execute(insert(table).values(self._outage_row(outage)))

    def _outage_row(self, outage: Outage) -> dict[str, Any]:
        return {
            "id": outage.id,
            "trunk": outage.trunk,
            "kind": outage.kind.value,
            "first_failure_at": outage.first_failure_at,
            "confirmed_at": outage.confirmed_at,
            "restored_at": outage.restored_at,
            "closed_at": outage.closed_at,
            "first_outcome": str(outage.first_outcome),
            "detail": outage.detail,
            "agent": self.agent,
            "end_cause": outage.end_cause,
        }

    async def load_journal(self) -> list[Event]:
        """This agent's journal in append (seq) order, for replay."""
        query = (
            select(journal.c.seq, journal.c.payload)
            .where(journal.c.agent == self.agent)
            .order_by(journal.c.seq)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        events: list[Event] = []
        for seq, payload in rows:
            try:
                events.append(from_json(payload))
            except EventDecodeError as exc:
                raise JournalCorruptError(f"journal seq {seq}: {exc}") from exc
        return events

    async def open_outages(self) -> list[Outage]:
        return await self._outages(outages.c.closed_at.is_(None))

    async def outages(
        self,
        *,
        trunk: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Outage]:
        """Outages whose span (first failure → restoration, or still open) meets [since, until)."""
        conditions: list[Any] = []
        if trunk is not None:
            conditions.append(outages.c.trunk == trunk)
        if since is not None:
            since = as_utc(since, "since")
            conditions.append(or_(outages.c.restored_at.is_(None), outages.c.restored_at > since))
        if until is not None:
            until = as_utc(until, "until")
            conditions.append(outages.c.first_failure_at < until)
        return await self._outages(*conditions)

    async def journal_runs(self, start: datetime, end: datetime) -> list[ChainLink]:
        """Each agent's contiguous run of journal rows covering [start, end), agent by agent
        in seq order: the runs' first and last rows are the chain ends the evidence cites."""
        async with self._engine.connect() as conn:
            bounds = (
                await conn.execute(
                    select(journal.c.agent, func.min(journal.c.seq), func.max(journal.c.seq))
                    .where(journal.c.ts >= start, journal.c.ts < end)
                    .group_by(journal.c.agent)
                )
            ).all()
        runs: list[ChainLink] = []
        for agent, low, high in sorted(bounds):
            runs += await self.journal_run(agent, low, high)
        return runs

    async def journal_run(self, agent: str, first_seq: int, last_seq: int) -> list[ChainLink]:
        """`agent`'s journal rows from seq first_seq to last_seq, in order."""
        query = (
            select(journal)
            .where(journal.c.agent == agent, journal.c.seq.between(first_seq, last_seq))
            .order_by(journal.c.seq)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            ChainLink(int(r.seq), r.ts, r.agent, r.trunk, r.kind, r.payload, r.prev_hash, r.hash)
            for r in rows
        ]

    async def agent_views(self, *, since: datetime) -> list[tuple[str, Outage]]:
        """Every agent's own outages still open or restored after `since`: (agent, outage)."""
        table = agent_outages
        query = (
            select(table)
            .where(or_(table.c.restored_at.is_(None), table.c.restored_at > since))
            .order_by(table.c.first_failure_at, table.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.agent, _outage_from_row(row)) for row in rows]

    async def heartbeats(self) -> dict[str, datetime]:
        """Every agent's last heartbeat."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(heartbeats))).all()
        return {row.agent: row.last_seen_at for row in rows}

    async def outage(self, outage_id: str) -> Outage | None:
        found = await self._outages(outages.c.id == outage_id)
        return found[0] if found else None

    async def _outages(self, *conditions: Any) -> list[Outage]:
        query = (
            select(outages).where(*conditions).order_by(outages.c.first_failure_at, outages.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_outage_from_row(row) for row in rows]

    async def heartbeat(self, now: datetime) -> None:
        """Record that this agent is alive at ``now`` (every ~10 s, never per probe)."""
        now = as_utc(now, "heartbeat")
        async with writing(self._engine) as conn:
            # Update-then-insert is portable; one agent name is one process, so no race.
            result = await conn.execute(
                update(heartbeats)
                .where(heartbeats.c.agent == self.agent)
                .values(last_seen_at=now, site=self.site)
            )
            if result.rowcount == 0:
                await conn.execute(
                    insert(heartbeats).values(agent=self.agent, last_seen_at=now, site=self.site)
                )

    async def agents(self) -> list[dict[str, str | None]]:
        """Every agent that ever wrote to this store: name, site and last heartbeat."""
        query = select(heartbeats).order_by(heartbeats.c.agent)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {"agent": r.agent, "site": r.site, "last_seen_at": r.last_seen_at.isoformat()}
            for r in rows
        ]

    async def last_heartbeat(self, agent: str | None = None) -> datetime | None:
        """This agent's last heartbeat (or `agent`'s)."""
        name = self.agent if agent is None else agent
        query = select(heartbeats.c.last_seen_at).where(heartbeats.c.agent == name)
        async with self._engine.connect() as conn:
            value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return value

    async def watchers(self) -> list[str]:
        """Every agent that watches with this store (each heartbeats), and this one."""
        return sorted(set(await self.heartbeats()) | {self.agent})

    async def first_event_at(self, agent: str | None = None) -> datetime | None:
        """When this agent (or `agent`) journaled its first event: it watched from then on."""
        name = self.agent if agent is None else agent
        first = select(func.min(journal.c.seq)).where(journal.c.agent == name).scalar_subquery()
        async with self._engine.connect() as conn:
            value: datetime | None = (
                await conn.execute(select(journal.c.ts).where(journal.c.seq == first))
            ).scalar_one_or_none()
        return value

    async def record_gap(self, start: datetime, end: datetime, reason: str) -> MonitorGap:
        """Record time this agent did not watch; journaled as a monitor_gap event too."""
        gap = MonitorGap(agent=self.agent, start=start, end=end, reason=reason)
        await self.append([gap])
        return gap

    async def gaps(self, *, agent: str | None = None) -> list[MonitorGap]:
        """Recorded gaps, oldest first; every agent's unless ``agent`` is given."""
        query = select(monitor_gaps).order_by(monitor_gaps.c.start_at, monitor_gaps.c.id)
        if agent is not None:
            query = query.where(monitor_gaps.c.agent == agent)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            MonitorGap(agent=r.agent, start=r.start_at, end=r.end_at, reason=r.reason) for r in rows
        ]


def _outage_from_row(row: Row[Any]) -> Outage:
    return Outage(
        id=row.id,
        trunk=row.trunk,
        kind=OutageKind(row.kind),
        first_failure_at=row.first_failure_at,
        confirmed_at=row.confirmed_at,
        first_outcome=row.first_outcome,
        detail=row.detail,
        restored_at=row.restored_at,
        closed_at=row.closed_at,
        end_cause=row.end_cause,
    )
