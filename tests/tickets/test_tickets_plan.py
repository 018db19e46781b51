"""Ticket planning as a pure function (issue 11): plain values in, steps out — no database,
no event loop. The store's side (tests/tickets/test_tickets_outbox.py) applies these steps."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from tickets_support import settings

from monitor.events import Outage, OutageClosed, OutageKind, OutageOpened
from monitor.tickets.base import Action
from monitor.tickets.grouping import group_key
from monitor.tickets.plan import (
    Book,
    Expedite,
    Merge,
    NewTicket,
    OutboxRequest,
    TicketEntry,
    WaitingOpen,
    plan,
)
from monitor.tickets.routing import TicketRouting

NOW = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)
HOOK = {
    "name": "hook",
    "type": "webhook",
    "url": "http://127.0.0.1:9/h",
    "secret_env": "HOOK_SECRET",
}


def routing(grouping: bool = False) -> TicketRouting:
    data: dict[str, object] = {"sinks": [HOOK]}
    if grouping:
        data["grouping"] = {"enabled": True, "carriers": ["cx"], "window": "15s"}
    return TicketRouting.build(settings(data), [("a", "cx"), ("b", "cx"), ("z", "other")])


def outage(ident: str, trunk: str, *, closed: bool = False) -> Outage:
    o = Outage(ident, trunk, OutageKind.OUTAGE, NOW - timedelta(seconds=9), NOW, "timeout")
    return o.closed(restored_at=NOW, closed_at=NOW) if closed else o


def requests(steps: list[object]) -> list[OutboxRequest]:
    return [s for s in steps if isinstance(s, OutboxRequest)]


def test_an_outage_gets_a_ticket_row_and_an_open_request_due_now() -> None:
    o = outage("o1", "z")
    steps = plan([OutageOpened(o)], routing(), Book(outages={"o1": o}), NOW)
    assert steps[0] == NewTicket(o, "hook", NOW)
    (request,) = requests(steps)
    assert (request.action, request.sink, request.due_at) == (Action.OPEN, "hook", NOW)
    assert request.context.outages == (o,) and not request.context.grouped


def test_a_replayed_batch_plans_nothing() -> None:
    o = outage("o1", "z")
    book = Book(outages={"o1": o}, tickets=[TicketEntry("o1", "hook", "o1", "open")])
    assert plan([OutageOpened(o)], routing(), book, NOW) == []


def test_open_and_close_in_one_batch_request_open_then_resolve() -> None:
    o = outage("o1", "z")
    shut = o.closed(restored_at=NOW, closed_at=NOW)
    steps = plan([OutageOpened(o), OutageClosed(shut)], routing(), Book({"o1": shut}), NOW)
    assert [r.action for r in requests(steps)] == [Action.OPEN, Action.RESOLVE]


def test_a_failed_ticket_is_not_resolved() -> None:
    o = outage("o1", "z", closed=True)
    book = Book(outages={"o1": o}, tickets=[TicketEntry("o1", "hook", "o1", "failed")])
    assert plan([OutageClosed(o)], routing(), book, NOW) == []


def test_the_carriers_trunks_all_down_merge_into_one_grouped_ticket() -> None:
    a, b = outage("oa", "a"), outage("ob", "b")
    first = plan([OutageOpened(a)], routing(grouping=True), Book(outages={"oa": a}), NOW)
    (waiting,) = requests(first)
    assert waiting.due_at == NOW + timedelta(seconds=15)  # the grouping window
    assert not [s for s in first if isinstance(s, Merge)]

    book = Book(
        outages={"oa": a, "ob": b},
        tickets=[TicketEntry("oa", "hook", "oa", "requested")],
        waiting=[WaitingOpen(waiting.idempotency_key, "oa", "hook", a)],
    )
    steps = plan([OutageOpened(b)], routing(grouping=True), book, NOW)
    key = group_key(["oa", "ob"])
    merge = next(s for s in steps if isinstance(s, Merge))
    assert merge.members == ("oa", "ob") and merge.group == key
    assert waiting.idempotency_key in merge.requests
    grouped = requests(steps)[-1]
    assert grouped.context.grouped and grouped.context.key == key and grouped.due_at == NOW
    assert [o.trunk for o in grouped.context.outages] == ["a", "b"]

    # One member comes back: a note; the last one: the resolution.
    tickets = [TicketEntry("oa", "hook", key, "open"), TicketEntry("ob", "hook", key, "open")]
    a_back = a.closed(restored_at=NOW, closed_at=NOW)
    note = plan([OutageClosed(a_back)], routing(True), Book({"oa": a_back, "ob": b}, tickets), NOW)
    (update,) = requests(note)
    assert (update.action, update.discriminator, update.context.member) == (
        Action.UPDATE,
        "oa",
        "oa",
    )
    b_back = b.closed(restored_at=NOW, closed_at=NOW)
    done = plan(
        [OutageClosed(b_back)], routing(True), Book({"oa": a_back, "ob": b_back}, tickets), NOW
    )
    assert [r.action for r in requests(done)] == [Action.RESOLVE]


def test_a_lone_waiter_is_expedited_when_the_others_were_already_sent() -> None:
    a, b = outage("oa", "a"), outage("ob", "b")
    book = Book(
        outages={"oa": a, "ob": b},
        tickets=[TicketEntry("oa", "hook", "oa", "open")],  # sent alone before: not waiting
    )
    steps = plan([OutageOpened(b)], routing(grouping=True), book, NOW)
    (expedite,) = [s for s in steps if isinstance(s, Expedite)]
    assert expedite.requests == (requests(steps)[0].idempotency_key,)


def test_plan_reads_only_the_values_it_is_given() -> None:
    # The book is not changed by planning: the same inputs give the same steps.
    o = outage("o1", "z")
    book = Book(outages={"o1": o})
    before = dataclasses.replace(book, outages=dict(book.outages))
    assert plan([OutageOpened(o)], routing(), book, NOW) == plan(
        [OutageOpened(o)], routing(), book, NOW
    )
    assert book == before
