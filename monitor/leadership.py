"""Which agent does the work done once for all (the ticket outbox): the holder of a lease in
the shared store (monitor/store/lease.py). One agent alone always leads; with several, one
leads and another takes over within the lease once the leader stops renewing it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import false
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.log import get_logger
from monitor.store import lease as leases
from monitor.store.lease import Lease
from probes.clock import SYSTEM_CLOCK, Clock, utc_now

log = get_logger("trunkwatch.leader")

LEASE_S: Final = 10.0  # a dead leader's work resumes elsewhere within this
OUTBOX_LEASE: Final = "ticket-outbox"


class Leadership:
    """Holds (or waits for) one lease; renews it three times per lease period."""

    def __init__(
        self,
        engine: AsyncEngine,
        agent: str,
        *,
        name: str = OUTBOX_LEASE,
        lease_s: float = LEASE_S,
        clock: Clock = SYSTEM_CLOCK,
        on_acquired: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self.agent = agent
        self.name = name
        self._ttl = timedelta(seconds=lease_s)
        self._clock = clock
        self._on_acquired = on_acquired
        self.lease: Lease | None = None

    @property
    def is_leader(self) -> bool:
        lease = self.lease
        return lease is not None and utc_now(self._clock) < lease.expires_at

    def fence(self) -> Any:
        """A WHERE clause true only while this agent's lease is the current one."""
        return false() if self.lease is None else leases.held(self.lease)

    async def step(self) -> None:
        """Renew the lease held, or try to take it; log when leadership changes."""
        now = utc_now(self._clock)
        was = self.lease
        try:
            if was is not None:
                self.lease = await leases.renew(self._engine, was, now, self._ttl)
            if self.lease is None:
                self.lease = await leases.acquire(
                    self._engine, self.name, self.agent, now, self._ttl
                )
        except Exception as exc:  # the database is away: lead no longer than the lease
            log.error("leader_lease_error", lease=self.name, error=repr(exc)[:200])
            if self.lease is not None and now >= self.lease.expires_at:
                self.lease = None
        if _token(was) != _token(self.lease):  # leadership changed hands (or process)
            if self.lease is not None:
                log.info(
                    "leader_acquired", lease=self.name, agent=self.agent, token=self.lease.token
                )
                self._on_acquired()
            else:
                log.warning("leader_lost", lease=self.name, agent=self.agent)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._ttl.total_seconds() / 3)
            await self.step()

    async def release(self) -> None:
        if self.lease is not None:
            try:
                await leases.release(self._engine, self.lease, utc_now(self._clock))
            except Exception as exc:
                log.error("leader_release_failed", lease=self.name, error=repr(exc)[:200])
            self.lease = None


def _token(lease: Lease | None) -> int | None:
    return None if lease is None else lease.token
