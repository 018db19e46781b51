"""The journal writer writes a mass of events (100,000 trunks learning their first state)
in bounded transactions, giving the probe loop its turn between them (issue #13)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from monitor import heap
from monitor.events import Event
from monitor.store.samples import CallSample, ProbeSample
from monitor.store.writer import (
    MAX_BATCH_EVENTS,
    MAX_BATCH_SAMPLES,
    MAX_PENDING_SAMPLES,
    TRIM_AFTER_EVENTS,
    JournalWriter,
)


async def _ignore_events(batch: Sequence[Event]) -> None:
    return None


async def _ignore_samples(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
    return None


async def test_mass_of_events_written_in_bounded_batches_in_order() -> None:
    batches: list[list[int]] = []
    loop_turns = 0

    async def append(batch: Sequence[Event]) -> None:
        batches.append([cast(Any, e) for e in batch])

    async def other_task() -> None:
        nonlocal loop_turns
        while True:
            loop_turns += 1
            await asyncio.sleep(0)

    writer = JournalWriter(append, _ignore_samples)
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

    writer = JournalWriter(_ignore_events, _ignore_samples)
    writer.queue(cast(list[Event], list(range(TRIM_AFTER_EVENTS - 1))))
    await writer.flush()
    writer.queue(cast(list[Event], list(range(TRIM_AFTER_EVENTS))))
    await writer.flush()
    for thread in threading.enumerate():
        if thread.name == "malloc-trim":
            thread.join(5)
    assert trims == [True]
    assert writer.pending == []


def _sample(i: int) -> ProbeSample:
    at = datetime(2026, 12, 4, tzinfo=UTC) + timedelta(seconds=i)
    return ProbeSample("a", f"t{i // 30}", "outage_opened", at, at, "timeout", None, None)


async def test_a_carrier_wide_outage_keeps_every_sample_in_bounded_batches() -> None:
    """5,000 trunks' rings queued at once (a carrier-wide outage: 150,000 rows) are all
    written, MAX_BATCH_SAMPLES rows a transaction, in order; the old cap of 20,000 lost
    130,000 of them (measured: 127,022 of a 5,000-trunk outage's rows dropped)."""
    batches: list[list[ProbeSample]] = []

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        batches.append(list(probes))

    writer = JournalWriter(_ignore_events, insert)
    rows = [_sample(i) for i in range(5_000 * 30)]
    for trunk in range(5_000):  # one transition's ring at a time, as the pipeline queues them
        writer.queue_samples(rows[trunk * 30 : (trunk + 1) * 30], ())
    await writer.flush_samples()
    assert max(len(b) for b in batches) == MAX_BATCH_SAMPLES
    assert [s for b in batches for s in b] == rows
    assert writer.probe_samples == []


async def test_events_queued_during_a_sample_backlog_are_written_before_the_rest() -> None:
    """An outage's event (and so its ticket) does not wait behind evidence rows."""
    written: list[str] = []
    writer: JournalWriter

    async def append(batch: Sequence[Event]) -> None:
        written.append(f"events {len(batch)}")

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        written.append("samples")
        if len(written) == 1:
            writer.queue(cast(list[Event], [1, 2]))  # an outage opens meanwhile

    writer = JournalWriter(append, insert)
    writer.queue_samples([_sample(i) for i in range(3 * MAX_BATCH_SAMPLES)], ())
    await writer.flush_samples()
    assert written == ["samples", "events 2", "samples", "samples"]
    assert writer.pending == []


async def test_past_the_cap_the_oldest_samples_are_dropped_and_counted_in_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        raise OSError("database unreachable")

    writer = JournalWriter(_ignore_events, insert)
    writer.queue_samples([_sample(i) for i in range(MAX_PENDING_SAMPLES)], ())
    await writer.flush_samples()  # fails: everything stays queued
    assert len(writer.probe_samples) == MAX_PENDING_SAMPLES
    writer.queue_samples([_sample(MAX_PENDING_SAMPLES + i) for i in range(10)], ())
    assert len(writer.probe_samples) == MAX_PENDING_SAMPLES
    assert writer.probe_samples[0] == _sample(10)  # the oldest ten went
    assert writer.probe_samples[-1] == _sample(MAX_PENDING_SAMPLES + 9)
    out = capsys.readouterr()
    assert "samples_dropped" in out.out + out.err


async def test_a_sample_backlog_gives_the_probes_as_long_as_each_batch_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each insert builds its parameters on the loop; between batches the writer waits as
    long as the batch held it, so a backlog takes at most half the probe loop."""
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(0)

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        time.sleep(0.01)  # noqa: ASYNC251 - the loop held, as SQLAlchemy holds it

    writer = JournalWriter(_ignore_events, insert)
    writer.queue_samples([_sample(i) for i in range(3 * MAX_BATCH_SAMPLES)], ())
    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    await writer.flush_samples()
    assert len(waits) == 2  # between the three batches, none after the last
    assert all(wait >= 0.01 for wait in waits)
    writer.queue_samples([_sample(i) for i in range(3 * MAX_BATCH_SAMPLES)], ())
    writer.stopping.set()  # at a stop, written without waits: no probe is left to protect
    await writer.flush_samples()
    assert len(waits) == 2
    assert writer.probe_samples == []
