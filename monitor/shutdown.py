"""The monitor's stop, phase by phase, each phase timed: a stop that takes long (a journal
backlog, a ticket system that does not answer) says where the time went."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.app import Monitor


class Laps:
    """Seconds per named phase on the monotonic clock: each call ends one phase."""

    __slots__ = ("_mark", "took")

    def __init__(self) -> None:
        self.took: dict[str, float] = {}
        self._mark = time.monotonic()

    def __call__(self, phase: str) -> None:
        now = time.monotonic()
        self.took[phase] = round(now - self._mark, 3)
        self._mark = now


async def stop_in_phases(
    m: Monitor, tasks: list[asyncio.Task[None]], *, readers: Collection[str]
) -> dict[str, float]:
    """Stop probes, tasks, store and HTTP in this order; each phase's seconds."""
    lap = Laps()
    if m.scheduler is not None:
        m.scheduler.stop()
        for item in m.scheduler.items:
            await item.probe.close()
    if m.call_pool is not None:
        await m.call_pool.stop()
        m.call_pool = None
    await m.registrations.stop()  # un-REGISTERs while the loop and sockets still run
    if m.udp is not None:
        m.udp.close()
    lap("probes")
    # The writer and the heartbeat end between writes: a task cancelled inside a write
    # transaction keeps SQLite's write lock until its connection is collected, and the
    # final writes below would time out on it ("database is locked").
    m.writer.stopping.set()
    m.writer.wake.set()
    for task in tasks:
        if task.get_name() in readers:
            task.cancel()  # reads only
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    tasks.clear()
    lap("tasks")
    if m.store is not None:
        await m.writer.flush(final=True)
        lap("journal")
        m.writer.queue_samples(m.pipeline.sampler.drain(), ())
        await m.writer.flush_samples()
        lap("samples")
        await m.tickets.stop()
        lap("tickets")
        await m.store.heartbeat(datetime.now(UTC))
        await m.store.close()
        m.store = None
        lap("store")
    if m.runner is not None:
        await m.runner.cleanup()
        m.runner = None
        lap("http")
    return lap.took
