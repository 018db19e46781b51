"""The month-end workflow through both front ends (issue 11): each case is run through the CLI
and through the API on the same store, and must give the same answer — both call
monitor/sla/commands.py, the one place the ledger's rules live."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from aiohttp import web
from aiohttp.test_utils import TestClient
from sla_world import ACTOR, SERVICE, TRUNK, mx, settings_dict, worked_example
from typer.testing import CliRunner

from monitor import sla_cli
from monitor.api import ApiDeps, make_api_app
from monitor.sla.service import SlaContext

# The SLA commands as monitor/cli.py mounts them, without its logging set-up (which would
# point the process's logs at CliRunner's stream, closed after each call).
cli_app = typer.Typer()
for name, sub in (("sla", sla_cli.sla_app), ("outages", sla_cli.outages_app),
                  ("exclude", sla_cli.exclude_app), ("audit", sla_cli.audit_app)):  # fmt: skip
    cli_app.add_typer(sub, name=name)
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


@dataclass
class World:
    """The worked example's store, with its API client and a config file for the CLI."""

    ctx: SlaContext
    api: Client
    config: Path

    async def cli(self, *args: str) -> tuple[int, str]:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli_app, [*args[:2], "-c", str(self.config), *args[2:]]
        )
        return result.exit_code, result.output

    async def api_json(self, method: str, path: str, status: int, **kw: Any) -> Any:
        response = await self.api.request(method, f"/api/v1{path}", headers=AUTH, **kw)
        body = await response.text()
        assert response.status == status, body
        return json.loads(body) if body else None


@pytest.fixture
async def world(
    tmp_path: Path, aiohttp_client: Callable[[web.Application], Awaitable[Client]]
) -> AsyncIterator[World]:
    store, ctx = await worked_example(tmp_path)
    config = tmp_path / "trunkwatch.yaml"
    config.write_text(
        json.dumps(
            {
                "agent": "agent-1",
                "store": {"url": f"sqlite:///{tmp_path / 'tw.db'}"},
                "trunks": [{"name": TRUNK, "carrier": "CarrierX", "uri": "sip:127.0.0.1:5999"}],
                "sla": {"signing_key_file": str(tmp_path / "evidence.key"), **settings_dict()},
            }
        )
    )
    root = web.Application()
    root.add_subapp("/api/v1", make_api_app(ApiDeps(ctx, TOKEN, live_state=dict)))
    try:
        yield World(ctx, await aiohttp_client(root), config)
    finally:
        await store.close()


async def report(world: World, month: str) -> dict[str, Any]:
    code, out = await world.cli("sla", "report", "-s", SERVICE, "-m", month, "-f", "json")
    assert code == 0, out
    cli = json.loads(out[out.index("{") :])
    api = await world.api_json("GET", f"/services/{SERVICE}/report?month={month}&format=json", 200)
    for key in ("availability", "totals", "coverage", "unclaimed"):
        assert cli[key] == api[key], key
    return cli


@pytest.mark.parametrize("front_end", ["cli", "api"])
async def test_a_manual_outage_of_an_unwatched_month_counts(world: World, front_end: str) -> None:
    # November 2026: the daemon's last heartbeat was at its very start, so all of it is
    # unknown; the carrier's own log shows one hour down, ticket at once.
    before = await report(world, "2026-11")
    assert before["availability"]["pct"] == "100.0000"
    assert before["coverage"]["sufficient"] is False  # never a bare 100 % at 0 % coverage
    if front_end == "cli":
        code, out = await world.cli(
            "outages", "add", "-s", SERVICE, "--start", "2026-11-10T10:00",
            "--end", "2026-11-10T11:00", "--ticket-at", "2026-11-10T10:00",
            "--evidence", "carrier log CX-77", "--by", ACTOR,
        )  # fmt: skip
        assert code == 0, out
        assert "read as 2026-11-10T10:00:00-06:00 (America/Mexico_City)" in out
    else:
        await world.api_json(
            "POST", "/outages", 201,
            json={"service": SERVICE, "first_failure_at": "2026-11-10T10:00:00-06:00",
                  "restored_at": "2026-11-10T11:00:00-06:00",
                  "ticket_opened_at": "2026-11-10T10:00:00-06:00",
                  "evidence_ref": "carrier log CX-77", "by": ACTOR},
        )  # fmt: skip
    after = await report(world, "2026-11")
    (line,) = after["outages"]
    assert (line["source"], line["counted"]["minutes"]) == ("manual", "60.00")
    assert after["availability"]["pct"] == "99.8611"  # (720 − 1) / 720
    assert after["totals"]["counted"]["minutes"] == "60.00"
    assert Decimal(after["coverage"]["pct"]) > 0 and after["coverage"]["sufficient"] is False
    code, html = await world.cli("sla", "report", "-s", SERVICE, "-m", "2026-11", "-f", "html",
                                 "--lang", "en")  # fmt: skip
    assert code == 0 and "Insufficient coverage" in html


