"""Jira Service Management: a customer request per ticket, comments, a resolving transition.

Contract (JSM REST API): ``POST /rest/servicedeskapi/request`` {serviceDeskId,
requestTypeId, requestFieldValues {summary, description, ...}} → 201 {issueId, issueKey,
createdDate {iso8601, epochMillis}, _links {web}}; ``POST
/rest/servicedeskapi/request/{key}/comment`` {body, public} → 201;
``POST /rest/servicedeskapi/request/{key}/transition`` {id, additionalComment {body}} →
204. Errors: {errorMessage, i18nErrorMessage}. Find-existing uses the platform's JQL
search (``search_path``, GET with ``jql`` and ``fields``) → {issues: [{id, key, fields}]}.
Auth: basic ``email:api_token`` (Cloud) or ``Bearer <PAT>`` (Data Center).

The summary carries our tag "[TW-…]"; JQL's ``summary ~ "\\"TW-…\\""`` phrase search finds it.
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
from monitor.tickets.config import JiraSinkSettings
from monitor.tickets.http_client import HttpReply, basic_auth, call, reply_failure

MAX_SUMMARY = 255  # Jira's summary field limit


def jql_for(ref: str) -> str:
    return f'summary ~ "\\"{ref}\\"" ORDER BY created ASC'


class JiraSink:
    def __init__(
        self, settings: JiraSinkSettings, session: aiohttp.ClientSession, *, timeout_s: float
    ) -> None:
        self.name = settings.name
        self._s = settings
        self._session = session
        self._timeout_s = timeout_s
        self._headers = {"Accept": "application/json", "Content-Type": "application/json"}
        token = settings.token.get_secret_value()
        self._secrets = (token,)
        if settings.username is not None:
            self._headers["Authorization"] = basic_auth(settings.username, token)
        else:
            self._headers["Authorization"] = f"Bearer {token}"

    async def open(self, request: TicketRequest) -> SinkResult:
        body = {
            "serviceDeskId": self._s.service_desk_id,
            "requestTypeId": self._s.request_type_id,
            "requestFieldValues": {
                "summary": with_ref_tag(request.subject, request.ref)[:MAX_SUMMARY],
                "description": request.body,
                **request.fields,
            },
        }
        reply = await self._call("POST", "/rest/servicedeskapi/request", json_body=body)
        if not isinstance(reply, HttpReply):
            return reply
        data = reply.data if isinstance(reply.data, dict) else {}
        if reply.status != 201 or not data.get("issueKey"):
            return reply_failure(reply, "jira create")
        created = data.get("createdDate")
        links = data.get("_links")
        return Delivered(
            TicketRef(
                external_id=str(data["issueKey"]),
                number=str(data["issueKey"]),
                url=str(links["web"]) if isinstance(links, dict) and links.get("web") else None,
                sink_created_at=_epoch_ms(created.get("epochMillis"))
                if isinstance(created, dict)
                else None,
            )
        )

    async def find_existing(self, request: TicketRequest) -> FindResult:
        reply = await self._call(
            "GET",
            self._s.search_path,
            params={"jql": jql_for(request.ref), "fields": "summary,created", "maxResults": "1"},
        )
        if not isinstance(reply, HttpReply):
            return reply
        data = reply.data if isinstance(reply.data, dict) else None
        if not reply.ok or data is None:
            return reply_failure(reply, "jira search")
        issues = data.get("issues") or []
        if not issues:
            return NotFound()
        key = str(issues[0]["key"])
        return Delivered(TicketRef(external_id=key, number=key, url=f"{self._s.url}/browse/{key}"))

    async def update(self, request: TicketRequest) -> SinkResult:
        if request.ticket is None:
            return Rejected("no request to comment on")
        reply = await self._call(
            "POST",
            f"/rest/servicedeskapi/request/{request.ticket.external_id}/comment",
            json_body={"body": request.body, "public": self._s.public_comments},
        )
        if not isinstance(reply, HttpReply):
            return reply
        return Delivered() if reply.status == 201 else reply_failure(reply, "jira comment")

    async def resolve(self, request: TicketRequest) -> SinkResult:
        if self._s.resolve_transition_id is None or request.ticket is None:
            return await self.update(request)  # no resolving transition configured: note only
        reply = await self._call(
            "POST",
            f"/rest/servicedeskapi/request/{request.ticket.external_id}/transition",
            json_body={
                "id": self._s.resolve_transition_id,
                "additionalComment": {"body": request.body},
            },
        )
        if not isinstance(reply, HttpReply):
            return reply
        return Delivered() if reply.status == 204 else reply_failure(reply, "jira transition")

    async def close(self) -> None:
        return None

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


def _epoch_ms(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return None
