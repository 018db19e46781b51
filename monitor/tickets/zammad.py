"""Zammad: a ticket with a first article, note articles, a closing state.

Contract (docs.zammad.org, API → Tickets / Ticket Articles): ``POST /api/v1/tickets``
{title, group, customer, priority, article {subject, body, type, internal,
content_type}} → 201 ticket {id, number, created_at, ...}; ``POST
/api/v1/ticket_articles`` {ticket_id, subject, body, type: "note", internal} → 201;
``PUT /api/v1/tickets/{id}`` {state, article {...}} → 200;
``GET /api/v1/tickets/search?query=...&expand=true`` → a list of tickets. Errors:
{"error", "error_human"}. Auth: ``Authorization: Token token=<token>``.

Find-existing: the title carries our tag; ``title:"TW-…"`` finds it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp

from monitor.tickets.base import (
    Delivered,
    FindResult,
    NotFound,
    Rejected,
    RetryLater,
    Severity,
    SinkResult,
    TicketRef,
    TicketRequest,
)
from monitor.tickets.compose import with_ref_tag
from monitor.tickets.config import ZammadSinkSettings
from monitor.tickets.http_client import HttpReply, call, reply_failure

# Zammad's default priorities: "3 high" for an outage, "2 normal" for a degradation.
PRIORITY = {Severity.CRITICAL: "3 high", Severity.WARNING: "2 normal"}


class ZammadSink:
    def __init__(
        self, settings: ZammadSinkSettings, session: aiohttp.ClientSession, *, timeout_s: float
    ) -> None:
        self.name = settings.name
        self._s = settings
        self._session = session
        self._timeout_s = timeout_s
        self._secrets = (settings.token.get_secret_value(),)
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": f"Token token={settings.token.get_secret_value()}",
        }

    async def open(self, request: TicketRequest) -> SinkResult:
        title = with_ref_tag(request.subject, request.ref)
        body = {
            "title": title,
            "group": self._s.group,
            "customer": self._s.customer,
            "priority": PRIORITY[request.severity],
            "article": {
                "subject": title,
                "body": request.body,
                "type": "note",
                "internal": False,
                "content_type": "text/plain",
            },
            **request.fields,
        }
        reply = await self._call("POST", "/api/v1/tickets", json_body=body)
        if not isinstance(reply, HttpReply):
            return reply
        if reply.status != 201 or not isinstance(reply.data, dict) or "id" not in reply.data:
            return reply_failure(reply, "zammad create")
        return Delivered(self._ref(reply.data))

    async def find_existing(self, request: TicketRequest) -> FindResult:
        reply = await self._call(
            "GET",
            "/api/v1/tickets/search",
            params={"query": f'title:"{request.ref}"', "expand": "true", "limit": "5"},
        )
        if not isinstance(reply, HttpReply):
            return reply
        if not reply.ok or not isinstance(reply.data, list):
            return reply_failure(reply, "zammad search")
        matches = [
            t for t in reply.data if isinstance(t, dict) and request.ref in str(t.get("title"))
        ]
        if not matches:
            return NotFound()
        return Delivered(self._ref(min(matches, key=lambda t: int(t["id"]))))

    async def update(self, request: TicketRequest) -> SinkResult:
        if request.ticket is None:
            return Rejected("no ticket to add a note to")
        reply = await self._call(
            "POST",
            "/api/v1/ticket_articles",
            json_body={"ticket_id": int(request.ticket.external_id), **self._article(request)},
        )
        if not isinstance(reply, HttpReply):
            return reply
        return Delivered() if reply.status == 201 else reply_failure(reply, "zammad note")

    async def resolve(self, request: TicketRequest) -> SinkResult:
        if request.ticket is None:
            return Rejected("no ticket to close")
        reply = await self._call(
            "PUT",
            f"/api/v1/tickets/{request.ticket.external_id}",
            json_body={"state": self._s.resolve_state, "article": self._article(request)},
        )
        if not isinstance(reply, HttpReply):
            return reply
        return Delivered() if reply.status == 200 else reply_failure(reply, "zammad close")

    async def close(self) -> None:
        return None

    def _article(self, request: TicketRequest) -> dict[str, Any]:
        return {
            "subject": request.subject,
            "body": request.body,
            "type": "note",
            "internal": self._s.internal_notes,
            "content_type": "text/plain",
        }

    def _ref(self, ticket: dict[str, Any]) -> TicketRef:
        ticket_id = str(ticket["id"])
        return TicketRef(
            external_id=ticket_id,
            number=str(ticket["number"]) if ticket.get("number") else None,
            url=f"{self._s.url}/#ticket/zoom/{ticket_id}",
            sink_created_at=_iso(ticket.get("created_at")),
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> HttpReply | RetryLater:
        return await call(
            self._session,
            method,
            self._s.url + path,
            json_body=json_body,
            params=params,
            headers=self._headers,
            timeout_s=self._timeout_s,
            secrets=self._secrets,
        )


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
