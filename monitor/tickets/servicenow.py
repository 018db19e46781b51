"""ServiceNow Table API: an incident per ticket, work notes, resolution.

Contract (ServiceNow REST API reference, Table API): ``POST /api/now/table/{table}`` →
201 ``{"result": {"sys_id", "number", "sys_created_on", ...}}``; ``GET
/api/now/table/{table}?sysparm_query=...`` → 200 ``{"result": [...]}``; ``PATCH
/api/now/table/{table}/{sys_id}`` → 200 ``{"result": {...}}``. Errors: ``{"error":
{"message", "detail"}, "status": "failure"}`` (401 "User Not Authenticated", 403, 400...).
Auth: HTTP basic or an OAuth bearer token. ``sys_created_on`` is UTC
``YYYY-MM-DD HH:MM:SS`` when ``sysparm_display_value`` is false (the default).

Find-existing: ``correlation_id`` holds "trunkwatch:<ticket key>", an exact-match field.
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
from monitor.tickets.config import ServiceNowSinkSettings
from monitor.tickets.http_client import HttpReply, basic_auth, call, reply_failure

MAX_SHORT_DESCRIPTION = 160  # the incident form's short_description length
FIELDS = "sys_id,number,sys_created_on"
CORRELATION_PREFIX = "trunkwatch:"
# Incident urgency/impact: 1 high for a total outage, 2 medium for a degradation.
URGENCY = {Severity.CRITICAL: "1", Severity.WARNING: "2"}


def correlation_id(ticket_key: str) -> str:
    return CORRELATION_PREFIX + ticket_key


class ServiceNowSink:
    def __init__(
        self, settings: ServiceNowSinkSettings, session: aiohttp.ClientSession, *, timeout_s: float
    ) -> None:
        self.name = settings.name
        self._s = settings
        self._session = session
        self._timeout_s = timeout_s
        self._table_url = f"{settings.url}/api/now/table/{settings.table}"
        self._headers = {"Accept": "application/json", "Content-Type": "application/json"}
        self._secrets = tuple(
            x.get_secret_value() for x in (settings.token, settings.password) if x is not None
        )
        if settings.token is not None:
            self._headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        else:
            assert settings.username is not None and settings.password is not None
            self._headers["Authorization"] = basic_auth(
                settings.username, settings.password.get_secret_value()
            )

    async def open(self, request: TicketRequest) -> SinkResult:
        body: dict[str, Any] = {
            "short_description": request.subject[:MAX_SHORT_DESCRIPTION],
            "description": request.body,
            "correlation_id": correlation_id(request.key),
            "correlation_display": "trunkwatch",
            "urgency": URGENCY[request.severity],
            "impact": URGENCY[request.severity],
            **request.fields,
        }
        reply = await self._call(
            "POST", self._table_url, json_body=body, params={"sysparm_fields": FIELDS}
        )
        if not isinstance(reply, HttpReply):
            return reply
        result = reply.data.get("result") if isinstance(reply.data, dict) else None
        if reply.status != 201 or not isinstance(result, dict) or not result.get("sys_id"):
            return reply_failure(reply, "servicenow create")
        return Delivered(self._ref(result))

    async def find_existing(self, request: TicketRequest) -> FindResult:
        reply = await self._call(
            "GET",
            self._table_url,
            params={
                "sysparm_query": (
                    f"correlation_id={correlation_id(request.key)}^ORDERBYsys_created_on"
                ),
                "sysparm_fields": FIELDS,
                "sysparm_limit": "1",
            },
        )
        if not isinstance(reply, HttpReply):
            return reply
        result = reply.data.get("result") if isinstance(reply.data, dict) else None
        if not reply.ok or not isinstance(result, list):
            return reply_failure(reply, "servicenow search")
        if not result:
            return NotFound()
        return Delivered(self._ref(result[0]))

    async def update(self, request: TicketRequest) -> SinkResult:
        return await self._patch(request, {self._s.note_field: request.body}, "note")

    async def resolve(self, request: TicketRequest) -> SinkResult:
        return await self._patch(
            request,
            {
                self._s.note_field: request.body,
                "state": self._s.resolve_state,
                "close_code": self._s.close_code,
                "close_notes": request.body,
            },
            "resolve",
        )

    async def close(self) -> None:
        return None

    async def _patch(self, request: TicketRequest, body: dict[str, Any], what: str) -> SinkResult:
        if request.ticket is None:
            return Rejected("no incident to update")
        reply = await self._call(
            "PATCH",
            f"{self._table_url}/{request.ticket.external_id}",
            json_body=body,
            params={"sysparm_fields": FIELDS},
        )
        if not isinstance(reply, HttpReply):
            return reply
        return Delivered() if reply.status == 200 else reply_failure(reply, f"servicenow {what}")

    def _ref(self, result: dict[str, Any]) -> TicketRef:
        sys_id = str(result["sys_id"])
        return TicketRef(
            external_id=sys_id,
            number=str(result["number"]) if result.get("number") else None,
            url=f"{self._s.url}/nav_to.do?uri={self._s.table}.do?sys_id={sys_id}",
            sink_created_at=_glide_time(result.get("sys_created_on")),
        )

    async def _call(
        self, method: str, url: str, *, json_body: Any = None, params: dict[str, str]
    ) -> HttpReply | RetryLater:
        return await call(
            self._session,
            method,
            url,
            json_body=json_body,
            params=params,
            headers=self._headers,
            timeout_s=self._timeout_s,
            secrets=self._secrets,
        )


def _glide_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
