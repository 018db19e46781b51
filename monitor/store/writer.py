"""The journal writer: events and sample rows queued in memory, written in batches off the
probe loop, retried with backoff until stored (a locked or unreachable database loses no
event; samples, which are evidence detail, are capped)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from monitor import heap
from monitor.events import Event
from monitor.log import RateLimitedLog, get_logger
from monitor.store.samples import CallSample, ProbeSample
from monitor.transition_samples import ProbeSampleRun, sample_rows

__all__ = ["MAX_BATCH_SAMPLES", "MAX_PENDING_SAMPLES", "STOP_SAMPLES_S", "JournalWriter"]

log = get_logger("trunkwatch.store")

# Journal write retry backoff (seconds).
WRITE_RETRY_MIN_S: Final = 0.5
WRITE_RETRY_MAX_S: Final = 30.0
# Sample rows held while the database is behind or unreachable; past this the oldest are
# dropped (logged): samples are evidence detail, the journal is what must never be lost.
# A carrier-wide outage queues up to RING_SIZE rows per trunk at once, and as many after
# it: a cap of 20,000 lost most of 5,000 trunks' rows, 250,000 `ProbeSample` objects
# (~185 bytes a row) 7.6 % of 10,000 trunks'. Probe rows now wait as the ring's columns
# (ProbeSampleRun, ~39 bytes a row): 1,500,000 rows in ~60 MB kept all of 20,000 trunks'.
MAX_PENDING_SAMPLES: Final = 1_500_000
# Sample rows per transaction. SQLAlchemy builds an insert's parameters on the loop: into
# SQLite here 5,000 rows held it 47–75 ms, 500 rows ~5 ms (26 ms an insert in all; issue #13).
MAX_BATCH_SAMPLES: Final = 500
# At a stop, sample rows are written for at most this long; the rest are dropped (logged):
# 1,500,000 rows take over a minute, and systemd kills the process at TimeoutStopSec=30s.
STOP_SAMPLES_S: Final = 15.0
# Events per journal transaction. 100,000 trunks learning their first state queue 100,000
# events within one interval; written as one transaction the insert built hundreds of MB
# of parameters at once and held the loop (SQLAlchemy runs on it) for seconds.
MAX_BATCH_EVENTS: Final = 2_000

# A backlog this large (100,000 trunks' first states, or a mass outage's sample rows)
# leaves ~20 MB of freed pages with the allocator once written: they go back to the
# system (monitor/heap.py).
TRIM_AFTER_EVENTS: Final = 10_000

AppendEvents = Callable[[Sequence[Event]], Awaitable[None]]
InsertSamples = Callable[[Sequence[ProbeSample], Sequence[CallSample]], Awaitable[None]]


class JournalWriter:
    """``queue``/``queue_samples`` from the probe loop; ``run`` writes until ``stopping``."""

    def __init__(self, append: AppendEvents, insert_samples: InsertSamples) -> None:
        self._append = append  # the journal and the tickets its events owe: one transaction
        self._insert_samples = insert_samples
        self.pending: list[Event] = []
        self.probe_runs: deque[ProbeSampleRun] = deque()
        self._probe_rows = 0  # rows in probe_runs
        self.call_samples: list[CallSample] = []
        self.errors = 0
        self.samples_dropped = 0  # rows lost past MAX_PENDING_SAMPLES (a counter metric)
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self._samples_log = RateLimitedLog(log)
        self._stop_deadline: float | None = None

    def queue(self, events: Sequence[Event]) -> None:
        self.pending.extend(events)
        self.wake.set()

    @property
    def samples_waiting(self) -> int:
        """Sample rows (probe and call) queued and not yet written."""
        return self._probe_rows + len(self.call_samples)

    def queue_samples(self, probes: Sequence[ProbeSampleRun], calls: Sequence[CallSample]) -> None:
        if not (probes or calls):
            return
        self.probe_runs.extend(probes)
        self._probe_rows += sum(map(len, probes))
        self.call_samples.extend(calls)
        excess = self.samples_waiting - MAX_PENDING_SAMPLES
        if excess > 0:
            self.samples_dropped += excess
            self._samples_log.error("samples_dropped", now_ns=time.monotonic_ns(), count=excess)
            dropped = sum(map(len, self._take_probe_runs(excess)))
            del self.call_samples[: excess - dropped]
        self.wake.set()

    def _take_probe_runs(self, rows: int) -> list[ProbeSampleRun]:
        """Up to `rows` of the oldest probe rows, off the queue (a run split if need be)."""
        taken: list[ProbeSampleRun] = []
        while rows > 0 and self.probe_runs:
            run = self.probe_runs[0]
            if len(run) > rows:
                run, self.probe_runs[0] = run.split(rows)
            else:
                self.probe_runs.popleft()
            taken.append(run)
            rows -= len(run)
            self._probe_rows -= len(run)
        return taken

    async def run(self) -> None:
        """Write whenever woken, until ``stopping`` is set (then ``flush(final=True)``)."""
        while not self.stopping.is_set():
            await self.wake.wait()
            self.wake.clear()
            await self.flush()
            await self.flush_samples()

    async def flush(self, *, final: bool = False) -> None:
        """Write what is pending; on failure keep it and retry with backoff (loses nothing)."""
        delay = WRITE_RETRY_MIN_S
        backlog = len(self.pending)
        while self.pending:
            batch = self.pending[:MAX_BATCH_EVENTS]
            try:
                await self._append(batch)
            except Exception as exc:
                self.errors += 1
                log.error("journal_write_failed", error=repr(exc)[:200], pending=len(batch))
                if final or self.stopping.is_set():  # stop() makes the last try
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_S)
                continue
            del self.pending[: len(batch)]
            if self.pending:
                await asyncio.sleep(0)  # the probe loop's turn between batches
            elif backlog >= TRIM_AFTER_EVENTS:
                heap.trim_soon()

    def _past_stop_budget(self) -> bool:
        """At a stop, once STOP_SAMPLES_S is spent: the rows left are dropped (counted)."""
        now = time.monotonic()
        if self._stop_deadline is None:
            self._stop_deadline = now + STOP_SAMPLES_S
        if now < self._stop_deadline:
            return False
        left = self.samples_waiting
        self._take_probe_runs(left)
        self.call_samples.clear()
        self.samples_dropped += left
        log.error("samples_dropped", count=left, reason="stopping", budget_s=STOP_SAMPLES_S)
        return True

    async def flush_samples(self) -> None:
        """Write what is queued, MAX_BATCH_SAMPLES rows a transaction; on failure the rows
        stay queued for the next wake-up. Events queued meanwhile are written first (an
        outage's ticket waits for no evidence)."""
        backlog = self.samples_waiting
        while self.samples_waiting:
            if self.stopping.is_set() and self._past_stop_budget():
                break
            # Off the queue while written (rows queued meanwhile past the cap then drop
            # newer ones, not these); put back in front if the write fails.
            runs = self._take_probe_runs(MAX_BATCH_SAMPLES)
            calls = self.call_samples[: MAX_BATCH_SAMPLES - sum(map(len, runs))]
            del self.call_samples[: len(calls)]
            started = time.monotonic()
            try:
                await self._insert_samples(sample_rows(runs), calls)
            except Exception as exc:
                self.probe_runs.extendleft(reversed(runs))
                self._probe_rows += sum(map(len, runs))
                self.call_samples[:0] = calls
                self.errors += 1
                log.error(
                    "samples_write_failed", error=repr(exc)[:200], pending=self.samples_waiting
                )
                return
            if self.pending:
                await self.flush()
            elif self.samples_waiting and not self.stopping.is_set():
                # A backlog takes at most half the loop: the probes get as long as it took
                # (at a stop no probe is left to wait for).
                await asyncio.sleep(time.monotonic() - started)
        if backlog >= TRIM_AFTER_EVENTS:
            heap.trim_soon()
