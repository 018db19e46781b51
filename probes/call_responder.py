"""The far end of test calls: answers calls (and OPTIONS) in a supervised pjsua2 worker.

Put behind a DID, a test call crosses the carrier and comes back here: the responder answers
after an optional ring delay and echoes the received audio (so the caller hears its own
reference tone back) or plays the reference tone itself; it records what arrives and reports,
per call, whether the caller's tone was heard. pjsua answers OPTIONS with 200 on its own.

One worker process answers at most PJSUA_MAX_CALLS (4) calls at once; a fifth gets 486 from
pjsua. A crashed worker is restarted on the same port.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from probes.pjsua.process import START_TIMEOUT_S, STOP_TIMEOUT_S, WorkerProcess, WorkerStartError
from probes.pjsua.protocol import (
    G711_CODECS,
    AnswerConfig,
    AnswerMode,
    CallReport,
    Counts,
    Init,
)

log = structlog.get_logger("probes.call_responder")

DEFAULT_SIP_PORT = 5060
# A caller that never hangs up must not hold one of the worker's 4 call slots for ever.
DEFAULT_MAX_CALL_S = 300.0
# Reports of finished calls kept for inspection (tests, the CLI's summary).
MAX_KEPT_REPORTS = 1_000
# Restart back-off after a crash (doubling while crashes repeat within CRASH_WINDOW_S).
RESTART_BACKOFF_MIN_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
CRASH_WINDOW_S = 60.0


@dataclass(slots=True, frozen=True)
class ResponderSettings:
    """How the responder listens and answers."""

    address: str = "127.0.0.1"
    port: int = DEFAULT_SIP_PORT
    public_address: str | None = None  # advertised in Contact (behind NAT)
    media_address: str | None = None  # None: `address`
    media_public_address: str | None = None  # advertised in SDP
    rtp_port: int = 30_000
    rtp_port_range: int = 16  # 4 calls x (RTP + RTCP), doubled for ports taken by others
    mode: AnswerMode = "echo"
    ring_s: float = 0.0
    status: int = 200  # answer every call with this status instead (486, 503... for tests)
    max_call_s: float | None = DEFAULT_MAX_CALL_S
    codecs: tuple[str, ...] = G711_CODECS
    detect_tone: bool = True
    user: str = "responder"
    user_agent: str = "trunkwatch-responder"
    rx_drop_pct: int = 0  # pjmedia loss injection: drop this % of received / sent RTP
    tx_drop_pct: int = 0
    pj_log_level: int = 1

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699 or 100 <= self.status < 200:
            raise ValueError(f"answer status must be a final status 200..699, got {self.status}")
        if self.ring_s < 0:
            raise ValueError("ring_s must not be negative")
        if self.max_call_s is not None and self.max_call_s <= 0:
            raise ValueError("max_call_s must be positive (or None)")
        for pct in (self.rx_drop_pct, self.tx_drop_pct):
            if not 0 <= pct <= 100:
                raise ValueError("drop percentages must be 0..100")

    def init(self) -> Init:
        return Init(
            sip_address=self.address,
            sip_port=self.port,
            sip_public_address=self.public_address,
            media_address=self.media_address or self.address,
            media_public_address=self.media_public_address,
            rtp_port=self.rtp_port,
            rtp_port_range=self.rtp_port_range,
            codecs=self.codecs,
            user=self.user,
            user_agent=self.user_agent,
            pj_log_level=self.pj_log_level,
            answer=AnswerConfig(
                mode=self.mode,
                ring_s=self.ring_s,
                status=self.status,
                max_call_s=self.max_call_s,
                detect_tone=self.detect_tone,
            ),
            rx_drop_pct=self.rx_drop_pct,
            tx_drop_pct=self.tx_drop_pct,
        )


CallHandler = Callable[[CallReport], None]


class CallResponder:
    """A supervised responder worker: `start`, `stop`, and the reports of answered calls."""

    def __init__(self, settings: ResponderSettings, *, on_call: CallHandler | None = None) -> None:
        self.settings = settings
        self.on_call = on_call
        self.reports: collections.deque[CallReport] = collections.deque(maxlen=MAX_KEPT_REPORTS)
        self.restarts = 0
        self._worker: WorkerProcess | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._changed = asyncio.Event()

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the worker; WorkerStartError if it cannot (port taken, pjsua2 missing)."""
        self._worker = await self._spawn(timeout_s)
        self._supervisor = asyncio.create_task(self._supervise(), name="call-responder")
        log.info(
            "call_responder_started",
            address=self.settings.address,
            port=self.sip_port,
            mode=self.settings.mode,
            pid=self._worker.pid,
        )

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._worker is not None:
            await self._worker.stop(timeout_s)

    async def __aenter__(self) -> CallResponder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def sip_port(self) -> int:
        worker = self._worker
        if worker is None or worker.sip_port is None:
            raise RuntimeError("the responder is not running")
        return worker.sip_port

    @property
    def uri(self) -> str:
        return f"sip:{self.settings.user}@{self.settings.address}:{self.sip_port}"

    @property
    def worker(self) -> WorkerProcess | None:
        return self._worker

    async def wait_calls(self, count: int, timeout_s: float) -> list[CallReport]:
        """The first `count` call reports, waiting up to `timeout_s` for them (TimeoutError)."""
        async with asyncio.timeout(timeout_s):
            while len(self.reports) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.reports)[:count]

    async def counts(self) -> Counts:
        if self._worker is None:
            raise RuntimeError("the responder is not running")
        return await self._worker.count()

    # --- internals ------------------------------------------------------------------------

    async def _spawn(self, timeout_s: float) -> WorkerProcess:
        worker = WorkerProcess(self.settings.init(), name="responder", on_incoming=self._incoming)
        await worker.start(timeout_s)
        return worker

    def _incoming(self, report: CallReport) -> None:
        self.reports.append(report)
        tone = report.tone
        last = report.samples[-1] if report.samples else None
        log.info(
            "call_responder_call",
            remote=report.remote_uri,
            status=report.final_status,
            codec=report.codec,
            seconds=(
                round(report.end_s - report.answer_s, 1)
                if report.end_s is not None and report.answer_s is not None
                else None
            ),
            rx_packets=last.rx_packets if last else 0,
            rx_lost=last.rx_lost if last else 0,
            tone_coverage=round(tone.coverage, 2) if tone else None,
            ended_by=report.ended_by,
        )
        if self.on_call is not None:
            self.on_call(report)
        self._changed.set()

    async def _supervise(self) -> None:
        backoff = 0.0
        while not self._stopping:
            worker = self._worker
            assert worker is not None
            started = time.monotonic()
            await worker.wait_exited()
            if self._stopping:
                return
            lived = time.monotonic() - started
            backoff = (
                min(RESTART_BACKOFF_MAX_S, max(RESTART_BACKOFF_MIN_S, backoff * 2))
                if lived < CRASH_WINDOW_S
                else 0.0
            )
            log.error("call_responder_died", cause=worker.describe_death(), restart_in_s=backoff)
            while not self._stopping:
                await asyncio.sleep(backoff)
                try:
                    self._worker = await self._spawn(START_TIMEOUT_S)
                    self.restarts += 1
                    break
                except WorkerStartError as exc:
                    log.error("call_responder_restart_failed", error=str(exc))
                    backoff = min(RESTART_BACKOFF_MAX_S, max(RESTART_BACKOFF_MIN_S, backoff * 2))
