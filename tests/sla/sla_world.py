"""The DESIGN.md §2 worked example as stored records: journal outages, tickets, a maintenance
window and an exclusion, in a real SQLite store (shared by the tests/sla tests)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.events import Outage, OutageClosed, OutageKind, OutageOpened, TrunkState
from monitor.events import TrunkStateChanged as Changed
from monitor.sla.contracts import ContractsSettings
from monitor.sla.maintenance import MaintenanceWindow, Origin
from monitor.sla.service import SlaContext
from monitor.store import Store
from monitor.tickets.base import Action, TicketRef
from monitor.tickets.config import TicketsSettings
from monitor.tickets.ledger import TicketStore, append_with_outbox, outbox_rows
from monitor.tickets.routing import TicketRouting

MX = ZoneInfo("America/Mexico_City")
SERVICE = "voice-mx"
TRUNK = "sbc-mx-1"
# After the end of October 2026 in Mexico City (UTC−6 all year since 2022).
NOW = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
ACTOR = "noc@example.com"


def mx(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=MX)


def settings_dict(**contract: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "carrierx-2026",
        "carrier": "CarrierX",
        "services": [SERVICE],
        "target_pct": "99.5",
        "basis": "thirty_day",
        "clock": "ticket",
        "tz": "America/Mexico_City",
        "acceptance": "2026-09-01",
        "monthly_fee": "10000.00",
        "currency": "MXN",
        "credit_tiers": [{"below_pct": "99.7", "credit_pct": "5"}],
    }
    base.update(contract)
    return {
        "services": [{"name": SERVICE, "rule": "all", "parts": [TRUNK]}],
        "contracts": [base],
    }


def settings(tmp_path: Path, **contract: Any) -> ContractsSettings:
    return ContractsSettings.model_validate(
        {"signing_key_file": str(tmp_path / "evidence.key"), **settings_dict(**contract)}
    )


def outage(
    ident: str, first: datetime, restored: datetime, trunk: str = TRUNK
) -> tuple[OutageOpened, OutageClosed]:
    opened = Outage(
        id=ident,
        trunk=trunk,
        kind=OutageKind.OUTAGE,
        first_failure_at=first,
        confirmed_at=first + timedelta(seconds=30),
        first_outcome="timeout",
    )
    return OutageOpened(opened), OutageClosed(
        opened.closed(restored_at=restored, closed_at=restored + timedelta(seconds=10))
    )


# The tickets come from the store as the monitor writes them: one outbox request per
# outage, acknowledged by the carrier's system at the instant its clock starts.
TICKETS = {"o1": (mx(10, 3, 14, 2), "CX-1001"), "o2": (mx(10, 20, 2), "CX-1002")}
TICKETS["o3"] = (mx(10, 25, 9, 1), "CX-1003")
HOOK_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


async def ticket_rows(store: Store, pairs: Sequence[tuple[OutageOpened, OutageClosed]]) -> None:
    """Append the outages with their outbox requests and acknowledge each open at TICKETS."""
    sink = {"name": "carrierx", "type": "webhook", "url": "http://127.0.0.1:9/hook"}
    tickets = TicketsSettings.model_validate(
        {"sinks": [{**sink, "secret_env": "HOOK"}]}, context={"env": {"HOOK": HOOK_SECRET}}
    )
    routing = TicketRouting.build(tickets, [(TRUNK, "CarrierX")])
    for opened, closed in pairs:
        await append_with_outbox(store, [opened], routing, opened.outage.confirmed_at)
        await append_with_outbox(store, [closed], routing, closed.outage.closed_at or NOW)
    ledger = TicketStore(store.engine)
    for row in await outbox_rows(store):
        if row.action is Action.OPEN:
            at, number = TICKETS[row.ticket_key]
            await ledger.opened(row, TicketRef(external_id=number, sink_created_at=at), at)


async def worked_example(tmp_path: Path, *, url: str | None = None) -> tuple[Store, SlaContext]:
    """October 2026: 90 min + 60 min counted, 30 min excluded, 2 min unclaimed."""
    store = await Store.open(url or f"sqlite:///{tmp_path / 'tw.db'}", agent="agent-1")
    # Watching since before the month (no unknown time in October).
    await store.append([Changed(TRUNK, mx(9, 30, 0), TrunkState.UNKNOWN, TrunkState.UP, "ok")])
    o1 = outage("o1", mx(10, 3, 14), mx(10, 3, 15, 32))
    o2 = outage("o2", mx(10, 20, 1), mx(10, 20, 3))
    o3 = outage("o3", mx(10, 25, 9), mx(10, 25, 9, 30))
    await ticket_rows(store, [o1, o2, o3])
    await store.heartbeat(NOW)
    ctx = SlaContext(store, settings(tmp_path))
    await ctx.ledger.add_window(
        MaintenanceWindow(
            id="w1",
            title="Carrier core upgrade",
            services=(SERVICE,),
            origin=Origin.CARRIER,
            start=mx(10, 20, 0),
            end=mx(10, 20, 2),
            tz="America/Mexico_City",
            notice_ref="CX-NOTICE-77",
        ),
        by=ACTOR,
        at=mx(10, 10, 9),
    )
    await ctx.ledger.add_exclusion(
        outage_id="o3",
        service=SERVICE,
        kind="customer_equipment",
        reason="customer's own router rebooted",
        reference="INC-5521",
        by=ACTOR,
        at=mx(10, 25, 12),
    )
    return store, ctx


def pdf_text(path: Path) -> str:
    """The PDF's text as pdftotext (poppler-utils) extracts it, pages split by form feeds."""
    import subprocess

    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
