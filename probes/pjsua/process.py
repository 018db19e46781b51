"""One pjsua2 worker subprocess seen from asyncio: start, place calls, count, stop, or die.

A worker that exits, writes something that is not the protocol, or overruns a call's deadline is
finished: it is killed, and every call in flight on it fails with WorkerCrashed (a probe turns
that into `probe_crashed`, which never counts against a trunk). The pool decides about restarts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import structlog

from probes.pjsua.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    CallCommand,
    CallReport,
    Count,
    Counts,
    Event,
    Fatal,
    Hangup,
    Init,
    Log,
    ProtocolError,
    Ready,
    Shutdown,
    decode_event,
    encode,
)

log = structlog.get_logger("probes.pjsua")

# A cold worker (interpreter, pjsua2, endpoint, transport) starts in ~0.3 s here; 10 s covers a
# loaded machine without hanging a probe for long on a worker that will never come up.
START_TIMEOUT_S = 10.0
# A graceful stop hangs up calls (the worker gives them 3 s) and exits; then it is killed.
STOP_TIMEOUT_S = 5.0
# Lines of a worker's stderr kept to explain its death (assertion messages end up there).
STDERR_TAIL_LINES = 20
# The directory holding the `probes` package, so `python -m probes.pjsua.worker` imports the
# same code as this process whether or not trunkwatch is installed.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


class PoolError(Exception):
    """The worker machinery failed (never the trunk): the call's outcome is probe_crashed."""


class WorkerCrashed(PoolError):
    """The worker died, broke the protocol or hung while the call was in flight."""


class WorkerStartError(PoolError):
    """A worker could not be started (pjsua2 missing, port taken, init refused)."""


class PoolClosed(PoolError):
    """The pool is stopping or stopped."""


IncomingHandler = Callable[[CallReport], None]


