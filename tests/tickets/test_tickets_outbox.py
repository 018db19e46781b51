"""The outbox end to end: journal + request in one transaction, delivery, faults, grouping,
maintenance, restarts; against a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from tickets_support import (
    FAST_OUTBOX,
    WebhookReceiver,
    closed,
    outage,
    until,
    webhook_settings,
)

from monitor.events import OutageClosed, OutageKind, OutageOpened
from monitor.store import Store
from monitor.store.schema import OutboxStatus, TicketState, journal, outages
from monitor.tickets.base import Action, idempotency_key
from monitor.tickets.ledger import append_with_outbox, list_tickets, outbox_rows
from monitor.tickets.routing import TicketRouting
from monitor.tickets.service import TicketService

CARRIER = "carrier-a"


def trunks(n: int, carrier: str = CARRIER) -> list[tuple[str, str]]:
    return [(f"{carrier}-t{i:02d}", carrier) for i in range(n)]


async def start(
    store: Store, receiver: WebhookReceiver, n_trunks: int = 1, **extra: Any
) -> TicketService:
    in_maintenance = extra.pop("in_maintenance", None)
    service = TicketService(
        webhook_settings(receiver.url, **extra),
        trunks(n_trunks),
        **({"in_maintenance": in_maintenance} if in_maintenance else {}),
    )
    await service.start(store)
    return service


async def tickets_where(store: Store, state: str) -> int:
    return sum(1 for t in await list_tickets(store) if t.state == state)


def count_is(store: Store, state: str, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await tickets_where(store, state) == n

    return check


# --- one transaction -----------------------------------------------------------------------


async def test_outage_and_its_ticket_request_are_written_together(store: Store) -> None:
    routing = TicketRouting.build(webhook_settings("http://127.0.0.1:9/hook"), trunks(1))
    o = outage("carrier-a-t00")
    now = datetime.now(UTC)
    await append_with_outbox(store, [OutageOpened(o)], routing, now)
    [ticket] = await list_tickets(store)
    assert (ticket.outage_id, ticket.sink, ticket.state) == (o.id, "hook", TicketState.REQUESTED)
    assert ticket.requested_at == now
    [row] = await outbox_rows(store)
    assert (row.action, row.status, row.attempts) == (Action.OPEN, OutboxStatus.PENDING, 0)
    assert row.idempotency_key == idempotency_key(o.id, "hook", Action.OPEN)
    assert row.context.outages == (o,)


async def test_a_failing_extra_step_rolls_back_the_journal_too(store: Store) -> None:
    async def broken(conn: AsyncConnection) -> None:
        raise RuntimeError("outbox write failed")

    with pytest.raises(RuntimeError, match="outbox write failed"):
        await store.append([OutageOpened(outage("carrier-a-t00"))], extra=broken)
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(journal))).scalar_one() == 0
        assert (await conn.execute(select(func.count()).select_from(outages))).scalar_one() == 0
    assert await store.open_outages() == []


async def test_extra_sees_the_rows_the_append_wrote(store: Store) -> None:
    seen: list[int] = []

    async def count(conn: AsyncConnection) -> None:
        seen.append((await conn.execute(select(func.count()).select_from(outages))).scalar_one())

    await store.append([OutageOpened(outage("carrier-a-t00"))], extra=count)
    assert seen == [1]


async def test_a_replayed_batch_queues_nothing_twice(store: Store) -> None:
    routing = TicketRouting.build(webhook_settings("http://127.0.0.1:9/hook"), trunks(1))
    o = outage("carrier-a-t00")
    now = datetime.now(UTC)
    await append_with_outbox(store, [OutageOpened(o)], routing, now)
    await append_with_outbox(store, [OutageClosed(closed(o))], routing, now)
    async with store.engine.begin() as conn:  # the same events again (a re-flushed batch)
        from monitor.tickets.ledger import enqueue

        await enqueue(conn, [OutageOpened(o), OutageClosed(closed(o))], routing, now)
    rows = await outbox_rows(store)
    assert [r.action for r in rows] == [Action.OPEN, Action.RESOLVE]


# --- delivery --------------------------------------------------------------------------------


async def test_ticket_is_requested_within_a_second_and_resolved_with_a_note(
    store: Store, receiver: WebhookReceiver
) -> None:
    service = await start(store, receiver)
    try:
        o = outage("carrier-a-t00", at=datetime.now(UTC) - timedelta(seconds=2))
        await service.append(store, [OutageOpened(o)])
        await until(lambda: len(receiver.opens()) == 1, timeout_s=2)
        await until(lambda: tickets_where(store, TicketState.OPEN), timeout_s=2)
        [ticket] = await list_tickets(store)
        assert ticket.first_sent_at is not None and ticket.acknowledged_at is not None
        assert (ticket.first_sent_at - o.confirmed_at).total_seconds() < 1.0
        assert ticket.external_id == "HOOK-1"
        assert ticket.first_sent_at <= ticket.acknowledged_at

        done = closed(o, after_s=5400)  # 1 h 30 min
        await service.append(store, [OutageClosed(done)])
        await until(lambda: tickets_where(store, TicketState.RESOLVED))
        resolve = [d for d in receiver.deliveries if d.type == "ticket.resolve"]
        assert len(resolve) == 1
        data = resolve[0].body["data"]
        assert data["ticket"]["external_id"] == "HOOK-1"
        assert "1:30:00" in data["body"]  # the restoration note's duration
        assert data["outages"][0]["restored_at"] == done.restored_at.isoformat()  # type: ignore[union-attr]
        [ticket] = await list_tickets(store)
        assert ticket.resolved_at is not None
        assert service.metrics.requests[("hook", "success")] == 2
        assert sum(service.metrics.latency["hook"].counts) == 1
    finally:
        await service.stop()


async def test_sink_down_for_the_whole_outage_then_back_gives_exactly_one_ticket(
    store: Store, receiver: WebhookReceiver
) -> None:
    receiver.down = True
    service = await start(store, receiver)
    try:
        o = outage("carrier-a-t00")
        await service.append(store, [OutageOpened(o)])
        await until(lambda: service.metrics.requests.get(("hook", "retry"), 0) >= 3)
        await service.append(store, [OutageClosed(closed(o, after_s=30))])
        await asyncio.sleep(0.3)
        assert receiver.deliveries == []  # still down: nothing got through
        [ticket] = await list_tickets(store)
        assert ticket.state == TicketState.REQUESTED and ticket.acknowledged_at is None
        assert ticket.last_error is not None and "503" in ticket.last_error
        assert service.metrics.pending == 2  # the open and the resolve wait, in order
        back_at = datetime.now(UTC)
        receiver.down = False
        await until(lambda: tickets_where(store, TicketState.RESOLVED))
        assert [d.type for d in receiver.deliveries] == ["ticket.open", "ticket.resolve"]
        assert len(receiver.tickets) == 1
        [ticket] = await list_tickets(store)
        # Both instants kept: requested at confirmation, acknowledged only once it was back.
        assert ticket.requested_at < back_at <= ticket.acknowledged_at  # type: ignore[operator]
        assert ticket.first_sent_at is not None and ticket.first_sent_at < back_at
    finally:
        await service.stop()


async def test_a_lost_reply_is_resent_with_the_same_id_and_the_receiver_keeps_one_ticket(
    store: Store, receiver: WebhookReceiver
) -> None:
    receiver.script = [(502, {})]  # verified and recorded, then the reply is an error
    service = await start(store, receiver)
    try:
        o = outage("carrier-a-t00")
        await service.append(store, [OutageOpened(o)])
        await until(lambda: tickets_where(store, TicketState.OPEN))
        opens = receiver.opens()
        assert len(opens) == 2
        assert opens[0].msg_id == opens[1].msg_id == idempotency_key(o.id, "hook", Action.OPEN)
        assert opens[0].body == opens[1].body  # the same payload, only the timestamp differs
        assert len(receiver.tickets) == 1
    finally:
        await service.stop()


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (400, False),
        (401, False),
        (404, False),
        (422, False),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
    ],
)
async def test_retry_policy_by_status(
    store: Store, receiver: WebhookReceiver, status: int, retried: bool
) -> None:
    receiver.script = [(status, {})]
    service = await start(store, receiver)
    try:
        o = outage("carrier-a-t00")
        await service.append(store, [OutageOpened(o)])
        final = TicketState.OPEN if retried else TicketState.FAILED
        await until(lambda: tickets_where(store, final))
        assert len(receiver.opens()) == (2 if retried else 1)
        if not retried:
            await service.append(store, [OutageClosed(closed(o))])
            await asyncio.sleep(0.2)
            rows = await outbox_rows(store)
            # No resolve is queued for a ticket the sink refused to open.
            assert [(r.action, r.status) for r in rows] == [(Action.OPEN, OutboxStatus.FAILED)]
            assert len(receiver.deliveries) == 1
            [ticket] = await list_tickets(store)
            assert ticket.last_error is not None and f"HTTP {status}" in ticket.last_error
    finally:
        await service.stop()


async def test_retry_after_is_honoured(store: Store, receiver: WebhookReceiver) -> None:
    receiver.script = [(429, {"Retry-After": "1"})]
    service = await start(store, receiver)
    try:
        await service.append(store, [OutageOpened(outage("carrier-a-t00"))])
        await until(lambda: len(receiver.opens()) == 2, timeout_s=4)
        first, second = receiver.opens()
        # The outbox backoff alone would retry after <= 200 ms; the sink asked for 1 s.
        assert (second.received_at - first.received_at).total_seconds() >= 0.95
    finally:
        await service.stop()


async def test_pending_requests_survive_a_restart(
    store: Store, receiver: WebhookReceiver, db_url: str
) -> None:
    receiver.down = True
    service = await start(store, receiver)
    await service.append(store, [OutageOpened(outage("carrier-a-t00"))])
    await until(lambda: service.metrics.requests.get(("hook", "retry"), 0) >= 1)
    await service.stop()
    await store.close()
    receiver.down = False
    again = await Store.open(db_url, agent="test-agent")
    service = await start(again, receiver)
    try:
        await until(lambda: tickets_where(again, TicketState.OPEN))
        assert len(receiver.tickets) == 1
    finally:
        await service.stop()
        await again.close()


# --- grouping --------------------------------------------------------------------------------


async def _carrier_down(store: Store, service: TicketService, n: int) -> list[Any]:
    down = [outage(name) for name, _ in trunks(n)]
    for o in down:  # confirmed one after another, as a probe round would
        await service.append(store, [OutageOpened(o)])
    return down


async def test_ten_trunks_down_give_ten_tickets_without_grouping(
    store: Store, receiver: WebhookReceiver
) -> None:
    service = await start(store, receiver, n_trunks=10)
    try:
        await _carrier_down(store, service, 10)
        await until(lambda: len(receiver.tickets) == 10)
        await until(count_is(store, TicketState.OPEN, 10))
        assert {len(d.body["data"]["outages"]) for d in receiver.opens()} == {1}
    finally:
        await service.stop()


async def test_ten_trunks_down_give_one_grouped_ticket_when_configured(
    store: Store, receiver: WebhookReceiver
) -> None:
    service = await start(store, receiver, n_trunks=10, grouping={"enabled": True, "window": "5s"})
    try:
        down = await _carrier_down(store, service, 10)
        await until(lambda: len(receiver.opens()) == 1)
        started = asyncio.get_running_loop().time()
        [grouped] = receiver.opens()
        data = grouped.body["data"]
        assert data["grouped"] is True
        assert sorted(o["trunk"] for o in data["outages"]) == [name for name, _ in trunks(10)]
        await until(count_is(store, TicketState.OPEN, 10))
        # Formed as the last trunk went down, not at the end of the 5 s window.
        assert asyncio.get_running_loop().time() - started < 2
        tickets = await list_tickets(store)
        assert len({t.external_id for t in tickets}) == 1
        assert len({t.ticket_key for t in tickets}) == 1

        for o in down[:9]:
            await service.append(store, [OutageClosed(closed(o))])
        await until(lambda: len([d for d in receiver.deliveries if d.type == "ticket.update"]) == 9)
        assert not [d for d in receiver.deliveries if d.type == "ticket.resolve"]
        await service.append(store, [OutageClosed(closed(down[9]))])
        await until(count_is(store, TicketState.RESOLVED, 10))
        assert len([d for d in receiver.deliveries if d.type == "ticket.resolve"]) == 1
        assert len(receiver.opens()) == 1
    finally:
        await service.stop()


async def test_grouping_waits_then_opens_single_tickets_when_not_all_are_down(
    store: Store, receiver: WebhookReceiver
) -> None:
    service = await start(store, receiver, n_trunks=3, grouping={"enabled": True, "window": "0.5s"})
    try:
        await _carrier_down(store, service, 2)  # 2 of 3: not the whole carrier
        await asyncio.sleep(0.3)
        assert receiver.opens() == []  # still inside the window
        await until(lambda: len(receiver.opens()) == 2, timeout_s=3)
        assert all(not d.body["data"]["grouped"] for d in receiver.opens())
    finally:
        await service.stop()


# --- maintenance, degradations ---------------------------------------------------------------


async def test_no_ticket_inside_maintenance_and_one_when_the_window_ends(
    store: Store, receiver: WebhookReceiver
) -> None:
    window = {"open": True}
    service = await start(store, receiver, in_maintenance=lambda trunk, at: window["open"])
    try:
        await service.append(store, [OutageOpened(outage("carrier-a-t00"))])
        await until(lambda: tickets_where(store, TicketState.HELD))
        await asyncio.sleep(1.2)  # at least one re-check inside the window
        assert receiver.deliveries == []
        ended_at = datetime.now(UTC)
        window["open"] = False
        await until(lambda: tickets_where(store, TicketState.OPEN), timeout_s=3)
        [ticket] = await list_tickets(store)
        assert ticket.first_sent_at is not None and ticket.first_sent_at >= ended_at
        assert (ticket.first_sent_at - ended_at).total_seconds() < 1.5
    finally:
        await service.stop()


async def test_an_outage_that_ends_inside_maintenance_never_gets_a_ticket(
    store: Store, receiver: WebhookReceiver
) -> None:
    service = await start(store, receiver, in_maintenance=lambda trunk, at: True)
    try:
        o = outage("carrier-a-t00")
        await service.append(store, [OutageOpened(o)])
        await until(lambda: tickets_where(store, TicketState.HELD))
        await service.append(store, [OutageClosed(closed(o))])
        await until(lambda: tickets_where(store, TicketState.SUPPRESSED), timeout_s=3)
        assert [r.status for r in await outbox_rows(store)] == [OutboxStatus.CANCELLED] * 2
        assert receiver.deliveries == []
    finally:
        await service.stop()


@pytest.mark.parametrize("degradations", [False, True])
async def test_degradations_open_tickets_only_when_configured(
    store: Store, receiver: WebhookReceiver, degradations: bool
) -> None:
    service = await start(store, receiver, degradations=degradations)
    try:
        await service.append(
            store, [OutageOpened(outage("carrier-a-t00", kind=OutageKind.DEGRADATION))]
        )
        if degradations:
            await until(lambda: len(receiver.opens()) == 1)
            assert receiver.opens()[0].body["data"]["severity"] == "warning"
        else:
            await asyncio.sleep(0.3)
            assert await list_tickets(store) == []
            assert receiver.deliveries == []
    finally:
        await service.stop()


def test_fast_outbox_settings_are_what_the_tests_assume() -> None:
    s = webhook_settings("http://127.0.0.1:9/hook")
    assert (s.outbox.retry_initial, s.outbox.retry_max) == (0.05, 0.2)
    assert FAST_OUTBOX["request_timeout"] == "2s"


async def test_on_events_wakes_the_worker_without_io(
    store: Store, receiver: WebhookReceiver
) -> None:
    service = await start(store, receiver)
    try:
        await asyncio.sleep(0.1)  # the worker is idle, waiting up to IDLE_POLL_S
        o = outage("carrier-a-t00")
        # Written by someone else's transaction (as app._flush would), no wake-up yet:
        await append_with_outbox(store, [OutageOpened(o)], service.routing, datetime.now(UTC))
        loop = asyncio.get_running_loop()
        started = loop.time()
        service.on_events([OutageOpened(o)])
        assert loop.time() - started < 0.01  # synchronous and cheap: no I/O on the hot path
        await until(lambda: len(receiver.opens()) == 1, timeout_s=2)  # far below IDLE_POLL_S
    finally:
        await service.stop()
