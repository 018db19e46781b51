"""The journal writer writes a mass of events (100,000 trunks learning their first state)
in bounded transactions, giving the probe loop its turn between them (issue #13)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, cast

import pytest

from monitor import heap
from monitor.events import Event
from monitor.store.samples import CallSample, ProbeSample
from monitor.store.writer import MAX_BATCH_EVENTS, TRIM_AFTER_EVENTS, JournalWriter


async def test_mass_of_events_written_in_bounded_batches_in_order() -> None:
    batches: list[list[int]] = []
    loop_turns = 0

    async def append(batch: Sequence[Event]) -> None:
        batches.append([cast(Any, e) for e in batch])

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        return None

    async def other_task() -> None:
        nonlocal loop_turns
        while True:
            loop_turns += 1
            await asyncio.sleep(0)

    writer = JournalWriter(append, insert)
    events = cast(list[Event], list(range(2 * MAX_BATCH_EVENTS + 500)))
    writer.queue(events)
    ticker = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    turns_before = loop_turns
    await writer.flush()
    ticker.cancel()
    assert [len(b) for b in batches] == [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS, 500]
    assert [e for b in batches for e in b] == list(range(2 * MAX_BATCH_EVENTS + 500))
    assert writer.pending == []
    assert loop_turns - turns_before >= 2  # the loop ran between the batches


async def test_a_large_backlog_once_written_gives_its_pages_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backlog of TRIM_AFTER_EVENTS or more (100,000 first states) is followed by one
    malloc_trim once written (measured at 100,000 trunks: RSS 611 MB against 628-635 MB);
    a small one, the usual case, by none."""
    trims: list[bool] = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append(True) or True)

    async def append(batch: Sequence[Event]) -> None:
        return None

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        return None

    writer = JournalWriter(append, insert)
    writer.queue(cast(list[Event], list(range(TRIM_AFTER_EVENTS - 1))))
    await writer.flush()
    writer.queue(cast(list[Event], list(range(TRIM_AFTER_EVENTS))))
    await writer.flush()
    for thread in threading.enumerate():
        if thread.name == "malloc-trim":
            thread.join(5)
    assert trims == [True]
    assert writer.pending == []
