"""The month-end workflow through both front ends (issue 11): each case is run through the CLI
and through the API on the same store, and must give the same answer — both call
monitor/sla_commands.py, the one place the ledger's rules live."""

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
from aiohttp import web
from aiohttp.test_utils import TestClient
from sla_world import ACTOR, SERVICE, TRUNK, mx, settings_dict, worked_example
from typer.testing import CliRunner

from monitor.api import ApiDeps, make_api_app
from monitor.cli import app as cli_app
from monitor.service_sla import SlaContext

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
    now = lambda: datetime.now(UTC)  # noqa: E731 — the CLI's clock too
    root.add_subapp("/api/v1", make_api_app(ApiDeps(ctx, TOKEN, live_state=dict, clock=now)))
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
