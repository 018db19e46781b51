"""PagerDuty, ServiceNow, Jira Service Management and Zammad sinks against contract fakes,
driven through the whole service: open, lost replies, rate limits, bad credentials, resolve."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from aiohttp import web
from ticket_fakes import (
    JIRA_EMAIL,
    JIRA_TOKEN,
    PD_ROUTING_KEY,
    SN_PASSWORD,
    SN_USER,
    ZAMMAD_TOKEN,
    Fake,
    JiraFake,
    PagerDutyFake,
    ServiceNowFake,
    ZammadFake,
)
from tickets_support import FAST_OUTBOX, closed, outage, settings, until

from monitor.events import OutageClosed, OutageKind, OutageOpened
from monitor.store import Store
from monitor.store.schema import TicketState
from monitor.tickets.ledger import list_tickets
from monitor.tickets.service import TicketService

ENV = {
    "PD_KEY": PD_ROUTING_KEY,
    "SN_PW": SN_PASSWORD,
    "JIRA_TOKEN": JIRA_TOKEN,
    "ZAMMAD_TOKEN": ZAMMAD_TOKEN,
    "WRONG": "wrong-secret-value",
}


@dataclass(frozen=True)
class Case:
    name: str
    fake: Callable[[], Fake]
    sink: Callable[[str, bool], dict[str, Any]]  # (fake url, good credentials) → sink config
    count: Callable[[Any], int]  # tickets the fake holds (open or resolved)
    notes: Callable[[Any], list[str]]  # texts added to the one ticket after creation
    resolved: Callable[[Any], bool]
    has_notes: bool = True


def pd_sink(url: str, good: bool) -> dict[str, Any]:
    return {
        "name": "pd",
        "type": "pagerduty",
        "url": f"{url}/v2/enqueue",
        "routing_key_env": "PD_KEY" if good else "WRONG",
    }


def sn_sink(url: str, good: bool) -> dict[str, Any]:
    return {
        "name": "sn",
        "type": "servicenow",
        "url": url,
        "username": SN_USER,
        "password_env": "SN_PW" if good else "WRONG",
    }


def jira_sink(url: str, good: bool) -> dict[str, Any]:
    return {
        "name": "jsm",
        "type": "jira",
        "url": url,
        "service_desk_id": "1",
        "request_type_id": "10",
        "resolve_transition_id": "761",
        "username": JIRA_EMAIL,
        "token_env": "JIRA_TOKEN" if good else "WRONG",
    }


def zammad_sink(url: str, good: bool) -> dict[str, Any]:
    return {
        "name": "zammad",
        "type": "zammad",
        "url": url,
        "group": "Users",
        "customer": "noc@customer.example",
        "token_env": "ZAMMAD_TOKEN" if good else "WRONG",
    }


CASES = [
    Case(
        "pagerduty",
        PagerDutyFake,
        pd_sink,
        lambda f: len(f.alerts) + len(f.resolved),
        lambda f: [],  # the Events API has no notes
        lambda f: len(f.resolved) == 1 and not f.alerts,
        has_notes=False,
    ),
    Case(
        "servicenow",
        ServiceNowFake,
        sn_sink,
        lambda f: len(f.records),
        lambda f: next(iter(f.records.values()))["work_notes_journal"],
        lambda f: next(iter(f.records.values()))["state"] == "6",
    ),
    Case(
        "jira",
        JiraFake,
        jira_sink,
        lambda f: len(f.issues),
        lambda f: [c["body"] for c in next(iter(f.issues.values()))["comments"]],
        lambda f: next(iter(f.issues.values()))["status"] == "Resolved",
    ),
    Case(
        "zammad",
        ZammadFake,
        zammad_sink,
        lambda f: len(f.tickets),
        lambda f: [a["body"] for a in next(iter(f.tickets.values()))["articles"][1:]],
        lambda f: next(iter(f.tickets.values()))["state"] == "closed",
    ),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
async def case(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Case, Fake]]:
    c: Case = request.param
    fake = c.fake()
    await fake.start()
    yield c, fake
    await fake.stop()


async def service_for(store: Store, sink: dict[str, Any], **extra: Any) -> TicketService:
    data: dict[str, Any] = {"language": "en", "outbox": FAST_OUTBOX, "sinks": [sink], **extra}
    service = TicketService(settings(data, ENV), [("mx-1", "carrier-a")])
    await service.start(store)
    return service


async def state_is(store: Store, state: str) -> bool:
    return [t.state for t in await list_tickets(store)] == [state]


async def test_lifecycle_open_note_resolve(store: Store, case: tuple[Case, Fake]) -> None:
    c, fake = case
    service = await service_for(store, c.sink(fake.url, True))
    try:
        o = outage("mx-1")
        await service.append(store, [OutageOpened(o)])
        await until(lambda: state_is(store, TicketState.OPEN))
        [ticket] = await list_tickets(store)
        assert ticket.external_id and ticket.acknowledged_at is not None
        await service.append(store, [OutageClosed(closed(o, after_s=3723))])
        await until(lambda: state_is(store, TicketState.RESOLVED))
        assert c.count(fake) == 1
        assert c.resolved(fake)
        if c.has_notes:
            [note] = c.notes(fake)
            assert "1:02:03" in note and "Restored:" in note
    finally:
        await service.stop()


async def test_a_lost_create_reply_still_gives_one_ticket(
    store: Store, case: tuple[Case, Fake]
) -> None:
    c, fake = case
    fake.lose_replies = 1  # the first create happens, its reply is lost
    service = await service_for(store, c.sink(fake.url, True))
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: state_is(store, TicketState.OPEN))
        assert c.count(fake) == 1
        posts = [r for r in fake.requests if r[0] == "POST"]
        assert len(posts) >= 1
        [ticket] = await list_tickets(store)
        assert ticket.external_id
    finally:
        await service.stop()


async def test_rate_limits_are_retried(store: Store, case: tuple[Case, Fake]) -> None:
    c, fake = case
    fake.rate_limit = 1
    service = await service_for(store, c.sink(fake.url, True))
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: state_is(store, TicketState.OPEN), timeout_s=4)
        assert c.count(fake) == 1
        assert service.metrics.requests[(c.sink("", True)["name"], "retry")] == 1
    finally:
        await service.stop()


async def test_bad_credentials_are_refused_not_retried(
    store: Store, case: tuple[Case, Fake]
) -> None:
    c, fake = case
    service = await service_for(store, c.sink(fake.url, False))
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: state_is(store, TicketState.FAILED))
        [ticket] = await list_tickets(store)
        assert ticket.last_error is not None
        assert "wrong-secret-value" not in ticket.last_error
        assert c.count(fake) == 0
        assert len(fake.requests) == 1
    finally:
        await service.stop()


# --- per-sink contract details -------------------------------------------------------------


async def test_pagerduty_event_fields(store: Store) -> None:
    fake = PagerDutyFake()
    await fake.start()
    service = await service_for(store, pd_sink(fake.url, True), degradations=True)
    try:
        o = outage("mx-1", kind=OutageKind.DEGRADATION)
        await service.append(store, [OutageOpened(o)])
        await until(lambda: state_is(store, TicketState.OPEN))
        [(method, path, event)] = fake.requests
        assert (method, path) == ("POST", "/v2/enqueue")
        assert event["dedup_key"] == f"trunkwatch/{o.id}"
        assert event["event_action"] == "trigger"
        assert event["payload"]["severity"] == "warning"
        assert event["payload"]["component"] == "mx-1"
        assert event["payload"]["group"] == "carrier-a"
        [ticket] = await list_tickets(store)
        assert ticket.external_id == f"trunkwatch/{o.id}"
        await service.append(store, [OutageClosed(closed(o))])
        await until(lambda: state_is(store, TicketState.RESOLVED))
        assert fake.requests[-1][2] == {
            "routing_key": PD_ROUTING_KEY,
            "dedup_key": f"trunkwatch/{o.id}",
            "event_action": "resolve",
        }
    finally:
        await service.stop()
        await fake.stop()


async def test_servicenow_incident_fields_and_lookup(store: Store) -> None:
    fake = ServiceNowFake()
    await fake.start()
    service = await service_for(store, {**sn_sink(fake.url, True), "fields": {"caller_id": "noc"}})
    try:
        o = outage("mx-1")
        await service.append(store, [OutageOpened(o)])
        await until(lambda: state_is(store, TicketState.OPEN))
        [record] = fake.records.values()
        assert record["correlation_id"] == f"trunkwatch:{o.id}"
        assert (record["urgency"], record["impact"], record["caller_id"]) == ("1", "1", "noc")
        [ticket] = await list_tickets(store)
        assert (ticket.external_id, ticket.number) == (record["sys_id"], "INC0010001")
        assert ticket.sink_created_at is not None
    finally:
        await service.stop()
        await fake.stop()


async def test_jira_request_fields(store: Store) -> None:
    fake = JiraFake()
    await fake.start()
    service = await service_for(store, jira_sink(fake.url, True))
    try:
        o = outage("mx-1")
        await service.append(store, [OutageOpened(o)])
        await until(lambda: state_is(store, TicketState.OPEN))
        [issue] = fake.issues.values()
        [ticket] = await list_tickets(store)
        assert issue["summary"].startswith(f"[{ticket.ref}] ")
        assert (ticket.external_id, ticket.number) == ("NOC-1", "NOC-1")
        assert ticket.url == f"{fake.url}/servicedesk/customer/portal/1/NOC-1"
        assert ticket.sink_created_at is not None
    finally:
        await service.stop()
        await fake.stop()


async def test_jira_wrong_request_type_is_refused_with_its_message(store: Store) -> None:
    fake = JiraFake()
    await fake.start()
    service = await service_for(store, {**jira_sink(fake.url, True), "request_type_id": "99"})
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: state_is(store, TicketState.FAILED))
        [ticket] = await list_tickets(store)
        assert "The request type you are trying to use does not exist." in (ticket.last_error or "")
    finally:
        await service.stop()
        await fake.stop()


async def test_zammad_ticket_fields(store: Store) -> None:
    fake = ZammadFake()
    await fake.start()
    service = await service_for(store, zammad_sink(fake.url, True))
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: state_is(store, TicketState.OPEN))
        [zt] = fake.tickets.values()
        assert (zt["group"], zt["priority"]) == ("Users", "3 high")
        assert zt["articles"][0]["type"] == "note"
        [ticket] = await list_tickets(store)
        assert (ticket.external_id, ticket.number) == ("1", "31001")
        assert ticket.url == f"{fake.url}/#ticket/zoom/1"
    finally:
        await service.stop()
        await fake.stop()


async def test_zammad_unknown_group_is_refused(store: Store) -> None:
    fake = ZammadFake()
    await fake.start()
    service = await service_for(store, {**zammad_sink(fake.url, True), "group": "Nope"})
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: state_is(store, TicketState.FAILED))
        [ticket] = await list_tickets(store)
        assert "No lookup value found for 'group'" in (ticket.last_error or "")
    finally:
        await service.stop()
        await fake.stop()


@pytest.mark.parametrize("which", ["servicenow", "pagerduty", "zammad"])
async def test_secrets_echoed_by_a_server_never_reach_logs_or_the_store(
    store: Store, which: str
) -> None:
    async def echo(request: web.Request) -> web.Response:
        # A misbehaving server: its error page repeats our request, credentials included.
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        return web.Response(status=400, text=f"bad request\n{headers}\n{await request.text()}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    sink = {"servicenow": sn_sink, "pagerduty": pd_sink, "zammad": zammad_sink}[which](url, True)
    secret = {"servicenow": SN_PASSWORD, "pagerduty": PD_ROUTING_KEY, "zammad": ZAMMAD_TOKEN}[which]
    basic = base64.b64encode(f"{SN_USER}:{SN_PASSWORD}".encode()).decode()
    try:
        with structlog.testing.capture_logs() as logs:
            service = await service_for(store, sink)
            try:
                await service.append(store, [OutageOpened(outage("mx-1"))])
                await until(lambda: state_is(store, TicketState.FAILED))
            finally:
                await service.stop()
        [ticket] = await list_tickets(store)
        assert ticket.last_error is not None and "bad request" in ticket.last_error
        assert "***" in ticket.last_error
        for text in (ticket.last_error, repr(logs)):
            assert secret not in text and basic not in text
    finally:
        await runner.cleanup()
