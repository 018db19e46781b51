"""Shared pieces of the ticket tests: outages, settings, a real webhook receiver, waiting."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from monitor.events import Outage, OutageKind, new_outage_id
from monitor.tickets.config import TicketsSettings
from monitor.tickets.webhook import WebhookVerificationError, verify

# A fixed, valid Standard Webhooks secret (32 bytes of key).
WEBHOOK_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
T0 = datetime(2026, 10, 3, 20, 0, 0, tzinfo=UTC)  # 14:00 in America/Mexico_City
FAST_OUTBOX = {"retry_initial": "50ms", "retry_max": "200ms", "request_timeout": "2s"}


def outage(
    trunk: str,
    *,
    at: datetime | None = None,
    kind: OutageKind = OutageKind.OUTAGE,
    outage_id: str | None = None,
) -> Outage:
    # By default confirmed just now: the first failure was down_after probes ago.
    first = at or datetime.now(UTC) - timedelta(seconds=2)
    return Outage(
        id=outage_id or new_outage_id(),
        trunk=trunk,
        kind=kind,
        first_failure_at=first,
        confirmed_at=first + timedelta(seconds=2),
        first_outcome="timeout",
        detail="no answer in 4s",
    )


def closed(o: Outage, *, after_s: float = 60.0) -> Outage:
    restored = o.first_failure_at + timedelta(seconds=after_s)
    return o.closed(restored_at=restored, closed_at=restored + timedelta(seconds=1))


def settings(data: dict[str, Any], env: dict[str, str] | None = None) -> TicketsSettings:
    return TicketsSettings.model_validate(
        data, context={"env": {"HOOK_SECRET": WEBHOOK_SECRET, **(env or {})}}
    )


def webhook_settings(url: str, **extra: Any) -> TicketsSettings:
    data: dict[str, Any] = {
        "outbox": FAST_OUTBOX,
        "sinks": [{"name": "hook", "type": "webhook", "url": url, "secret_env": "HOOK_SECRET"}],
    }
    data.update(extra)
    return settings(data)


async def until(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout_s: float = 5.0,
    step_s: float = 0.02,
) -> None:
    """Wait for predicate() to hold; fail with a clear message after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(step_s)


@dataclass
class Delivery:
    msg_id: str
    type: str
    body: dict[str, Any]
    received_at: datetime


@dataclass
class WebhookReceiver:
    """A receiver written the way docs/tickets-webhook.md tells integrators to write one:
    verify, then deduplicate on webhook-id; one ticket per ticket.open it has not seen."""

    secret: str = WEBHOOK_SECRET
    # Scripted replies, consumed one per request; empty → 200 with a ticket id.
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    down: bool = False  # answer 503 to everything
    hold: asyncio.Event | None = None  # process each request, then hold its reply until set
    deliveries: list[Delivery] = field(default_factory=list)  # every verified request
    rejected: list[str] = field(default_factory=list)  # why unverifiable requests failed
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # every request
    seen_ids: set[str] = field(default_factory=set)
    tickets: dict[str, str] = field(default_factory=dict)  # ticket_key → our ticket id
    received: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def opens(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.type == "ticket.open"]

    async def _handle(self, request: web.Request) -> web.Response:
        response = await self._process(request)
        if self.hold is not None:
            await self.hold.wait()
        return response

    async def _process(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw.append((dict(request.headers), body))
        self.received.set()
        if self.down:
            return web.json_response({"error": "maintenance"}, status=503)
        try:
            msg_id = verify(self.secret, request.headers, body, datetime.now(UTC))
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return web.json_response({"error": str(exc)}, status=401)
        data = json.loads(body)
        self.deliveries.append(Delivery(msg_id, data["type"], data, datetime.now(UTC)))
        if self.script:
            status, headers = self.script.pop(0)
            if status >= 300:
                return web.json_response({"error": "scripted"}, status=status, headers=headers)
        if msg_id in self.seen_ids:  # a retry of something already done: same answer
            key = data["data"]["ticket_key"]
            return web.json_response({"ticket_id": self.tickets.get(key, "dup")})
        self.seen_ids.add(msg_id)
        key = data["data"]["ticket_key"]
        if data["type"] == "ticket.open":
            self.tickets[key] = f"HOOK-{len(self.tickets) + 1}"
        return web.json_response({"ticket_id": self.tickets.get(key, "")})
