"""Ticket texts (Spanish/English defaults, overrides) and the pure helpers: backoff,
Retry-After, error gists, group keys, metrics exposition."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from tickets_support import T0, outage, settings

from monitor.events import OutageKind
from monitor.metrics.exposition import ExpositionFormat
from monitor.metrics.tickets import TicketMetrics
from monitor.tickets.base import (
    Action,
    Rejected,
    RetryLater,
    TicketContext,
    TicketRef,
    idempotency_key,
    ticket_ref,
)
from monitor.tickets.compose import compose, with_ref_tag
from monitor.tickets.grouping import all_down, group_key, mergeable
from monitor.tickets.http_client import HttpReply, error_text, failure_of, parse_retry_after
from monitor.tickets.outbox import backoff_delay

SINK = {"name": "hook", "type": "webhook", "url": "https://x", "secret_env": "HOOK_SECRET"}


def worked_example() -> TicketContext:
    """DESIGN §2: detected 10-03 14:00 Mexico City, restored 15:32 (1 h 32 min)."""
    o = outage("mx-gdl-1", at=T0)
    o = o.closed(
        restored_at=T0 + timedelta(minutes=92), closed_at=T0 + timedelta(minutes=92, seconds=5)
    )
    return TicketContext(key=o.id, carrier="Carrier B", outages=(o,))


@pytest.mark.parametrize(
    ("language", "subject", "phrases"),
    [
        (
            "es",
            "Interrupción total del servicio: mx-gdl-1 (Carrier B)",
            [
                "Estimado equipo de soporte de Carrier B",
                "2026-10-03 14:00:00 CST",
                "timeout no answer in 4s",
            ],
        ),
        (
            "en",
            "Total service outage: mx-gdl-1 (Carrier B)",
            [
                "Dear Carrier B support team",
                "2026-10-03 14:00:00 CST",
                "downtime counts from the opening",
            ],
        ),
    ],
)
def test_default_open_texts(language: str, subject: str, phrases: list[str]) -> None:
    s = settings({"language": language, "timezone": "America/Mexico_City", "sinks": [SINK]})
    ctx = worked_example()
    request = compose(s, s.sink("hook"), Action.OPEN, ctx, "id", None, 1)
    assert request.subject == f"[{ctx.ref}] {subject}"
    for phrase in phrases:
        assert phrase in request.body
    assert "${" not in request.body


@pytest.mark.parametrize(
    ("language", "phrases"),
    [
        (
            "es",
            [
                "Restablecimiento:       2026-10-03 15:32:00 CST",
                "Duración:               1:32:00",
                "Su ticket:              4711",
            ],
        ),
        (
            "en",
            [
                "Restored:            2026-10-03 15:32:00 CST",
                "Duration:            1:32:00",
                "Your ticket:         4711",
            ],
        ),
    ],
)
def test_default_resolve_note_has_restoration_time_and_duration(
    language: str, phrases: list[str]
) -> None:
    s = settings({"language": language, "timezone": "America/Mexico_City", "sinks": [SINK]})
    ticket = TicketRef(external_id="x", number="4711")
    request = compose(s, s.sink("hook"), Action.RESOLVE, worked_example(), "id", ticket, 1)
    for phrase in phrases:
        assert phrase in request.body


def test_per_sink_language_and_overrides() -> None:
    s = settings(
        {
            "language": "es",
            "sinks": [
                {
                    **SINK,
                    "language": "en",
                    "templates": {"subject": "OUTAGE ${trunk} since ${first_failure_at_utc}"},
                    "fields": {"priority": "${severity}", "tags": ["tw", "${carrier}"], "n": 3},
                }
            ],
        }
    )
    request = compose(s, s.sink("hook"), Action.OPEN, worked_example(), "id", None, 1)
    assert request.subject == "OUTAGE mx-gdl-1 since 2026-10-03T20:00:00Z"
    assert request.body.startswith("Dear Carrier B")  # the sink's language for the default body
    assert request.fields == {"priority": "critical", "tags": ["tw", "Carrier B"], "n": 3}


def test_peer_text_cannot_add_lines_to_subjects() -> None:
    o = outage("t1")
    from dataclasses import replace

    o = replace(o, detail="evil\r\nBcc: victim@example.com")
    s = settings({"sinks": [{**SINK, "templates": {"subject": "${detail}"}}]})
    request = compose(s, s.sink("hook"), Action.OPEN, TicketContext(o.id, "c", (o,)), "id", None, 1)
    assert "\n" not in request.subject and "\r" not in request.subject
    assert "Bcc: victim" in request.subject  # kept as text, on the one line


def test_degradation_texts_and_severity() -> None:
    o = outage("t1", kind=OutageKind.DEGRADATION)
    s = settings({"sinks": [SINK]})
    request = compose(s, s.sink("hook"), Action.OPEN, TicketContext(o.id, "c", (o,)), "id", None, 1)
    assert "Degradación del servicio" in request.subject
    assert request.severity.value == "warning"


def test_group_update_names_the_member_and_what_is_still_down() -> None:
    a, b, c = (outage(f"t{i}", at=T0) for i in range(3))
    a = a.closed(restored_at=T0 + timedelta(minutes=10), closed_at=T0 + timedelta(minutes=11))
    ctx = TicketContext(group_key([a.id, b.id, c.id]), "c", (a, b, c), grouped=True, member=a.id)
    s = settings({"language": "en", "sinks": [SINK]})
    request = compose(s, s.sink("hook"), Action.UPDATE, ctx, "id", None, 1)
    assert "Trunk t0 was restored at 2026-10-03 20:10:00 UTC (duration 0:10:00)" in request.body
    assert "Still down: t1, t2." in request.body
    assert request.subject == f"[{ctx.ref}] Restored t0 (c)"


def test_with_ref_tag() -> None:
    assert with_ref_tag("[TW-X] a", "TW-X") == "[TW-X] a"
    assert with_ref_tag("a", "TW-X") == "[TW-X] a"


# --- identifiers ---------------------------------------------------------------------------


def test_refs_and_idempotency_keys_are_deterministic_and_distinct() -> None:
    assert ticket_ref("o1") == ticket_ref("o1") != ticket_ref("o2")
    assert ticket_ref("o1").startswith("TW-") and ticket_ref("o1")[3:].isalnum()
    keys = {idempotency_key("o1", s, a, d) for s in ("a", "b") for a in Action for d in ("", "x")}
    assert len(keys) == 12
    assert idempotency_key("o1", "a", Action.OPEN) == idempotency_key("o1", "a", Action.OPEN)


def test_group_keys() -> None:
    assert group_key(["b", "a"]) == group_key(["a", "b"]) != group_key(["a", "c"])
    with pytest.raises(ValueError):
        group_key(["a"])
    assert all_down(frozenset({"t1", "t2"}), {"t1": "o1", "t2": "o2", "x": "o3"})
    assert not all_down(frozenset({"t1", "t2"}), {"t1": "o1"})
    assert not all_down(frozenset(), {})
    # Only still-open outages join, and a group needs two.
    assert mergeable({"o1": "t1", "o2": "t2"}, {"t1": "o1", "t2": "o2"}) == ["o1", "o2"]
    assert mergeable({"o1": "t1", "old": "t2"}, {"t1": "o1", "t2": "o2"}) == []


# --- backoff and HTTP classification ----------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 0.5, 1.0),
        (2, 1.0, 2.0),
        (3, 2.0, 4.0),
        (9, 128.0, 256.0),
        (10, 150.0, 300.0),  # 512 s capped at 300
        (10_000, 150.0, 300.0),
    ],
)
def test_backoff_is_exponential_with_equal_jitter_and_capped(
    attempt: int, low: float, high: float
) -> None:
    rng = random.Random(7)
    delays = [backoff_delay(attempt, 1.0, 300.0, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) * 0.5  # jitter actually spreads them


def test_retry_after_is_a_floor_for_the_backoff() -> None:
    assert backoff_delay(1, 1.0, 300.0, random.Random(1), retry_after_s=42.0) == 42.0
    assert 0.5 <= backoff_delay(1, 1.0, 300.0, random.Random(1), retry_after_s=0.0) <= 1.0


NOW = datetime(2026, 10, 3, 20, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("999999", 3600.0),  # capped
        ("Sat, 03 Oct 2026 20:01:30 GMT", 90.0),  # RFC 9110 IMF-fixdate
        ("Sat, 03 Oct 2026 19:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, Rejected), (401, Rejected), (403, Rejected), (404, Rejected), (409, Rejected),
     (422, Rejected), (301, Rejected), (408, RetryLater), (429, RetryLater), (500, RetryLater),
     (502, RetryLater), (503, RetryLater), (504, RetryLater)],
)  # fmt: skip
def test_status_classification(status: int, kind: type) -> None:
    result = failure_of(HttpReply(status, {"Retry-After": "7"}, "x"), "sink", NOW)
    assert isinstance(result, kind)
    if isinstance(result, RetryLater):
        assert result.retry_after_s == 7.0


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (  # ServiceNow
            {
                "error": {
                    "message": "User Not Authenticated",
                    "detail": "Required to provide Auth information",
                },
                "status": "failure",
            },
            "User Not Authenticated: Required to provide Auth information",
        ),
        (  # Zammad
            {"error": "Not authorized", "error_human": "Authorization failed"},
            "Authorization failed",
        ),
        (  # Jira Service Management
            {"errorMessage": "The request type is invalid", "i18nErrorMessage": {"i18nKey": "k"}},
            "The request type is invalid",
        ),
        (  # PagerDuty
            {"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]},
            "Event object is invalid",
        ),
        (  # Request Tracker
            {"message": "No permission to create tickets in the queue 'Nope'"},
            "No permission to create tickets in the queue 'Nope'",
        ),
        (None, "plain body"),
    ],
)
def test_error_gist_from_each_sinks_error_shape(data: object, text: str) -> None:
    assert error_text(HttpReply(400, {}, "plain body", data)) == text


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_exposition() -> None:
    m = TicketMetrics()
    m.count("hook", "success")
    m.count("hook", "retry")
    m.count("hook", "retry")
    m.observe_open_latency("hook", 0.3)
    m.observe_open_latency("hook", 120.0)
    m.pending = 4
    text = m.render(ExpositionFormat.TEXT, ("hook", "rt"))
    assert 'trunkwatch_ticket_requests_total{result="retry",sink="hook"} 2.0' in text
    assert 'trunkwatch_ticket_requests_total{result="rejected",sink="rt"} 0.0' in text
    assert 'trunkwatch_ticket_open_latency_seconds_bucket{le="0.5",sink="hook"} 1.0' in text
    assert 'trunkwatch_ticket_open_latency_seconds_bucket{le="300.0",sink="hook"} 2.0' in text
    assert 'trunkwatch_ticket_open_latency_seconds_count{sink="hook"} 2.0' in text
    assert 'trunkwatch_ticket_open_latency_seconds_sum{sink="hook"} 120.3' in text
    assert "trunkwatch_ticket_outbox_pending 4.0" in text
