"""Generic webhook sink: versioned JSON (docs/tickets-webhook.md), Standard Webhooks signing.

Signing (https://www.standardwebhooks.com/, "Signature scheme"): the signed content is
``{webhook-id}.{webhook-timestamp}.{body}``, the signature HMAC-SHA256 with the key
base64-decoded from ``whsec_<base64>``, sent as ``webhook-signature: v1,<base64>``.
``webhook-id`` is deterministic (outage + sink + action), the same on every retry, so a
receiver deduplicating on it sees one ticket however often a lost reply made us resend:
that is this sink's "find the existing ticket" step.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp

from monitor import __version__
from monitor.tickets.base import (
    Action,
    Delivered,
    FindResult,
    NotFound,
    SinkResult,
    TicketRef,
    TicketRequest,
)
from monitor.tickets.config import WebhookSinkSettings, webhook_key
from monitor.tickets.http_client import HttpReply, call, failure_of
from probes.clock import SYSTEM_CLOCK, Clock, utc_now

SCHEMA_VERSION = 1
EVENT_TYPES = {
    Action.OPEN: "ticket.open",
    Action.UPDATE: "ticket.update",
    Action.RESOLVE: "ticket.resolve",
}
# Standard Webhooks' recommended tolerance: a delivery whose timestamp is further than
# this from the receiver's clock is refused, which bounds how long a replay can work.
DEFAULT_TOLERANCE_S = 300
SIGNATURE_VERSION = "v1"


class WebhookVerificationError(ValueError):
    """A delivery that fails the documented check (missing header, stale, bad signature)."""


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> str:
    """The receiver's check (docs/tickets-webhook.md); returns the webhook-id.

    Receivers must also remember the ids they processed (for at least ``tolerance_s``)
    and treat a repeated id as already done: that is what makes retries idempotent.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    if abs(now.timestamp() - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    if not secret.startswith("whsec_"):
        raise WebhookVerificationError("secret must look like whsec_<base64>")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = sign(key, msg_id, timestamp, body).partition(",")[2]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == SIGNATURE_VERSION and hmac.compare_digest(value, expected):
            return msg_id
    raise WebhookVerificationError("no matching signature")


def payload(request: TicketRequest) -> dict[str, Any]:
    """The JSON body (schema version 1): the same for every retry of one request."""
    context = request.context
    ticket = request.ticket
    if request.action is Action.OPEN:
        occurred = context.confirmed_at
    else:
        member = next((o for o in context.outages if o.id == context.member), None)
        occurred = (member.closed_at if member else None) or max(
            (o.closed_at for o in context.outages if o.closed_at), default=context.confirmed_at
        )
    return {
        "type": EVENT_TYPES[request.action],
        "timestamp": occurred.isoformat(),
        "schema_version": SCHEMA_VERSION,
        "data": {
            "ref": request.ref,
            "ticket_key": context.key,
            "sink": request.sink,
            "severity": request.severity.value,
            "kind": context.kind.value,
            "carrier": context.carrier,
            "grouped": context.grouped,
            "member": context.member,
            "subject": request.subject,
            "body": request.body,
            "fields": dict(request.fields),
            "ticket": None
            if ticket is None
            else {
                "external_id": ticket.external_id,
                "number": ticket.number,
                "url": ticket.url,
            },
            "outages": [o.to_dict() for o in context.outages],
        },
    }


class WebhookSink:
    def __init__(
        self,
        settings: WebhookSinkSettings,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._key = webhook_key(settings.secret)
        self._session = session
        self._timeout_s = timeout_s
        self._clock = clock

    async def open(self, request: TicketRequest) -> SinkResult:
        return await self._post(request)

    async def find_existing(self, request: TicketRequest) -> FindResult:
        # The receiver deduplicates on webhook-id: re-sending is the idempotent lookup.
        return NotFound()

    async def update(self, request: TicketRequest) -> SinkResult:
        return await self._post(request)

    async def resolve(self, request: TicketRequest) -> SinkResult:
        return await self._post(request)

    async def close(self) -> None:
        return None

    async def _post(self, request: TicketRequest) -> SinkResult:
        now = utc_now(self._clock)
        body = json.dumps(payload(request), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(now.timestamp())
        headers = {
            **self._settings.headers,
            "Content-Type": "application/json",
            "User-Agent": f"trunkwatch/{__version__}",
            "webhook-id": request.idempotency_key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, request.idempotency_key, timestamp, body),
        }
        reply = await call(
            self._session,
            "POST",
            self._settings.url,
            data=body,
            headers=headers,
            timeout_s=self._timeout_s,
        )
        if not isinstance(reply, HttpReply):
            return reply
        if not reply.ok:
            return failure_of(reply, "webhook", now)
        return Delivered(_ref_from_reply(reply, request) if request.action is Action.OPEN else None)


def _ref_from_reply(reply: HttpReply, request: TicketRequest) -> TicketRef:
    """The receiver may answer ``{"ticket_id", "ticket_number", "ticket_url"}``."""
    data = reply.data if isinstance(reply.data, dict) else {}
    external = data.get("ticket_id")
    number = data.get("ticket_number")
    url = data.get("ticket_url")
    return TicketRef(
        external_id=str(external) if external not in (None, "") else request.ref,
        number=str(number) if number not in (None, "") else None,
        url=str(url) if isinstance(url, str) else None,
    )
