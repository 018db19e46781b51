"""An aiohttp HTTPS server on 127.0.0.1 with a certificate made by the test (tls_pki), for
the https endpoint probe, its CLI and the daemon: /ok 200, /down 503, /moved 302, /slow."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from tls_pki import DAY, NOW, Issued, issue, write_pem

LOCAL = {"dns": ["localhost"], "ips": ["127.0.0.1", "::1"]}


@dataclass(frozen=True)
class Pki:
    root: Issued
    inter: Issued
    leaf: Issued
    ca_file: Path


def make_pki(directory: Path) -> Pki:
    root = issue("Test Root CA", None, ca=True, not_after=NOW + 3650 * DAY)
    inter = issue("Test Intermediate CA", root, ca=True, not_after=NOW + 1000 * DAY)
    leaf = issue("localhost", inter, **LOCAL)  # type: ignore[arg-type]
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(root.pem)
    return Pki(root, inter, leaf, ca_file)


@dataclass
class Served:
    port: int
    paths: list[str] = field(default_factory=list)  # requests seen, in order
    status: dict[str, int] = field(default_factory=dict)  # /switch answers this, default 200


def _app(served: Served) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        served.paths.append(request.path_qs)
        return web.Response(text="ok")

    async def down(request: web.Request) -> web.Response:
        served.paths.append(request.path_qs)
        return web.Response(status=503, text="maintenance")

    async def moved(request: web.Request) -> web.Response:
        served.paths.append(request.path_qs)
        raise web.HTTPFound("/ok")

    async def slow(request: web.Request) -> web.Response:
        served.paths.append(request.path_qs)
        await asyncio.sleep(float(request.query.get("s", "0.3")))
        return web.Response(text="late")

    async def switch(request: web.Request) -> web.Response:
        served.paths.append(request.path_qs)
        return web.Response(status=served.status.get("switch", 200), text="switch")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/down", down)
    app.router.add_get("/moved", moved)
    app.router.add_get("/slow", slow)
    app.router.add_get("/switch", switch)
    return app


@asynccontextmanager
async def https_server(
    directory: Path, leaf: Issued | None, chain: Sequence[Issued] = (), port: int = 0
) -> AsyncIterator[Served]:
    """Serves on 127.0.0.1 (`leaf` None: plain HTTP); yields the port and what it saw."""
    ctx: ssl.SSLContext | None = None
    if leaf is not None:
        cert, key = write_pem(directory, leaf, chain)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    served = Served(port)
    runner = web.AppRunner(_app(served), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx, reuse_address=True)
    await site.start()
    served.port = runner.addresses[0][1]
    try:
        yield served
    finally:
        await runner.cleanup()


@contextmanager
def https_server_thread(
    directory: Path, leaf: Issued | None, chain: Sequence[Issued] = ()
) -> Iterator[Served]:
    """The same server on its own loop in a thread, for synchronous (CLI) tests."""
    loop = asyncio.new_event_loop()
    ready: asyncio.Future[Served] = loop.create_future()
    stop = asyncio.Event()

    async def main() -> None:
        async with https_server(directory, leaf, chain) as served:
            ready.set_result(served)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    served = _wait(loop, ready)
    try:
        yield served
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def _wait(loop: asyncio.AbstractEventLoop, ready: asyncio.Future[Served]) -> Served:
    async def get() -> Served:
        return await ready

    return asyncio.run_coroutine_threadsafe(get(), loop).result(10)
