"""PagerDuty Events API v2: trigger on open, resolve on close, keyed by ``dedup_key``.

Contract (developer.pagerduty.com, "Send an Alert Event"): ``POST /v2/enqueue`` with
``routing_key``, ``event_action`` (trigger | acknowledge | resolve), ``dedup_key`` (≤ 255)
and for triggers ``payload`` {summary ≤ 1024, source, severity, timestamp, component,
group, class, custom_details}; 202 ``{"status": "success", "message": "Event processed",
"dedup_key"}``; 400 ``{"status": "invalid event", "message", "errors": [...]}`` (do not
retry); 429 and 5xx retry. The routing key travels in the body, no auth header.

The ``dedup_key`` is derived from the ticket key, so a trigger re-sent after a lost reply
lands on the same alert: PagerDuty itself is the "find the existing ticket" step. The
Events API has no notes: an update re-triggers (a log entry on the alert), a resolve
carries no text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp

from monitor.tickets.base import (
    Action,
    Delivered,
    FindResult,
    NotFound,
    Rejected,
    SinkResult,
    TicketRef,
    TicketRequest,
)
from monitor.tickets.config import PagerDutySinkSettings
from monitor.tickets.http_client import HttpReply, call, failure_of

MAX_SUMMARY = 1024  # payload.summary limit
MAX_DEDUP_KEY = 255
DEDUP_PREFIX = "trunkwatch/"


def dedup_key(ticket_key: str) -> str:
    return (DEDUP_PREFIX + ticket_key)[:MAX_DEDUP_KEY]


def event(request: TicketRequest, routing_key: str, source: str) -> dict[str, Any]:
    """The Events v2 body for this request."""
    context = request.context
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "dedup_key": dedup_key(context.key),
        "event_action": "resolve" if request.action is Action.RESOLVE else "trigger",
    }
    if request.action is Action.RESOLVE:
        return body
    body["payload"] = {
        "summary": request.subject[:MAX_SUMMARY],
        "source": source,
        "severity": request.severity.value,
        "timestamp": context.confirmed_at.isoformat(),
        "component": ", ".join(context.trunks),
        "group": context.carrier or "trunkwatch",
        "class": context.kind.value,
        "custom_details": {
            "ref": request.ref,
            "body": request.body,
            "first_failure_at": context.first_failure_at.isoformat(),
            "outages": [o.id for o in context.outages],
            **request.fields,
        },
    }
    body["client"] = "trunkwatch"
    return body


class PagerDutySink:
    def __init__(
        self, settings: PagerDutySinkSettings, session: aiohttp.ClientSession, *, timeout_s: float
    ) -> None:
        self.name = settings.name
        self._s = settings
        self._session = session
        self._timeout_s = timeout_s

    async def open(self, request: TicketRequest) -> SinkResult:
        return await self._send(request)

    async def find_existing(self, request: TicketRequest) -> FindResult:
        # A trigger with the same dedup_key joins the open alert: nothing to look up.
        return NotFound()

    async def update(self, request: TicketRequest) -> SinkResult:
        return await self._send(request)

    async def resolve(self, request: TicketRequest) -> SinkResult:
        return await self._send(request)

    async def close(self) -> None:
        return None

    async def _send(self, request: TicketRequest) -> SinkResult:
        body = event(request, self._s.routing_key.get_secret_value(), self._s.source)
        reply = await call(
            self._session,
            "POST",
            self._s.url,
            json_body=body,
            timeout_s=self._timeout_s,
            secrets=(self._s.routing_key.get_secret_value(),),
        )
        if not isinstance(reply, HttpReply):
            return reply
        if reply.status != 202:
            if reply.ok:
                return Rejected(f"pagerduty: unexpected HTTP {reply.status}")
            return failure_of(reply, "pagerduty", datetime.now(UTC))
        data = reply.data if isinstance(reply.data, dict) else {}
        if request.action is not Action.OPEN:
            return Delivered()
        key = str(data.get("dedup_key") or body["dedup_key"])
        return Delivered(TicketRef(external_id=key, number=None, url=None))
