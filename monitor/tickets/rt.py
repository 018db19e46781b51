"""Request Tracker 5 over REST 2.0: create, comment (or correspond), resolve.

Endpoints (RT 5 REST2 docs): ``POST /REST/2.0/ticket`` → 201 ``{"id", "type", "_url"}``;
``GET /REST/2.0/ticket/{id}`` (``Created``); ``POST /REST/2.0/ticket/{id}/comment`` or
``/correspond`` → 201; ``PUT /REST/2.0/ticket/{id}`` ``{"Status": "resolved"}`` → 200;
``GET /REST/2.0/tickets?query=<TicketSQL>`` → ``{"items": [...]}``. Errors are
``{"message": ...}`` with 400/401/403/404. Auth: ``Authorization: token <token>`` (RT's
AuthToken) or HTTP basic.

Find-existing after a lost reply: the ticket carries our tag in its subject ("[TW-…]"), or
in a custom field when ``custom_field`` is set; a TicketSQL search finds it.
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
    SinkResult,
    TicketRef,
    TicketRequest,
)
from monitor.tickets.compose import with_ref_tag
from monitor.tickets.config import RtSinkSettings
from monitor.tickets.http_client import HttpReply, basic_auth, call, reply_failure


class RtSink:
    def __init__(
        self, settings: RtSinkSettings, session: aiohttp.ClientSession, *, timeout_s: float
    ) -> None:
        self.name = settings.name
        self._s = settings
        self._session = session
        self._timeout_s = timeout_s
        self._api = f"{settings.url}/REST/2.0"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._secrets = tuple(
            x.get_secret_value() for x in (settings.token, settings.password) if x is not None
        )
        if settings.token is not None:
            self._headers["Authorization"] = f"token {settings.token.get_secret_value()}"
        else:
            assert settings.username is not None and settings.password is not None
            self._headers["Authorization"] = basic_auth(
                settings.username, settings.password.get_secret_value()
            )

    async def open(self, request: TicketRequest) -> SinkResult:
        body: dict[str, Any] = {
            "Queue": self._s.queue,
            "Subject": self._subject(request),
            "Content": request.body,
            "ContentType": "text/plain",
            **request.fields,
        }
        if self._s.custom_field:
            body["CustomFields"] = {self._s.custom_field: request.ref}
        reply = await self._call("POST", "/ticket", json_body=body)
        if not isinstance(reply, HttpReply):
            return reply
        if reply.status != 201 or not isinstance(reply.data, dict) or "id" not in reply.data:
            return reply_failure(reply, "rt create")
        return Delivered(await self._ticket(str(reply.data["id"])))

    async def find_existing(self, request: TicketRequest) -> FindResult:
        if self._s.custom_field:
            condition = f"'CF.{{{self._s.custom_field}}}' = '{request.ref}'"
        else:
            condition = f"Subject LIKE '{request.ref}'"  # LIKE is a substring match in RT
        query = f"Queue = '{self._s.queue}' AND {condition}"
        reply = await self._call(
            "GET",
            "/tickets",
            params={"query": query, "fields": "Created,Subject", "orderby": "id", "order": "ASC"},
        )
        if not isinstance(reply, HttpReply):
            return reply
        if not reply.ok or not isinstance(reply.data, dict):
            return reply_failure(reply, "rt search")
        items = reply.data.get("items") or []
        if not items:
            return NotFound()
        first = items[0]
        return Delivered(
            TicketRef(
                external_id=str(first["id"]),
                number=str(first["id"]),
                url=self._display_url(str(first["id"])),
                sink_created_at=_rt_time(first.get("Created")),
            )
        )

    async def update(self, request: TicketRequest) -> SinkResult:
        return await self._note(request)

    async def resolve(self, request: TicketRequest) -> SinkResult:
        noted = await self._note(request)
        if not isinstance(noted, Delivered):
            return noted
        assert request.ticket is not None
        reply = await self._call(
            "PUT",
            f"/ticket/{request.ticket.external_id}",
            json_body={"Status": self._s.resolve_status},
        )
        if not isinstance(reply, HttpReply):
            return reply
        return Delivered() if reply.ok else reply_failure(reply, "rt resolve")

    async def close(self) -> None:
        return None

    async def _note(self, request: TicketRequest) -> SinkResult:
        if request.ticket is None:
            return Rejected("no ticket to add a note to")
        reply = await self._call(
            "POST",
            f"/ticket/{request.ticket.external_id}/{self._s.note}",
            json_body={
                "Subject": self._subject(request),
                "Content": request.body,
                "ContentType": "text/plain",
            },
        )
        if not isinstance(reply, HttpReply):
            return reply
        return Delivered() if reply.status == 201 else reply_failure(reply, f"rt {self._s.note}")

    async def _ticket(self, ticket_id: str) -> TicketRef:
        """The new ticket with RT's own creation time (absent if that read fails)."""
        created: datetime | None = None
        reply = await self._call("GET", f"/ticket/{ticket_id}")
        if isinstance(reply, HttpReply) and reply.ok and isinstance(reply.data, dict):
            created = _rt_time(reply.data.get("Created"))
        return TicketRef(
            external_id=ticket_id,
            number=ticket_id,
            url=self._display_url(ticket_id),
            sink_created_at=created,
        )

    def _subject(self, request: TicketRequest) -> str:
        if self._s.custom_field:
            return request.subject
        return with_ref_tag(request.subject, request.ref)

    def _display_url(self, ticket_id: str) -> str:
        return f"{self._s.url}/Ticket/Display.html?id={ticket_id}"

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
            self._api + path,
            json_body=json_body,
            params=params,
            headers=self._headers,
            timeout_s=self._timeout_s,
            secrets=self._secrets,
        )


def _rt_time(value: Any) -> datetime | None:
    """RT's ``2026-11-23T14:24:57Z`` (UTC); RT writes an unset date as the epoch."""
    if not isinstance(value, str) or value.startswith("1970-01-01"):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
