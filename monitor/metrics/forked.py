"""/metrics written by a forked child: the probe loop only forks and passes bytes on.

Writing the exposition is pure Python: at 100,000 trunks ~0.6 s of it, which the event
loop, already 65–80 % busy with probes, could only give in steps that made every probe
due meanwhile late (bench/scale.py: p99 50–250 ms during a scrape, ≤ 5 ms outside one).
A forked child has the whole process as it was at the fork, a consistent snapshot for
free, and a core of its own: it writes and gzips the text and sends it through a pipe in
frames; the loop forwards the frames to the client. The loop's share is the fork itself
(copying the page tables: a few ms at a few hundred MB) and the compressed bytes.

A frame is an 8-byte big-endian length and that many bytes; a zero length says the child
wrote everything. A body without it (the child failed, or was killed) is cut off, so the
client sees a broken response, never a short exposition that looks whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import signal
import struct
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import structlog

from monitor.metrics.exporter import Exporter
from monitor.metrics.exposition import ExpositionFormat

log = structlog.get_logger(__name__)

FRAME = struct.Struct(">Q")
# Uncompressed text per frame (gzip makes it ~10x smaller). Frames are read whole.
FRAME_TEXT_BYTES = 1 << 20
# The pipe's kernel buffer (Linux F_SETPIPE_SZ): one compressed frame fits.
PIPE_BYTES = 1 << 20
F_SETPIPE_SZ = 1031  # <linux/fcntl.h>; Python 3.11's fcntl does not name it
# A child that has not finished by then is stuck (the 100,000-trunk one takes ~1 s).
RENDER_TIMEOUT_S = 60.0
# Children writing at once: more scrapes than this wait for one to end.
MAX_CHILDREN = 4
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class RenderFailed(Exception):
    """The child ended without writing the whole exposition."""


class ForkedRenderer:
    """Forks a child per scrape (`open`); at most MAX_CHILDREN at once.

    `make_gzip` gives a fresh gzip compressor (zlib's or ISA-L's compressobj).
    """

    def __init__(self, exporter: Exporter, make_gzip: Callable[[], Any]) -> None:
        self.exporter = exporter
        self.make_gzip = make_gzip
        self._slots = asyncio.Semaphore(MAX_CHILDREN)

    async def open(self, fmt: ExpositionFormat, gzip: bool) -> Render:
        """Fork a child writing this exposition. OSError: the fork was refused."""
        await self._slots.acquire()
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            self._slots.release()
            raise
        try:
            with contextlib.suppress(OSError):  # a smaller pipe only means more wake-ups
                fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_BYTES)
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            self._slots.release()
            raise
        if pid == 0:
            os.close(read_fd)
            self._child(write_fd, fmt, gzip)
        os.close(write_fd)
        return Render(pid, read_fd, self._slots)

    def _child(self, fd: int, fmt: ExpositionFormat, gzip: bool) -> NoReturn:
        code = 1
        try:
            # The loop's signal handlers are the parent's: a signal to the child must not
            # reach the parent's wake-up fd (a SIGHUP there would reload the parent).
            signal.set_wakeup_fd(-1)
            for sig in _SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            gc.disable()  # a short life; collecting would touch (and copy) every page
            self._write(fd, fmt, gzip)
            code = 0
        except BaseException:
            with contextlib.suppress(BaseException):
                os.write(2, f"metrics render child failed:\n{traceback.format_exc()}".encode())
        finally:
            os._exit(code)

    def _write(self, fd: int, fmt: ExpositionFormat, gzip: bool) -> None:
        z = self.make_gzip() if gzip else None
        exporter = self.exporter
        batch: list[bytes] = []
        size = 0
        for piece in exporter.render(exporter.snapshot(), fmt):
            data = piece.encode()
            batch.append(data)
            size += len(data)
            if size >= FRAME_TEXT_BYTES:
                text = b"".join(batch)
                _send(fd, z.compress(text) if z is not None else text)
                batch.clear()
                size = 0
        text = b"".join(batch)
        _send(fd, z.compress(text) + z.flush() if z is not None else text)
        _write_all(fd, FRAME.pack(0))


class Render:
    """One child's exposition: `chunks` reads it, `close` (always) reaps the child."""

    def __init__(self, pid: int, read_fd: int, slots: asyncio.Semaphore) -> None:
        self.pid = pid
        self._fd: int | None = read_fd
        self._slots: asyncio.Semaphore | None = slots
        self._transport: asyncio.ReadTransport | None = None
        self.finished = False
        self.exit_status: int | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, a frame at a time; RenderFailed if the child does not finish it."""
        assert self._fd is not None, "read once"
        reader = asyncio.StreamReader(limit=PIPE_BYTES)
        pipe = os.fdopen(self._fd, "rb", buffering=0)
        self._fd = None  # the pipe object owns it now
        self._transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            async with asyncio.timeout(RENDER_TIMEOUT_S):
                while size := FRAME.unpack(await reader.readexactly(FRAME.size))[0]:
                    yield await reader.readexactly(size)
        except (asyncio.IncompleteReadError, TimeoutError) as exc:
            raise RenderFailed(f"the child stopped writing: {exc!r}") from None
        self.finished = True

    async def close(self) -> None:
        """Close the pipe and reap the child, killing it if it has not finished."""
        if self._slots is None:
            return
        slots, self._slots = self._slots, None
        try:
            if self._transport is not None:
                self._transport.close()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.exit_status = await _reap(self.pid, kill=not self.finished)
            if not self.finished:
                log.warning("metrics_render_failed", pid=self.pid, exit_status=self.exit_status)
        finally:
            slots.release()


def _send(fd: int, data: bytes) -> None:
    if data:  # an empty frame would read as the end
        _write_all(fd, FRAME.pack(len(data)) + data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _reap(pid: int, *, kill: bool) -> int | None:
    """Wait for the child (killing it first if asked); its exit status, None if unknown."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(2_000):  # ~2 s: it has closed the pipe, or was killed
        try:
            done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: no wait)
        except ChildProcessError:  # reaped elsewhere
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        await asyncio.sleep(0.001)
    return None
