"""The journal writer writes a mass of events (100,000 trunks learning their first state)
in bounded transactions, giving the probe loop its turn between them (issue #13)."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any, cast

import pytest

from monitor import heap
from monitor.events import Event
from monitor.store import writer as writer_module
from monitor.store.samples import CallSample, ProbeSample
from monitor.store.writer import (
    MAX_BATCH_EVENTS,
    MAX_BATCH_SAMPLES,
    MAX_PENDING_SAMPLES,
    TRIM_AFTER_EVENTS,
    JournalWriter,
)
from monitor.transition_samples import ProbeSampleRun, TransitionSampler, sample_rows
from probes.instants import utc_from_ns


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


T0_NS = 1_796_342_400 * 10**9  # 2026-12-04 00:00 UTC


def _runs(trunks: int, rows: int = 30, *, first: int = 0) -> list[ProbeSampleRun]:
    """One transition's ring per trunk, as the pipeline queues them: `rows` results each,
    one second apart, numbered from `first` (the second of each row's send instant)."""
    sampler = TransitionSampler("a", ring=rows, after=rows)
    runs: list[ProbeSampleRun] = []
    n = first
    for t in range(trunks):
        for _ in range(rows):
            sampler.record(f"t{t}", (T0_NS + n * 10**9, "timeout", None, None))
            n += 1
        runs += sampler.transition(f"t{t}", "outage_opened", utc_from_ns(T0_NS + n * 10**9))
    return runs


def _first_seconds(writer: JournalWriter) -> tuple[int, int]:
    """The send second of the oldest and the newest probe row queued."""
    return (
        (writer.probe_runs[0].sent[0] - T0_NS) // 10**9,
        (writer.probe_runs[-1].sent[-1] - T0_NS) // 10**9,
    )


async def test_a_carrier_wide_outage_keeps_every_sample_in_bounded_batches() -> None:
    """5,000 trunks' rings queued at once (a carrier-wide outage: 150,000 rows) are all
    written, MAX_BATCH_SAMPLES rows a transaction, in order; the old cap of 20,000 lost
    130,000 of them (measured: 127,022 of a 5,000-trunk outage's rows dropped)."""
    batches: list[list[ProbeSample]] = []

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        batches.append(list(probes))

    writer = JournalWriter(_ignore_events, insert)
    runs = _runs(5_000)
    for run in runs:
        writer.queue_samples([run], ())
    assert writer.samples_waiting == 150_000
    await writer.flush_samples()
    assert max(len(b) for b in batches) == MAX_BATCH_SAMPLES
    written = [s for b in batches for s in b]
    assert written == sample_rows(runs)
    assert len({(s.trunk, s.at) for s in written}) == 150_000
    assert not writer.probe_runs and writer.samples_waiting == 0


def test_a_queued_probe_row_takes_a_fraction_of_a_row_object() -> None:
    """Rows wait as the ring's columns (measured: 39 bytes a row, a run's own objects
    included): MAX_PENDING_SAMPLES of them fit in ~60 MB. As ProbeSample objects (~150
    bytes each, ~185 with their list and instants) 250,000 had taken ~46 MB."""
    tracemalloc.start()
    try:
        runs = _runs(2_000)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_row = held / 60_000
    assert per_row < 45, per_row
    assert MAX_PENDING_SAMPLES * per_row < 64e6
    assert sum(map(len, runs)) == 60_000


async def test_a_failed_write_puts_the_batch_back_in_front() -> None:
    """The batch is off the queue while written (so a drop meanwhile cannot take it) and
    back in front, in order and with its split run whole, when the write fails."""
    fail = True

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        if fail:
            raise OSError("database unreachable")

    writer = JournalWriter(_ignore_events, insert)
    runs = _runs(40)  # 1,200 rows: the first batch splits the 17th run
    writer.queue_samples(runs, [_call(1)])
    await writer.flush_samples()
    assert writer.samples_waiting == 1_201
    assert sample_rows(writer.probe_runs) == sample_rows(runs)
    assert writer.call_samples == [_call(1)]
    small = JournalWriter(_ignore_events, insert)  # a batch of both kinds: both put back
    small.queue_samples(_runs(2), [_call(1), _call(2)])
    await small.flush_samples()
    assert small.samples_waiting == 62 and small.call_samples == [_call(1), _call(2)]
    fail = False
    await writer.flush_samples()
    assert writer.samples_waiting == 0


def _call(i: int) -> CallSample:
    at = utc_from_ns(T0_NS + i * 10**9)
    return CallSample("a", "t", at, "ok", 4.3, 0.001, 0.001, 0.0, 0.0, 0.02, 0.01, (), None, {})


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
    writer.queue_samples(_runs(1, 3 * MAX_BATCH_SAMPLES), ())
    await writer.flush_samples()
    assert written == ["samples", "events 2", "samples", "samples"]
    assert writer.pending == []


async def test_past_the_cap_the_oldest_samples_are_dropped_and_counted_in_the_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        raise OSError("database unreachable")

    monkeypatch.setattr(writer_module, "MAX_PENDING_SAMPLES", 3_000)
    writer = JournalWriter(_ignore_events, insert)
    writer.queue_samples(_runs(100), ())
    await writer.flush_samples()  # fails: everything stays queued
    assert writer.samples_waiting == 3_000 and writer.samples_dropped == 0
    writer.queue_samples(_runs(1, 10, first=3_000), ())
    assert writer.samples_waiting == 3_000
    assert _first_seconds(writer) == (10, 3_009)  # the oldest ten went (a run split)
    assert writer.samples_dropped == 10
    writer.queue_samples(_runs(2, first=3_010), [_call(1)])  # whole runs go too
    assert writer.samples_waiting == 3_000
    assert _first_seconds(writer) == (71, 3_069)
    assert writer.samples_dropped == 71
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
    writer.queue_samples(_runs(50), ())
    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    await writer.flush_samples()
    assert len(waits) == 2  # between the three batches, none after the last
    assert all(wait >= 0.01 for wait in waits)
    writer.queue_samples(_runs(50), ())
    writer.stopping.set()  # at a stop, written without waits: no probe is left to protect
    await writer.flush_samples()
    assert len(waits) == 2
    assert writer.samples_waiting == 0


async def test_at_a_stop_samples_are_written_for_a_bounded_time_the_rest_counted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop with a large backlog ends within STOP_SAMPLES_S (systemd kills at 30 s);
    what is left is counted as dropped and logged, not written half-way."""
    written: list[int] = []

    async def insert(probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        written.append(len(probes) + len(calls))
        await asyncio.sleep(0.02)

    monkeypatch.setattr(writer_module, "STOP_SAMPLES_S", 0.1)
    writer = JournalWriter(_ignore_events, insert)
    writer.queue_samples(_runs(1, 100 * MAX_BATCH_SAMPLES), [_call(1)])
    writer.stopping.set()
    started = time.monotonic()
    await writer.flush_samples()
    assert time.monotonic() - started < 1.0
    assert 2 <= len(written) < 50
    assert writer.samples_waiting == 0
    assert writer.samples_dropped == 100 * MAX_BATCH_SAMPLES + 1 - sum(written)
    out = capsys.readouterr()
    assert '"reason": "stopping"' in out.out + out.err or "reason=stopping" in out.out + out.err
    await writer.flush_samples()  # a later call (Monitor.stop's) writes nothing more
    assert writer.samples_dropped + sum(written) == 100 * MAX_BATCH_SAMPLES + 1
