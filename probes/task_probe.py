"""The shell the endpoint probes share: one asyncio task per check, a result always
delivered (never an exception), and the connect step (TCP, then TLS) with its timings."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from probes.clock import SYSTEM_CLOCK, Clock
from probes.probe import ResultCallback
from probes.result import Outcome, ProbeResult

# Failure details are short: they reach logs, tickets and outage records.
MAX_DETAIL: Final = 160
NS_PER_S: Final = 1e9


def cut(text: str) -> str:
    return text[:MAX_DETAIL]


class ProbeFailure(Exception):
    """A network failure, as the outcome it is; raised inside a check, never out of one."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = cut(detail)


def failure_of(exc: BaseException, where: str) -> ProbeFailure:
    """The outcome an exception of a connect/read means (the one mapping for every probe)."""
    if isinstance(exc, ProbeFailure):
        return exc
    if isinstance(exc, TimeoutError):
        return ProbeFailure(Outcome.TIMEOUT, f"{where}: no answer in time")
    if isinstance(exc, socket.gaierror):
        return ProbeFailure(Outcome.DNS, f"{where}: {exc.strerror or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return ProbeFailure(Outcome.REFUSED, f"{where}: connection refused")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProbeFailure(Outcome.TLS, f"{where}: {exc.verify_message or exc.reason}")
    if isinstance(exc, ssl.SSLError):
        return ProbeFailure(Outcome.TLS, f"{where}: {exc.reason or type(exc).__name__}")
    if isinstance(exc, PermissionError | OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return ProbeFailure(Outcome.NOT_PERMITTED, f"{where}: {exc.strerror}")
    if isinstance(exc, asyncio.IncompleteReadError | asyncio.LimitOverrunError):
        return ProbeFailure(Outcome.PARSE_ERROR, f"{where}: answer cut short or too long")
    if isinstance(exc, OSError):
        return ProbeFailure(Outcome.NETWORK, f"{where}: {exc.strerror or type(exc).__name__}")
    raise exc  # a bug: the task shell reports it as probe_crashed


def client_context(ca_file: Path | None, *, verify: bool = True) -> ssl.SSLContext:
    """Verifies the chain against `ca_file` (None: the system's CAs) and the server name."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(slots=True)
class Connected:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    connect_s: float
    tls_s: float | None


async def connect(
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    sni: str | None,
    clock: Clock,
) -> Connected:
    """TCP connect, then the TLS handshake if `tls`; each timed. Raises OSError/ssl errors."""
    t0 = clock.monotonic_ns()
    reader, writer = await asyncio.open_connection(host, port)
    t1 = clock.monotonic_ns()
    if tls is None:
        return Connected(reader, writer, (t1 - t0) / NS_PER_S, None)
    try:
        # An IP address is checked against the certificate's IP SANs; no SNI is sent for it.
        await writer.start_tls(tls, server_hostname=sni or host)
    except BaseException:
        writer.transport.abort()
        raise
    return Connected(reader, writer, (t1 - t0) / NS_PER_S, (clock.monotonic_ns() - t1) / NS_PER_S)


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


class TaskProbe(ABC):
    """A probe whose check is one coroutine; at most one in flight (timeout < interval)."""

    kind = "task"

    def __init__(self, trunk: str, timeout: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.trunk = trunk  # the target's name: the pipeline keys everything by it
        self.where = trunk  # what failure details name: host:port, set by the subclass
        self.timeout = timeout
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self, on_done: ResultCallback) -> None:
        if self._task is not None and not self._task.done():
            busy = self.result(Outcome.PROBE_CRASHED, self.clock.wall_ns(), "still running")
            on_done(busy)
            return
        self._task = asyncio.get_running_loop().create_task(self._run(on_done))

    async def _run(self, on_done: ResultCallback) -> None:
        sent = self.clock.wall_ns()
        try:
            async with asyncio.timeout(self.timeout):
                result = await self.check(sent)
        except asyncio.CancelledError:
            on_done(self.result(Outcome.PROBE_CRASHED, sent, "cancelled"))
            raise
        except Exception as exc:
            try:
                failure = failure_of(exc, self.where)
            except Exception:
                on_done(self.result(Outcome.PROBE_CRASHED, sent, f"bug: {type(exc).__name__}"))
                return
            result = self.result(failure.outcome, sent, failure.detail)
        on_done(result)

    @abstractmethod
    async def check(self, sent_wall_ns: int) -> ProbeResult:
        """One check of the target (raising ProbeFailure or a socket error on failure)."""

    def result(self, outcome: Outcome, sent_wall_ns: int, detail: str | None = None) -> ProbeResult:
        return ProbeResult(self.trunk, self.kind, outcome, sent_wall_ns, detail=detail)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