async def test_unknown_outage_ids_are_refused_by_both(world: World) -> None:
    code, out = await world.cli(
        "exclude", "add", "no-such-outage", "-s", SERVICE, "--kind", "customer_equipment",
        "--reason", "x", "--by", ACTOR,
    )  # fmt: skip
    assert code == 2 and "no outage no-such-outage of service" in out
    problem = await world.api_json(
        "POST", "/outages/no-such-outage/exclusions", 404,
        json={"service": SERVICE, "kind": "customer_equipment", "reason": "x", "by": ACTOR},
    )  # fmt: skip
    assert "no outage no-such-outage" in problem["message"]

    code, out = await world.cli(
        "outages", "correct-ticket", "no-such-outage", "--at", "2026-10-03T14:05:00-06:00",
        "--reason", "x", "--by", ACTOR,
    )  # fmt: skip
    assert code == 2 and "no outage no-such-outage" in out
    body = {"value": "2026-10-03T14:05:00-06:00", "reason": "x", "by": ACTOR}
    await world.api_json("POST", "/outages/no-such-outage/ticket-corrections", 404, json=body)


async def test_a_ticket_before_the_first_failure_is_refused_by_both(world: World) -> None:
    # o1 failed first at 14:00 (Mexico City).
    code, out = await world.cli(
        "outages", "correct-ticket", "o1", "--at", "2026-10-03T13:59", "--reason", "x",
        "--by", ACTOR,
    )  # fmt: skip
    assert code == 2 and "before the outage's first failure" in out
    body = {"value": "2026-10-03T13:59:00-06:00", "reason": "x", "by": ACTOR}
    problem = await world.api_json("POST", "/outages/o1/ticket-corrections", 422, json=body)
    assert "before the outage's first failure" in problem["message"]
    assert await world.ctx.ledger.ticket_corrections(["o1"]) == []


async def test_local_times_are_read_in_the_contract_zone_alike(world: World) -> None:
    code, out = await world.cli(
        "outages", "correct-ticket", "o1", "--at", "2026-10-03T14:03", "--reason", "carrier log",
        "--by", ACTOR,
    )  # fmt: skip
    assert code == 0, out
    assert "--at 2026-10-03T14:03 read as 2026-10-03T14:03:00-06:00" in out
    body = {"value": "2026-10-03T14:04:00-06:00", "reason": "carrier log", "by": ACTOR}
    await world.api_json("POST", "/outages/o1/ticket-corrections", 201, json=body)
    values = [c.value for c in await world.ctx.ledger.ticket_corrections(["o1"])]
    assert values == [mx(10, 3, 14, 3), mx(10, 3, 14, 4)]


async def test_unknown_exclusion_kinds_list_the_allowed_ones(world: World) -> None:
    code, out = await world.cli(
        "exclude", "add", "o2", "-s", SERVICE, "--kind", "acts_of_god", "--reason", "x",
        "--by", ACTOR,
    )  # fmt: skip
    assert code == 2 and "unknown exclusion kind" in out and "force_majeure" in out
    body = {"service": SERVICE, "kind": "acts_of_god", "reason": "x", "by": ACTOR}
    response = await world.api.post("/api/v1/outages/o2/exclusions", json=body, headers=AUTH)
    assert response.status == 400 and "force_majeure" in await response.text()


async def test_the_audit_log_reads_the_same_from_both(world: World) -> None:
    body = {"value": "2026-10-03T14:04:00-06:00", "reason": "carrier log", "by": ACTOR}
    await world.api_json("POST", "/outages/o1/ticket-corrections", 201, json=body)
    code, out = await world.cli("audit", "list")
    assert code == 0, out
    cli = json.loads(out)
    api = await world.api_json("GET", "/audit", 200)
    assert cli == api
    assert [e["action"] for e in cli][-1] == "ticket_correction.create"
    code, out = await world.cli("audit", "list", "--entity", "ticket_correction")
    assert [e["entity"] for e in json.loads(out)] == ["ticket_correction"]