class WorkerProcess:
    """A running `python -m probes.pjsua.worker` and the calls it carries."""

    def __init__(
        self,
        init: Init,
        *,
        name: str = "pjsua",
        python: str = sys.executable,
        on_incoming: IncomingHandler | None = None,
    ) -> None:
        self.init = init
        self.name = name
        self.python = python
        self.on_incoming = on_incoming
        self.proc: asyncio.subprocess.Process | None = None
        self.ready_info: Ready | None = None
        self.pending: dict[int, asyncio.Future[CallReport]] = {}
        self.counts_pending: dict[int, asyncio.Future[Counts]] = {}
        self.reserved = 0  # calls assigned to this worker, including ones not yet sent
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.death: str | None = None  # why it is gone; None while alive
        self.stopping = False
        self._ready: asyncio.Future[Ready] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._exited = asyncio.Event()
        self._next_count_id = 1

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> Ready:
        """Spawn and initialise; WorkerStartError if it does not come up."""
        loop = asyncio.get_running_loop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_SOURCE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "probes.pjsua.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=MAX_LINE_BYTES + 1,
                start_new_session=True,  # a terminal's Ctrl-C is for us, not for the workers
            )
        except OSError as exc:
            self.death = f"cannot run {self.python}: {exc}"
            self._exited.set()
            raise WorkerStartError(self.death) from exc
        self._ready = loop.create_future()
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"{self.name}-stdout"),
            asyncio.create_task(self._read_stderr(), name=f"{self.name}-stderr"),
        ]
        self._send(self.init)
        try:
            async with asyncio.timeout(timeout_s):
                ready = await self._ready
        except TimeoutError:
            self.kill(f"no ready message within {timeout_s:g} s")
            raise WorkerStartError(self.describe_death()) from None
        except WorkerCrashed as exc:
            raise WorkerStartError(str(exc)) from None
        if ready.version != PROTOCOL_VERSION:
            self.kill(f"protocol version {ready.version}, expected {PROTOCOL_VERSION}")
            raise WorkerStartError(self.describe_death())
        self.ready_info = ready
        return ready

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the worker to hang up and exit; kill it if it takes longer than `timeout_s`."""
        self.stopping = True
        if self.proc is None or self.death is not None:
            await self._join()
            return
        self._send(Shutdown())
        try:
            async with asyncio.timeout(timeout_s):
                await self._exited.wait()
        except TimeoutError:
            self.kill(f"did not exit within {timeout_s:g} s of shutdown")
        await self._join()

    def kill(self, why: str) -> None:
        """SIGKILL the worker now; its calls in flight fail with WorkerCrashed(why)."""
        if self.death is None:
            self.death = why
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
        self._fail_all()

    async def _join(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                await self.proc.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_exited(self) -> None:
        await self._exited.wait()

    @property
    def alive(self) -> bool:
        return self.death is None and self.proc is not None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def sip_port(self) -> int | None:
        return self.ready_info.sip_port if self.ready_info is not None else None

    def describe_death(self) -> str:
        parts = [f"pjsua worker {self.name} (pid {self.pid}): {self.death or 'alive'}"]
        if self.proc is not None and self.proc.returncode is not None:
            code = self.proc.returncode
            parts.append(f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}")
        if self.stderr_tail:
            parts.append("stderr: " + " | ".join(list(self.stderr_tail)[-3:]))
        return "; ".join(parts)

    # --- requests -------------------------------------------------------------------------

    async def call(self, cmd: CallCommand, deadline_s: float) -> CallReport:
        """Place one call (cmd.id must be unique on this worker) and await its report.

        Raises WorkerCrashed if the worker dies or the report does not come within `deadline_s`
        (then the worker is considered hung and is killed, failing its other calls too).
        """
        if not self.alive:
            raise WorkerCrashed(self.describe_death())
        future: asyncio.Future[CallReport] = asyncio.get_running_loop().create_future()
        self.pending[cmd.id] = future
        try:
            self._send(cmd)
            try:
                async with asyncio.timeout(deadline_s):
                    return await asyncio.shield(future)
            except TimeoutError:
                self.kill(f"call {cmd.id} got no report within {deadline_s:g} s")
                raise WorkerCrashed(self.describe_death()) from None
            except asyncio.CancelledError:
                if self.alive:
                    self._send(Hangup(id=cmd.id))  # the report, when it comes, is dropped
                raise
        finally:
            self.pending.pop(cmd.id, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "exception never retrieved" warning
            else:
                future.cancel()

    async def count(self, timeout_s: float = 5.0) -> Counts:
        """Live pjsua2 object counts of this worker (leak checks)."""
        if not self.alive:
            raise WorkerCrashed(self.describe_death())
        request_id = self._next_count_id
        self._next_count_id += 1
        future: asyncio.Future[Counts] = asyncio.get_running_loop().create_future()
        self.counts_pending[request_id] = future
        try:
            self._send(Count(id=request_id))
            async with asyncio.timeout(timeout_s):
                return await future
        finally:
            self.counts_pending.pop(request_id, None)

    def _send(self, message: Init | CallCommand | Hangup | Count | Shutdown) -> None:
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.is_closing():
            return
        try:
            self.proc.stdin.write(encode(message))
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.kill(f"stdin closed: {exc}")

    # --- reading ----------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        reader = self.proc.stdout
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the limit
                    self.kill(f"protocol line longer than {MAX_LINE_BYTES} bytes")
                    break
                if not line:
                    break
                try:
                    event = decode_event(line)
                except ProtocolError as exc:
                    self.kill(f"protocol error: {exc}")
                    break
                self._dispatch(event)
        except asyncio.CancelledError:
            # The loop is going away without stop(): never leave a worker behind.
            self.kill("abandoned: its event loop is shutting down")
            raise
        finally:
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    await self.proc.wait()
            if self.death is None:
                self.death = "exited" if self.stopping else "died unexpectedly"
            self._fail_all()
            self._exited.set()

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            try:
                line = await self.proc.stderr.readline()
            except ValueError:
                continue  # an absurd line: skip it, keep draining so the worker never blocks
            if not line:
                return
            text = line.decode("utf-8", "backslashreplace").rstrip()
            if text:
                self.stderr_tail.append(text)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, CallReport):
            if event.direction == "in":
                if self.on_incoming is not None:
                    self.on_incoming(event)
                return
            future = self.pending.get(event.id)
            if future is not None and not future.done():
                future.set_result(event)
            else:
                log.debug("pjsua_report_unclaimed", worker=self.name, id=event.id)
        elif isinstance(event, Counts):
            waiter = self.counts_pending.get(event.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(event)
        elif isinstance(event, Log):
            method = getattr(log, event.level)
            method(event.event, worker=self.name, pid=self.pid, **event.fields)
        elif isinstance(event, Ready):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(event)
        elif isinstance(event, Fatal):
            self.kill(f"worker refused to start: {event.error}")

    def _fail_all(self) -> None:
        error = WorkerCrashed(self.describe_death())
        waiters: list[asyncio.Future[CallReport] | asyncio.Future[Counts] | asyncio.Future[Ready]]
        waiters = [*self.pending.values(), *self.counts_pending.values()]
        if self._ready is not None:
            waiters.append(self._ready)
        for future in waiters:
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: the awaiting side may already be gone


def with_id(cmd: CallCommand, call_id: int) -> CallCommand:
    return replace(cmd, id=call_id)
