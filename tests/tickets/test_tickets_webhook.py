"""Webhook sink: Standard Webhooks signatures, the documented receiver check, the schema."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from tickets_support import WEBHOOK_SECRET, WebhookReceiver, closed, outage, settings

from monitor.tickets.base import Action, Delivered, TicketContext, TicketRef
from monitor.tickets.compose import compose
from monitor.tickets.config import WebhookSinkSettings
from monitor.tickets.webhook import (
    SCHEMA_VERSION,
    WebhookSink,
    WebhookVerificationError,
    sign,
    verify,
)

# The Standard Webhooks specification's published test vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_NOW = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)


def spec_headers(**override: str) -> dict[str, str]:
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    headers.update(override)
    return headers


def test_signature_matches_the_specification_vector() -> None:
    key = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    assert sign(key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert verify(SPEC_SECRET, spec_headers(), SPEC_BODY, SPEC_NOW) == SPEC_ID


def test_rotated_secrets_several_signatures_one_matching() -> None:
    header = f"v1,bm90LXRoaXMtb25l {SPEC_SIGNATURE} v2,ignored"
    assert verify(SPEC_SECRET, spec_headers(**{"webhook-signature": header}), SPEC_BODY, SPEC_NOW)


@pytest.mark.parametrize(
    ("headers", "body", "now", "why"),
    [
        (spec_headers(), b'{"test": 2432232315}', SPEC_NOW, "no matching signature"),  # tampered
        (spec_headers(**{"webhook-id": "msg_other"}), SPEC_BODY, SPEC_NOW, "no matching"),
        (
            spec_headers(**{"webhook-timestamp": str(SPEC_TIMESTAMP + 1)}),
            SPEC_BODY,
            SPEC_NOW,
            "no matching",
        ),
        (spec_headers(), SPEC_BODY, SPEC_NOW + timedelta(seconds=301), "outside the tolerance"),
        (spec_headers(), SPEC_BODY, SPEC_NOW - timedelta(seconds=301), "outside the tolerance"),
        ({"webhook-id": SPEC_ID, "webhook-timestamp": "1"}, SPEC_BODY, SPEC_NOW, "missing"),
        (spec_headers(**{"webhook-timestamp": "soon"}), SPEC_BODY, SPEC_NOW, "not an integer"),
        (
            spec_headers(**{"webhook-signature": "v2," + SPEC_SIGNATURE[3:]}),
            SPEC_BODY,
            SPEC_NOW,
            "no matching",
        ),
    ],
)
def test_the_documented_check_rejects(
    headers: dict[str, str], body: bytes, now: datetime, why: str
) -> None:
    with pytest.raises(WebhookVerificationError, match=why):
        verify(SPEC_SECRET, headers, body, now)


def test_another_secret_does_not_verify() -> None:
    with pytest.raises(WebhookVerificationError):
        verify(WEBHOOK_SECRET, spec_headers(), SPEC_BODY, SPEC_NOW)


def hook_sink(url: str, **extra: object) -> dict[str, object]:
    return {"name": "hook", "type": "webhook", "url": url, "secret_env": "HOOK_SECRET", **extra}


async def _sink(url: str) -> tuple[WebhookSink, aiohttp.ClientSession, WebhookSinkSettings]:
    s = settings({"sinks": [hook_sink(url, headers={"X-Env": "prod"})]})
    sink_settings = s.sink("hook")
    assert isinstance(sink_settings, WebhookSinkSettings)
    session = aiohttp.ClientSession()
    return WebhookSink(sink_settings, session, timeout_s=2), session, sink_settings


async def test_delivery_headers_and_versioned_schema(receiver: WebhookReceiver) -> None:
    sink, session, _ = await _sink(receiver.url)
    try:
        o = outage("carrier-a-t00")
        ctx = TicketContext(o.id, "carrier-a", (o,))
        tickets = settings({"sinks": [hook_sink(receiver.url)]})
        request = compose(tickets, tickets.sink("hook"), Action.OPEN, ctx, "tw_abc", None, 1)
        result = await sink.open(request)
        assert result == Delivered(TicketRef(external_id="HOOK-1"))
        [(headers, body)] = receiver.raw
        assert headers["webhook-id"] == "tw_abc"
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Env"] == "prod"
        assert headers["webhook-signature"].startswith("v1,")
        assert abs(int(headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 5
        data = json.loads(body)
        assert set(data) == {"type", "timestamp", "schema_version", "data"}
        assert (data["type"], data["schema_version"]) == ("ticket.open", SCHEMA_VERSION)
        assert data["timestamp"] == o.confirmed_at.isoformat()
        assert set(data["data"]) == {
            "ref", "ticket_key", "sink", "severity", "kind", "carrier", "grouped", "member",
            "subject", "body", "fields", "ticket", "outages",
        }  # fmt: skip
        assert data["data"]["outages"] == [o.to_dict()]
        assert data["data"]["ticket"] is None

        done = closed(o)
        ctx = TicketContext(o.id, "carrier-a", (done,))
        ticket = TicketRef(external_id="HOOK-1")
        request = compose(tickets, tickets.sink("hook"), Action.RESOLVE, ctx, "tw_def", ticket, 1)
        assert await sink.resolve(request) == Delivered()
        resolve = json.loads(receiver.raw[1][1])
        assert resolve["type"] == "ticket.resolve"
        assert resolve["timestamp"] == done.closed_at.isoformat()  # type: ignore[union-attr]
        assert resolve["data"]["ticket"]["external_id"] == "HOOK-1"
    finally:
        await session.close()


async def test_replays_are_refused_by_the_documented_check(receiver: WebhookReceiver) -> None:
    sink, session, _ = await _sink(receiver.url)
    try:
        o = outage("carrier-a-t00")
        tickets = settings({"sinks": [hook_sink(receiver.url)]})
        ctx = TicketContext(o.id, "carrier-a", (o,))
        request = compose(tickets, tickets.sink("hook"), Action.OPEN, ctx, "tw_once", None, 1)
        await sink.open(request)
        headers, body = receiver.raw[0]
        # Captured and replayed ten minutes later: the timestamp check refuses it.
        later = datetime.now(UTC) + timedelta(minutes=10)
        with pytest.raises(WebhookVerificationError, match="tolerance"):
            verify(WEBHOOK_SECRET, headers, body, later)
        # Replayed at once, to the receiver: verified, but the id was seen: no new ticket.
        async with session.post(receiver.url, data=body, headers=headers) as reply:
            assert reply.status == 200
        assert len(receiver.tickets) == 1
        # Tampered: the receiver refuses it with 401.
        forged = body.replace(b"carrier-a-t00", b"carrier-a-t99")
        async with session.post(receiver.url, data=forged, headers=headers) as reply:
            assert reply.status == 401
        assert receiver.rejected == ["no matching signature"]
    finally:
        await session.close()
