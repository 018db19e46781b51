"""`trunkwatch tickets`: the table and JSON of tickets and their state."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tickets_support import T0, outage, webhook_settings
from typer.testing import CliRunner

from monitor.events import OutageOpened
from monitor.store import Store
from monitor.tickets.base import TicketRef
from monitor.tickets.cli import render_tickets, tickets_app, tickets_json
from monitor.tickets.ledger import (
    TicketRow,
    TicketStore,
    append_with_outbox,
    list_tickets,
    outbox_rows,
)
from monitor.tickets.routing import TicketRouting


def row(**override: object) -> TicketRow:
    values: dict[str, object] = {
        "outage_id": "o1",
        "sink": "rt",
        "ticket_key": "o1",
        "trunk": "mx-gdl-1",
        "kind": "outage",
        "state": "open",
        "ref": "TW-ABCDE23456",
        "external_id": "17",
        "number": "17",
        "url": None,
        "requested_at": T0,
        "first_sent_at": T0,
        "acknowledged_at": T0 + timedelta(seconds=1, milliseconds=400),
        "sink_created_at": None,
        "number_captured_at": None,
        "resolved_at": None,
        "last_error": None,
        "data": {},
    }
    values.update(override)
    return TicketRow(**values)  # type: ignore[arg-type]


def test_table_in_the_contract_zone() -> None:
    text = render_tickets(
        [row(), row(outage_id="o2", sink="mail", state="requested", number=None, external_id=None,
                    acknowledged_at=None, last_error="smtp: 451 try again later " + "x" * 80)],
        ZoneInfo("America/Mexico_City"),
    )  # fmt: skip
    header, first, second = text.splitlines()
    assert header.split() == [
        "requested", "trunk", "sink", "state", "ref", "ticket", "acknowledged", "delay",
        "resolved", "error",
    ]  # fmt: skip
    assert first.split() == [
        "2026-10-03", "14:00:00", "mx-gdl-1", "rt", "open", "TW-ABCDE23456", "17",
        "2026-10-03", "14:00:01", "0:00:01", "-", "-",
    ]  # fmt: skip
    assert "requested" in second and "smtp: 451 try again later" in second
    assert len(second.split("smtp:")[1]) < 40  # long errors are cut in the table


def test_empty_table() -> None:
    assert render_tickets([], ZoneInfo("UTC")).endswith("(no tickets)")


def test_json_keeps_every_instant_in_utc() -> None:
    [item] = json.loads(tickets_json([row()]))
    assert item["requested_at"] == "2026-10-03T20:00:00+00:00"
    assert item["acknowledged_at"] == "2026-10-03T20:00:01.400000+00:00"
    assert item["resolved_at"] is None and item["number"] == "17"


async def _one_open_ticket(db: Path) -> TicketRow:
    store = await Store.open(f"sqlite:///{db}", agent="cli-test")
    try:
        routing = TicketRouting.build(webhook_settings("http://127.0.0.1:9/hook"), [("mx-1", "c")])
        await append_with_outbox(store, [OutageOpened(outage("mx-1"))], routing, datetime.now(UTC))
        [request] = await outbox_rows(store)
        await TicketStore(store.engine).opened(request, TicketRef("HOOK-9"), datetime.now(UTC))
        [ticket] = await list_tickets(store)
        return ticket
    finally:
        await store.close()


def test_cli_lists_tickets_from_the_configured_store(tmp_path: Path) -> None:
    # Sync test: the command runs its own event loop, as from a shell.
    db = tmp_path / "tw.db"
    ticket = asyncio.run(_one_open_ticket(db))
    config = tmp_path / "trunkwatch.yaml"
    config.write_text(f"agent: cli-test\nstore:\n  url: sqlite:///{db}\n")

    result = CliRunner().invoke(tickets_app, ["--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "mx-1" in lines[1] and "open" in lines[1] and "HOOK-9" in lines[1]

    result = CliRunner().invoke(tickets_app, ["--config", str(config), "--json"])
    assert json.loads(result.output)[0]["ref"] == ticket.ref

    result = CliRunner().invoke(tickets_app, ["--config", str(config), "--state", "failed"])
    assert result.output.strip().endswith("(no tickets)")


def test_cli_reports_config_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(tickets_app, ["--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "file not found" in result.output
