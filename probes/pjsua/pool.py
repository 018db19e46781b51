"""A pool of pjsua2 worker processes for test calls, growing to the configured concurrency.

The pjsua2 wheel caps a process at PJSUA_MAX_CALLS = 4 calls, so `max_calls` concurrent calls
need ceil(max_calls / calls_per_worker) workers. Each worker has a fixed slot: slot i gets SIP
port `sip_port + i` (when a base port is set) and its own RTP port block, so workers never
compete for ports and a restarted worker gets the same ones. Workers start on demand (at least
`min_workers` at start) and stay. A worker that dies fails only its calls in flight
(WorkerCrashed -> probe_crashed) and is restarted in its slot, after a back-off if it keeps dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import structlog

from probes.pjsua.process import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    PoolClosed,
    WorkerCrashed,
    WorkerProcess,
    WorkerStartError,
)
from probes.pjsua.protocol import (
    G711_CODECS,
    PJSUA_MAX_CALLS,
    CallCommand,
    CallReport,
    Counts,
    Init,
)

log = structlog.get_logger("probes.pjsua")

# pjsua's spelling of "every local address" (an empty bound address).
ANY_ADDRESS = ""

# RTP ports per worker slot: 4 calls x (RTP + RTCP), doubled so a port some other program
# holds can be skipped without leaving the slot's block (pjsua tries the next pair).
RTP_PORTS_PER_WORKER = 16
# The report comes this long after answer_timeout + max_call_s at the latest: the worker's own
# 3 s hang-up grace, recording analysis, registration and queueing in the worker. Past it the
# worker is taken as hung and killed.
DEADLINE_SLACK_S = 15.0
# Restart back-off for a slot whose worker keeps dying: the first restart is immediate; one that
# dies within CRASH_WINDOW_S of its start doubles the wait, up to RESTART_BACKOFF_MAX_S.
RESTART_BACKOFF_MIN_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
CRASH_WINDOW_S = 60.0


@dataclass(slots=True, frozen=True)
class PoolSettings:
    """How the pool's workers run; addresses None mean "any" (pjsua picks)."""

    max_calls: int = 8  # concurrent calls across the pool (others wait for a slot)
    calls_per_worker: int = PJSUA_MAX_CALLS
    min_workers: int = 1
    sip_address: str | None = None
    sip_port: int = 0  # 0: every worker takes any free port; else slot i uses sip_port + i
    sip_public_address: str | None = None
    media_address: str | None = None
    media_public_address: str | None = None
    # Slot i uses RTP_PORTS_PER_WORKER ports from here + 16 i: below the kernel's ephemeral
    # range (32768+), so an outgoing socket of another program rarely holds one.
    rtp_port_min: int = 16_384
    codecs: tuple[str, ...] = G711_CODECS  # default offer; each call may reorder or narrow it
    user: str = "trunkwatch"
    user_agent: str = "trunkwatch"
    sample_interval_s: float = 0.1  # stream statistics sampling: >= 5 Hz for 200 ms windows
    pj_log_level: int = 1
    # Capture our own RTP for echo RTT and RFC 3550 jitter (needs CAP_NET_RAW; without it
    # the worker logs pjsua_rtp_capture_unavailable and RTT comes from RTCP only).
    capture_rtp: bool = True
    deadline_slack_s: float = DEADLINE_SLACK_S  # past answer + max call: the worker hung
    start_timeout_s: float = START_TIMEOUT_S
    stop_timeout_s: float = STOP_TIMEOUT_S
    python: str = field(default=sys.executable)

    def __post_init__(self) -> None:
        if not 1 <= self.calls_per_worker <= PJSUA_MAX_CALLS:
            raise ValueError(
                f"calls_per_worker must be 1..{PJSUA_MAX_CALLS} (the pjsua2 wheel's call cap)"
            )
        if self.max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        if not 0 <= self.min_workers <= self.max_workers:
            raise ValueError(f"min_workers must be 0..{self.max_workers}")
        if not 0 < self.sample_interval_s <= 0.2:
            raise ValueError("sample_interval_s must be in (0, 0.2]: 200 ms windows need >= 5 Hz")
        top = self.rtp_port_min + RTP_PORTS_PER_WORKER * self.max_workers - 1
        if self.rtp_port_min < 1024 or top > 65_535:
            raise ValueError(f"RTP ports {self.rtp_port_min}..{top} must be within 1024..65535")
        if self.sip_port and self.sip_port + self.max_workers - 1 > 65_535:
            raise ValueError("SIP ports of all workers must be <= 65535")

    @property
    def max_workers(self) -> int:
        return math.ceil(self.max_calls / self.calls_per_worker)

    def rtp_ports(self, slot: int) -> range:
        base = self.rtp_port_min + RTP_PORTS_PER_WORKER * slot
        return range(base, base + RTP_PORTS_PER_WORKER)

    def init_for(self, slot: int) -> Init:
        """The init message of the worker in `slot`."""
        rtp = self.rtp_ports(slot)
        return Init(
            sip_address=self.sip_address or ANY_ADDRESS,
            sip_port=self.sip_port + slot if self.sip_port else 0,
            sip_public_address=self.sip_public_address,
            media_address=self.media_address or ANY_ADDRESS,
            media_public_address=self.media_public_address,
            rtp_port=rtp.start,
            rtp_port_range=len(rtp),
            codecs=self.codecs,
            user=self.user,
            user_agent=self.user_agent,
            sample_interval_s=self.sample_interval_s,
            pj_log_level=self.pj_log_level,
            capture_rtp=self.capture_rtp,
        )


