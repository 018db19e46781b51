"""Leases in the shared store: one agent at a time does the work done once for all (the
ticket outbox), and a deposed holder cannot act on stale belief.

A lease row names its holder, when it expires, and a fencing token that grows by one every
time the lease changes hands. The holder renews well before expiry; another agent takes it
only once it has expired. Work guarded by a lease is written with `fence(lease)` in its
WHERE clause, so a holder that lost the lease (paused, partitioned) changes nothing even
if it still believes it leads. Expiry compares the agents' UTC clocks: they must agree to
well within the lease (NTP does; the default lease is 10 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.store.engine import writing
from monitor.store.schema import leases


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    token: int
    expires_at: datetime


async def acquire(
    engine: AsyncEngine, name: str, holder: str, now: datetime, ttl: timedelta
) -> Lease | None:
    """Take or renew the lease `name` for `holder` until now + ttl; None if another holds it.

    A row of another holder is taken only once expired, with the next token (compare-and-set
    on the token seen). A restarted agent (same name) takes its own row at once, also with
    the next token: its previous process's fenced writes then fail. `renew` keeps a token.
    """
    until = now + ttl
    async with writing(engine) as conn:
        row = (await conn.execute(select(leases).where(leases.c.name == name))).first()
        if row is None:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(leases).values(name=name, holder=holder, token=1, expires_at=until)
                    )
            except IntegrityError:
                return None  # another agent inserted it first
            return Lease(name, holder, 1, until)
        if row.holder != holder and row.expires_at > now:
            return None
        return await _set(conn, row, holder, until)


async def renew(engine: AsyncEngine, lease: Lease, now: datetime, ttl: timedelta) -> Lease | None:
    """Extend a lease still held with the same token; None if it was lost meanwhile."""
    until = now + ttl
    async with writing(engine) as conn:
        result = await conn.execute(update(leases).where(fence(lease)).values(expires_at=until))
    if result.rowcount != 1:
        return None
    return Lease(lease.name, lease.holder, lease.token, until)


async def release(engine: AsyncEngine, lease: Lease, now: datetime) -> None:
    """Give the lease up at once (an orderly stop): the next agent need not wait for expiry."""
    async with writing(engine) as conn:
        await conn.execute(update(leases).where(fence(lease)).values(expires_at=now))


async def current(engine: AsyncEngine, name: str) -> Lease | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(leases).where(leases.c.name == name))).first()
    return None if row is None else Lease(row.name, row.holder, row.token, row.expires_at)


def fence(lease: Lease) -> Any:
    """A WHERE clause true only while `lease` is still the current one (same token)."""
    return and_(
        leases.c.name == lease.name,
        leases.c.holder == lease.holder,
        leases.c.token == lease.token,
    )


class LeaseLost(RuntimeError):
    """The lease a write was fenced with is no longer the current one: nothing was written."""


async def require(conn: AsyncConnection, lease: Lease) -> None:
    """Inside a write transaction: LeaseLost unless `lease` is still current. The no-op
    update also locks the lease row (PostgreSQL), so a takeover waits for this transaction."""
    result = await conn.execute(update(leases).where(fence(lease)).values(token=leases.c.token))
    if result.rowcount != 1:
        raise LeaseLost(f"lease {lease.name} token {lease.token} is no longer held")


def held(lease: Lease) -> Any:
    """`fence` as an EXISTS, for the WHERE clause of a write to another table."""
    return exists(select(leases.c.token).where(fence(lease)))


async def _set(conn: Any, row: Any, holder: str, until: datetime) -> Lease | None:
    token = row.token + 1  # a new holder, or a new process of the same agent
    result = await conn.execute(
        update(leases)
        .where(leases.c.name == row.name, leases.c.token == row.token)
        .values(holder=holder, token=token, expires_at=until)
    )
    if result.rowcount != 1:
        return None  # someone else took it between our read and our write
    return Lease(row.name, holder, token, until)