@pytest.fixture
async def pair(
    tmp_path: Path, aiohttp_client: Callable[[web.Application], Awaitable[Client]]
) -> AsyncIterator[World]:
    """A service of two trunks down only when both are (rule all), watched all November;
    trunk a's journal has an outage 10:00-11:00 on the 10th (Mexico City)."""
    from sla_world import outage

    from monitor.events import TrunkState
    from monitor.events import TrunkStateChanged as Changed
    from monitor.sla.contracts import ContractsSettings
    from monitor.store import Store

    store = await Store.open(f"sqlite:///{tmp_path / 'tw.db'}", agent="agent-1")
    await store.append([Changed("a", mx(10, 30, 0), TrunkState.UNKNOWN, TrunkState.UP, "ok")])
    for event in outage("oa", mx(11, 10, 10), mx(11, 10, 11), trunk="a"):
        await store.append([event])
    await store.heartbeat(datetime.now(UTC))
    data = settings_dict()
    data["services"] = [{"name": SERVICE, "rule": "all", "parts": ["a", "b"]}]
    contracts = ContractsSettings.model_validate(
        {"signing_key_file": str(tmp_path / "evidence.key"), **data}
    )
    ctx = SlaContext(store, contracts)
    config = tmp_path / "trunkwatch.yaml"
    trunks = [{"name": n, "carrier": "CarrierX", "uri": f"sip:127.0.0.1:59{i}9"}
              for i, n in enumerate("ab")]  # fmt: skip
    config.write_text(
        json.dumps(
            {
                "agent": "agent-1",
                "store": {"url": f"sqlite:///{tmp_path / 'tw.db'}"},
                "trunks": trunks,
                "sla": {"signing_key_file": str(tmp_path / "evidence.key"), **data},
            }
        )
    )
    root = web.Application()
    root.add_subapp("/api/v1", make_api_app(ApiDeps(ctx, TOKEN, live_state=dict)))
    try:
        yield World(ctx, await aiohttp_client(root), config)
    finally:
        await store.close()


@pytest.mark.parametrize("front_end", ["cli", "api"])
async def test_a_manual_outage_of_one_trunk_is_composed_part_by_part(
    pair: World, front_end: str
) -> None:
    before = await report(pair, "2026-11")
    assert before["outages"][0]["kind"] == "degradation"  # one part of two down
    assert before["totals"]["counted"]["minutes"] == "0.00"
    # The carrier's log: trunk b was down 10:30-12:00, ticket at 10:30. Only 10:30-11:00
    # had both parts down.
    if front_end == "cli":
        code, out = await pair.cli(
            "outages", "add", "-s", SERVICE, "--trunk", "b", "--start", "2026-11-10T10:30",
            "--end", "2026-11-10T12:00", "--ticket-at", "2026-11-10T10:30",
            "--evidence", "carrier log CX-78", "--by", ACTOR,
        )  # fmt: skip
        assert code == 0, out
        code, out = await pair.cli(
            "outages", "add", "-s", SERVICE, "--trunk", "zz", "--start", "2026-11-10T10:30",
            "--evidence", "x", "--by", ACTOR,
        )  # fmt: skip
        assert code == 2 and "not a part of" in out
    else:
        await pair.api_json(
            "POST", "/outages", 201,
            json={"service": SERVICE, "trunk": "b",
                  "first_failure_at": "2026-11-10T10:30:00-06:00",
                  "restored_at": "2026-11-10T12:00:00-06:00",
                  "ticket_opened_at": "2026-11-10T10:30:00-06:00",
                  "evidence_ref": "carrier log CX-78", "by": ACTOR},
        )  # fmt: skip
        problem = await pair.api_json(
            "POST", "/outages", 422,
            json={"service": SERVICE, "trunk": "zz", "first_failure_at": "2026-11-10T10:30:00Z",
                  "evidence_ref": "x", "by": ACTOR},
        )  # fmt: skip
        assert "not a part of" in problem["message"]
    after = await report(pair, "2026-11")
    down = [o for o in after["outages"] if o["kind"] == "outage"]
    (line,) = down
    assert line["first_failure_at"] == "2026-11-10T16:30:00+00:00"
    assert line["restored_at"] == "2026-11-10T17:00:00+00:00"
    assert (line["ticket_source"], line["counted"]["minutes"]) == ("manual", "30.00")
    assert line["evidence_ref"] == "carrier log CX-78"
    assert after["totals"]["counted"]["minutes"] == "30.00"


@pytest.mark.parametrize("kind", ["authority_order", "customer_internet"])
async def test_the_annex_exclusion_kinds_through_both(world: World, kind: str) -> None:
    code, out = await world.cli(
        "exclude", "add", "o1", "-s", SERVICE, "--kind", kind, "--reason", "annex",
        "--by", ACTOR,
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["kind"] == kind
    body = {"service": SERVICE, "kind": kind, "reason": "annex", "by": ACTOR}
    created = await world.api_json("POST", "/outages/o2/exclusions", 201, json=body)
    assert created["kind"] == kind
    report = await world.api_json(
        "GET", f"/services/{SERVICE}/report?month=2026-10&format=json", 200
    )
    excluded = {o["id"] for o in report["outages"] if o["exclusion"]}
    assert {"o1", "o2"} <= excluded
