"""The monitor's HTTP side: /metrics (OpenMetrics and gzip negotiated), /healthz and /readyz.

A scrape never holds the event loop for long: the snapshot is copied in slices
(exporter.SNAPSHOT_SLICE trunks) and the text is written a few exporter pieces at a time,
handing the loop back between steps of 1 ms (monitor.metrics.pacing); gzip runs on a
thread of its own (`Packer`: zlib and ISA-L release the GIL while they compress) on
batches of GZIP_BATCH_BYTES while the loop writes the next ones; the result is streamed.

Why the writing stays in the loop and not on a worker thread: writing the text is pure
Python and holds the GIL, so a render thread still competes with the probe loop, which
then waits for the GIL (up to the 5 ms switch interval) whenever it wakes. Measured with
10,000 probes/s and 10,000-trunk scrapes interleaved with idle periods
(bench/metrics_scrape.py, uvloop and the stock loop): scheduler lag p99 1.7–1.9 ms, max
2.4–5.8 ms yielding per piece in the loop, as with no scrape (p99 2.0 ms, max 2.5–3.9 ms);
with a render thread p99 2.3–4.2 ms, max 5–9 ms (no better with a 1 ms switch interval).
Compressing is another matter: it runs without the GIL, and at 100,000 trunks (237 MB of
text) zlib level 1 alone is ~0.55 s, which in the loop doubled the scrape's loop time.
"""

from __future__ import annotations

import asyncio
import importlib
import ssl
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aiohttp import web

from monitor import heap
from monitor.http_guard import (
    DEFAULT_MAX_REQUEST_BYTES,
    MAX_HEADER_BYTES,
    ConnectionGuard,
    GuardedSite,
    HttpLimits,
)
from monitor.metrics.exporter import Exporter, Snapshot
from monitor.metrics.exposition import ExpositionFormat, negotiate
from monitor.metrics.pacing import Pacer
from monitor.web_config import WebConfig, load_web_config

if TYPE_CHECKING:
    from monitor.config import HttpSettings

EXPORTER_KEY = web.AppKey("exporter", Exporter)
ReadyCheck = Callable[[], bool]
READY_KEY: web.AppKey[ReadyCheck] = web.AppKey("ready")

# gzip level for /metrics: level 1 already shrinks the exposition ~10x (it is repetitive
# text) in about a quarter of level 6's time; higher levels gain little for the CPU.
GZIP_LEVEL = 1


def _deflate() -> Any:
    """ISA-L's zlib-compatible deflate when the `speed` extra is installed, else zlib.

    Measured on the 100,000-trunk exposition (237 MB): zlib level 1 ~430 MB/s, ISA-L level
    1 ~2,000 MB/s with a slightly smaller output; both release the GIL while compressing.
    """
    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:
        return zlib


DEFLATE = _deflate()
# zlib window bits for a gzip container (16 + 15) rather than a raw zlib stream.
GZIP_WBITS = 31
# Uncompressed bytes handed to the gzip thread at once (~10 ms of zlib level 1 here).
GZIP_BATCH_BYTES = 4 * 1024 * 1024
# Longest the loop waits for the gzip thread to take the GIL and enter zlib.
HANDOVER_TIMEOUT_S = 0.002


async def metrics(request: web.Request) -> web.StreamResponse:
    exporter = request.app[EXPORTER_KEY]
    fmt = negotiate(request.headers.get("Accept", ""))
    gzip = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    snap = await exporter.snapshot_sliced()
    headers = {"Content-Type": fmt.content_type, "Vary": "Accept, Accept-Encoding"}
    if gzip:
        headers["Content-Encoding"] = "gzip"
    # Streamed (chunked) as it is written: joining 20 MB of uncompressed text into one
    # body would itself hold the loop ~13 ms here.
    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)
        async for chunk in exposition_chunks(exporter, snap, fmt, gzip):
            await response.write(chunk)
        await response.write_eof()
    finally:
        # The scrape's buffers (below heap.LARGE_BLOCK each) left ~15 MB of free pages in
        # glibc's heap at 100,000 trunks, resident until the next scrape reused them.
        del snap
        heap.trim_soon()
    return response


async def exposition_chunks(
    exporter: Exporter, snap: Snapshot, fmt: ExpositionFormat, gzip: bool
) -> AsyncIterator[bytes]:
    """The body's bytes: written in the loop a step (pacing.Pacer) at a time,
    yielding between steps; gzipped on a thread of its own while the next steps are written.
    """
    if not gzip:
        async for data in _steps(exporter, snap, fmt):
            yield data
        return
    packer = Packer()
    try:
        batch: list[bytes] = []
        size = 0
        async for data in _steps(exporter, snap, fmt):
            batch.append(data)
            size += len(data)
            if size >= GZIP_BATCH_BYTES:
                if packed := await packer.compress(b"".join(batch)):
                    yield packed
                batch.clear()
                size = 0
        yield await packer.finish(b"".join(batch))
    finally:
        packer.close()


async def _steps(exporter: Exporter, snap: Snapshot, fmt: ExpositionFormat) -> AsyncIterator[bytes]:
    """The exposition's pieces, encoded and joined into one bytes per step (pacing.Pacer)."""
    step: list[bytes] = []
    pacer = Pacer()
    for piece in exporter.render(snap, fmt):
        step.append(piece.encode())
        if pacer.due():
            yield b"".join(step)
            step.clear()
            # A write does not yield unless the socket is full: let the probe loop run.
            await pacer.hand_back()
    if step:
        yield b"".join(step)


