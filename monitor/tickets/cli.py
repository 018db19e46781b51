"""``trunkwatch tickets``: the tickets opened with carriers and their state.

Mount with ``app.add_typer(tickets_app, name="tickets")`` in monitor/cli.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from monitor.tickets.ledger import TicketRow, list_tickets
from monitor.tickets.templates import format_duration

EXIT_CONFIG = 2
# Error texts in the table are cut here; `--json` gives them whole.
ERROR_COLUMN = 40
COLUMNS = (
    "requested",
    "trunk",
    "sink",
    "state",
    "ref",
    "ticket",
    "acknowledged",
    "delay",
    "resolved",
    "error",
)

tickets_app = typer.Typer(
    help="Tickets opened with carriers, and their state.", invoke_without_command=True
)


def _local(instant: datetime | None, zone: ZoneInfo) -> str:
    return "-" if instant is None else instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def render_tickets(rows: Sequence[TicketRow], zone: ZoneInfo) -> str:
    """A plain-text table; ``delay`` is requested → acknowledged (unclaimable downtime)."""
    table: list[tuple[str, ...]] = [COLUMNS]
    for row in rows:
        delay = (
            format_duration(row.acknowledged_at - row.requested_at)
            if row.acknowledged_at is not None
            else "-"
        )
        error = (row.last_error or "")[:ERROR_COLUMN]
        table.append(
            (
                _local(row.requested_at, zone),
                row.trunk,
                row.sink,
                row.state,
                row.ref,
                row.number or row.external_id or "-",
                _local(row.acknowledged_at, zone),
                delay,
                _local(row.resolved_at, zone),
                error or "-",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]
    if len(table) == 1:
        lines.append("(no tickets)")
    return "\n".join(lines)


def tickets_json(rows: Sequence[TicketRow]) -> str:
    def iso(instant: datetime | None) -> str | None:
        return None if instant is None else instant.isoformat()

    return json.dumps(
        [
            {
                "outage_id": r.outage_id,
                "sink": r.sink,
                "ticket_key": r.ticket_key,
                "trunk": r.trunk,
                "kind": r.kind,
                "state": r.state,
                "ref": r.ref,
                "external_id": r.external_id,
                "number": r.number,
                "url": r.url,
                "requested_at": iso(r.requested_at),
                "first_sent_at": iso(r.first_sent_at),
                "acknowledged_at": iso(r.acknowledged_at),
                "sink_created_at": iso(r.sink_created_at),
                "number_captured_at": iso(r.number_captured_at),
                "resolved_at": iso(r.resolved_at),
                "last_error": r.last_error,
            }
            for r in rows
        ],
        indent=2,
        ensure_ascii=False,
    )


@tickets_app.callback(invoke_without_command=True)
def tickets(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option("--config", "-c", help="The YAML config file.")],
    state: Annotated[
        str | None, typer.Option(help="Only tickets in this state (open, requested, ...).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List tickets, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from monitor.config import ConfigError, load_config
    from monitor.store import Store

    try:
        cfg = load_config(config, secrets=False)  # lists the store: needs no secret
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    tickets_cfg = getattr(cfg, "tickets", None)
    zone = ZoneInfo(getattr(tickets_cfg, "timezone", "UTC") or "UTC")

    async def main() -> list[TicketRow]:
        store = await Store.open(cfg.store.url, agent=cfg.agent)
        try:
            return await list_tickets(store)
        finally:
            await store.close()

    rows = asyncio.run(main())
    if state is not None:
        rows = [r for r in rows if r.state == state]
    typer.echo(tickets_json(rows) if as_json else render_tickets(rows, zone))
