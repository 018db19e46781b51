"""Limits that make the HTTP side safe to expose (issue 10): a request's headers must arrive
within a deadline, the number of connections is capped (the oldest connection still sending
its first request's headers is dropped to make room), and headers and bodies are bounded.

aiohttp has no header-read timeout of its own: this wraps its protocol factory. A connection
counts as "past its headers" once the guard middleware sees its first request."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from monitor.log import RateLimitedLog, get_logger

__all__ = ["ConnectionGuard", "GuardedSite", "HttpLimits"]

log = get_logger("trunkwatch.http")

# Whole request line and header block: the API's and /metrics' requests are a few hundred
# bytes; 8 KiB (aiohttp's default line limit) is generous.
MAX_HEADER_BYTES: Final = 8190


DEFAULT_MAX_REQUEST_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_timeout_s: float = 10.0  # to send a request line and all of its headers
    idle_timeout_s: float = 60.0  # keep-alive between requests
    max_connections: int = 1024
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # API bodies, .ics imports


class ConnectionGuard:
    """Tracks connections still sending their first request's headers."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.open = 0
        self.dropped = 0  # connections closed for slowness or to make room
        # transport → its header deadline; insertion order = age
        self._waiting: OrderedDict[Any, asyncio.TimerHandle] = OrderedDict()
        self._log = RateLimitedLog(log)

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Watched(inner(), self)

    def _opened(self, transport: asyncio.BaseTransport) -> None:
        self.open += 1
        if self.open > self.limits.max_connections and self._waiting:
            # At the cap: the oldest connection still dawdling over its headers makes room
            # (slow-loris connections can never starve a real scrape).
            oldest, timer = self._waiting.popitem(last=False)
            timer.cancel()
            self._drop(oldest, "connection_evicted")
        loop = asyncio.get_running_loop()
        self._waiting[transport] = loop.call_later(
            self.limits.header_timeout_s, self._timed_out, transport
        )

    def _closed(self, transport: Any) -> None:
        self.open -= 1
        timer = self._waiting.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def _timed_out(self, transport: Any) -> None:
        if self._waiting.pop(transport, None) is not None:
            self._drop(transport, "header_timeout")

    def _drop(self, transport: Any, why: str) -> None:
        self.dropped += 1
        self._log.warning(why, now_ns=time.monotonic_ns(), open=self.open)
        transport.abort()

    def request_started(self, transport: Any) -> None:
        timer = self._waiting.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def middleware(self) -> Any:
        @web.middleware
        async def seen(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            self.request_started(request.transport)
            return await handler(request)

        return seen


class _Watched(asyncio.Protocol):
    """aiohttp's protocol (its class has __slots__), with the guard told of opens and closes."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._guard._opened(transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard._closed(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through a ConnectionGuard."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(runner, host, port, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self._guard.factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            # The guard's clock starts once a connection is made, which for TLS is after
            # the handshake: the handshake gets the same deadline.
            ssl_handshake_timeout=(
                self._guard.limits.header_timeout_s if self._ssl_context is not None else None
            ),
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