class Packer:
    """gzip on a thread of its own, one batch compressing while the loop writes the next.

    zlib releases the GIL while it deflates, but the thread needs the GIL to start a call
    (and to end it). The loop is always busy, so the thread would wait for it up to the
    interpreter's switch interval (5 ms) per call; measured: 1.56 s for a scrape whose
    writing takes 0.63 s and gzip 0.65 s. So the loop hands the GIL over at each start
    (waits until the thread is in zlib), and batches are large (few ends to wait for).
    """

    def __init__(self) -> None:
        self._zlib = DEFLATE.compressobj(GZIP_LEVEL, DEFLATE.DEFLATED, GZIP_WBITS)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="metrics-gzip")
        self._started = threading.Event()
        self._running: asyncio.Future[bytes] | None = None

    async def compress(self, data: bytes) -> bytes:
        """Start compressing `data`; returns what the previous batch gave (b"" while buffered)."""
        previous = b"" if self._running is None else await self._running
        self._running = self._start(self._zlib.compress, data)
        return previous

    async def finish(self, data: bytes) -> bytes:
        """The rest of the gzip stream: the running batch's output, `data`'s and the trailer."""
        previous = b"" if self._running is None else await self._running
        self._running = None
        return previous + await self._start(self._finish, data)

    def close(self) -> None:
        self._thread.shutdown(wait=False)

    def _start(self, work: Callable[[bytes], bytes], data: bytes) -> asyncio.Future[bytes]:
        self._started.clear()
        running = asyncio.get_running_loop().run_in_executor(self._thread, self._run, work, data)
        # Blocks the loop only until the thread is inside zlib (the GIL is released there);
        # bounded in case the thread is slow to wake.
        self._started.wait(HANDOVER_TIMEOUT_S)
        return running

    def _run(self, work: Callable[[bytes], bytes], data: bytes) -> bytes:
        self._started.set()
        return work(data)

    def _finish(self, data: bytes) -> bytes:
        out: bytes = self._zlib.compress(data) + self._zlib.flush()
        return out


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110 §12.5.3: q=0 refuses)."""
    gzip_q: float | None = None
    any_q: float | None = None
    for entry in accept_encoding.split(","):
        coding, *params = entry.split(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # an unreadable weight is not a promise to accept it
        if coding == "*":
            any_q = q
        else:
            gzip_q = q
    chosen = gzip_q if gzip_q is not None else any_q
    return chosen is not None and chosen > 0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[READY_KEY]():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "starting"}, status=503)


def _protect(web_config: WebConfig | None, guard: ConnectionGuard | None) -> list[Any]:
    """Middlewares: the header deadline's bookkeeping, basic auth, the configured headers."""
    middlewares: list[Any] = [] if guard is None else [guard.middleware()]
    if web_config is None:
        return middlewares
    auth, headers = web_config.basic_auth, dict(web_config.headers)

    @web.middleware
    async def protect(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if auth is not None and not auth.check(request.headers.get("Authorization", "")):
            # Every path, as exporter-toolkit does; the API's own bearer tokens come inside.
            response: web.StreamResponse = web.Response(
                status=401, text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="trunkwatch"', **headers},
            )  # fmt: skip
            return response
        response = await handler(request)
        if not response.prepared:
            response.headers.update(headers)
        return response

    middlewares.append(protect)
    return middlewares


def make_app(
    exporter: Exporter,
    ready: ReadyCheck,
    *,
    web_config: WebConfig | None = None,
    guard: ConnectionGuard | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> web.Application:
    """The HTTP app: /metrics from `exporter`, /healthz and /readyz."""
    app = web.Application(
        middlewares=_protect(web_config, guard), client_max_size=max_request_bytes
    )
    app[EXPORTER_KEY] = exporter
    app[READY_KEY] = ready
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_config(
    http: HttpSettings,
    exporter: Exporter,
    ready: ReadyCheck,
    api: web.Application,
    *,
    port: int,
) -> tuple[web.AppRunner, int]:
    """The monitor's HTTP side as the `http:` section says: web config, limits, the API."""
    web_config = None if http.web_config_file is None else load_web_config(http.web_config_file)
    guard = ConnectionGuard(http.limits())
    app = make_app(exporter, ready, web_config=web_config, guard=guard)
    app.add_subapp("/api/v1", api)
    ssl_context = None if web_config is None else web_config.ssl_context
    return await serve(app, http.listen, port, ssl_context=ssl_context, guard=guard)


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    guard: ConnectionGuard | None = None,
) -> tuple[web.AppRunner, int]:
    """Start the server; returns the runner and the bound port (port 0 picks one)."""
    limits = guard.limits if guard is not None else HttpLimits()
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=limits.idle_timeout_s,
        max_line_size=MAX_HEADER_BYTES,
        max_field_size=MAX_HEADER_BYTES,
    )
    await runner.setup()
    site: web.TCPSite = (
        web.TCPSite(runner, host, port, ssl_context=ssl_context)
        if guard is None
        else GuardedSite(runner, host, port, guard, ssl_context=ssl_context)
    )
    await site.start()
    bound = port
    for address in runner.addresses:  # the real port when 0 asked for any
        bound = int(address[1])
        break
    return runner, bound