@dataclass(slots=True, frozen=True)
class PoolStats:
    workers: int  # running (or starting)
    calls_in_flight: int
    calls_waiting: int  # waiting for a free call slot
    calls_placed: int
    crashes: int  # workers that died unexpectedly
    restarts: int


@dataclass(slots=True)
class _Slot:
    index: int
    worker: WorkerProcess | None = None
    started_at: float = 0.0
    backoff_s: float = 0.0
    restarting: asyncio.Task[None] | None = None


class WorkerPool:
    """pjsua2 worker processes placing test calls; `call` is the only thing probes use."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._slots = [_Slot(i) for i in range(settings.max_workers)]
        self._capacity = asyncio.Semaphore(settings.max_calls)
        self._ids = itertools.count(1)
        self._closed = False
        self._started = False
        self._lock = asyncio.Lock()  # serialises worker starts per slot choice
        self._in_flight = 0
        self._waiting = 0
        self._placed = 0
        self._crashes = 0
        self._restarts = 0
        self._watchers: set[asyncio.Task[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start `min_workers` workers; WorkerStartError if the first cannot start."""
        if self._started:
            return
        self._started = True
        for slot in self._slots[: self.settings.min_workers]:
            await self._start_worker(slot)

    async def stop(self) -> None:
        """Hang up everything and stop all workers (calls in flight get WorkerCrashed)."""
        self._closed = True
        for slot in self._slots:
            if slot.restarting is not None:
                slot.restarting.cancel()
        workers = [s.worker for s in self._slots if s.worker is not None]
        await asyncio.gather(*(w.stop(self.settings.stop_timeout_s) for w in workers))
        for task in list(self._watchers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for slot in self._slots:
            if slot.restarting is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await slot.restarting

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- calls ----------------------------------------------------------------------------

    async def call(self, cmd: CallCommand) -> CallReport:
        """Place one call on some worker and await its report (the pool assigns `cmd.id`).

        Waits for a free slot when `max_calls` calls are in flight. Raises PoolError
        (WorkerCrashed, WorkerStartError, PoolClosed) when the machinery, not the trunk, failed.
        """
        if self._closed:
            raise PoolClosed("the call pool is stopped")
        self._waiting += 1
        try:
            await self._capacity.acquire()
        finally:
            self._waiting -= 1
        try:
            if self._closed:
                raise PoolClosed("the call pool is stopped")
            worker = await self._assign()
            self._in_flight += 1
            try:
                call_id = next(self._ids)
                deadline = cmd.answer_timeout_s + cmd.max_call_s + self.settings.deadline_slack_s
                self._placed += 1
                return await worker.call(replace(cmd, id=call_id), deadline)
            finally:
                self._in_flight -= 1
                worker.reserved -= 1
        finally:
            self._capacity.release()

    async def _assign(self) -> WorkerProcess:
        """A worker with a free call slot, starting one if every running worker is full."""
        cap = self.settings.calls_per_worker
        async with self._lock:
            running = [
                s.worker
                for s in self._slots
                if s.worker is not None and s.worker.alive and s.worker.reserved < cap
            ]
            if running:
                worker = min(running, key=lambda w: w.reserved)
                worker.reserved += 1
                return worker
            slot = next((s for s in self._slots if s.worker is None and s.restarting is None), None)
            if slot is None:
                # Every slot is running full or waiting to restart after crashes.
                raise WorkerCrashed("no call worker available (workers restarting after crashes)")
            worker = await self._start_worker(slot)
            worker.reserved += 1
            return worker

    async def _start_worker(self, slot: _Slot) -> WorkerProcess:
        worker = WorkerProcess(
            self.settings.init_for(slot.index),
            name=f"call-{slot.index}",
            python=self.settings.python,
        )
        began = time.monotonic()
        try:
            ready = await worker.start(self.settings.start_timeout_s)
        except WorkerStartError as exc:
            log.error("pjsua_worker_start_failed", slot=slot.index, error=str(exc))
            raise
        slot.worker = worker
        slot.started_at = time.monotonic()
        log.info(
            "pjsua_worker_started",
            slot=slot.index,
            pid=ready.pid,
            sip_port=ready.sip_port,
            start_s=round(slot.started_at - began, 3),
        )
        watcher = asyncio.create_task(self._watch(slot, worker), name=f"watch-call-{slot.index}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return worker

    async def _watch(self, slot: _Slot, worker: WorkerProcess) -> None:
        await worker.wait_exited()
        if slot.worker is worker:
            slot.worker = None
        if self._closed or worker.stopping:
            return
        self._crashes += 1
        lived = time.monotonic() - slot.started_at
        slot.backoff_s = (
            min(RESTART_BACKOFF_MAX_S, max(RESTART_BACKOFF_MIN_S, slot.backoff_s * 2))
            if lived < CRASH_WINDOW_S
            else 0.0
        )
        log.error(
            "pjsua_worker_died",
            slot=slot.index,
            cause=worker.describe_death(),
            lived_s=round(lived, 1),
            restart_in_s=slot.backoff_s,
        )
        slot.restarting = asyncio.create_task(self._restart(slot), name=f"restart-{slot.index}")

    async def _restart(self, slot: _Slot) -> None:
        try:
            delay = slot.backoff_s
            while not self._closed:
                await asyncio.sleep(delay)
                if self._closed:
                    return
                try:
                    async with self._lock:
                        if slot.worker is None:
                            await self._start_worker(slot)
                    self._restarts += 1
                    return
                except WorkerStartError:
                    delay = min(RESTART_BACKOFF_MAX_S, max(RESTART_BACKOFF_MIN_S, delay * 2))
        finally:
            slot.restarting = None

    # --- introspection ----------------------------------------------------------------------

    @property
    def workers(self) -> Sequence[WorkerProcess]:
        return [s.worker for s in self._slots if s.worker is not None]

    def stats(self) -> PoolStats:
        return PoolStats(
            workers=len(self.workers),
            calls_in_flight=self._in_flight,
            calls_waiting=self._waiting,
            calls_placed=self._placed,
            crashes=self._crashes,
            restarts=self._restarts,
        )

    async def counts(self) -> list[Counts]:
        """Live pjsua2 object counts of every running worker (leak checks)."""
        return list(await asyncio.gather(*(w.count() for w in self.workers if w.alive)))
