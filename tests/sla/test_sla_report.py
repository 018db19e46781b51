"""The DESIGN.md worked example end to end through the store, the SLA and every report format."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from peers import require_binary
from sla_world import ACTOR, NOW, SERVICE, mx, pdf_text, worked_example

from monitor.sla.reports import make_report, render_csv, render_html, render_json, render_pdf


async def test_worked_example_report_json(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    try:
        report = await make_report(ctx, SERVICE, "2026-10", NOW, lang="en")
    finally:
        await store.close()
    data = json.loads(render_json(report))
    assert data["schema"] == "trunkwatch-sla-report/1"
    assert data["availability"]["pct"] == "99.6528"
    assert data["availability"]["tnodisp"]["minutes"] == "150.00"
    assert data["availability"]["ttotal"]["seconds"] == str(720 * 3600)
    assert data["unclaimed"]["minutes"] == "2.00"
    assert data["availability"]["formula"] == "(720 h − 2.5 h) / 720 h × 100 = 99.6528 %"
    assert data["coverage"]["pct"] == "100.0000"
    lines = {o["id"]: o for o in data["outages"]}
    assert {k: v["counted"]["minutes"] for k, v in lines.items()} == {
        "o1": "90.00",
        "o2": "60.00",
        "o3": "0.00",
    }
    assert (
        lines["o1"]["ticket_opened_at"] == mx(10, 3, 14, 2).isoformat().replace("-06:00", "+00:00")
        or lines["o1"]["ticket_opened_at"] == "2026-10-03T20:02:00+00:00"
    )
    assert lines["o1"]["carrier_ticket"] == "CX-1001"
    assert lines["o2"]["maintenance"]["minutes"] == "60.00"
    assert lines["o2"]["reasons"] == ["maintenance"]
    assert lines["o3"]["exclusion"]["kind"] == "customer_equipment"
    assert lines["o3"]["exclusion"]["by"] == ACTOR
    assert [m["notice_ref"] for m in data["maintenance"]] == ["CX-NOTICE-77"]
    # 99.6528 is below the 99.7 tier: 5 % of 10000.00; September earned nothing.
    assert data["credit"]["amount"] == "500.00"
    assert [(h["period"], h["earned"]) for h in data["credit"]["history"]] == [
        ("2026-09", "0.00"),
        ("2026-10", "500.00"),
    ]
    assert data["credit"]["carried_forward"] == "500.00"
    assert data["period"]["complete"] is True


async def test_worked_example_csv(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    try:
        report = await make_report(ctx, SERVICE, "2026-10", NOW, lang="es")
    finally:
        await store.close()
    rows = list(csv.DictReader(io.StringIO(render_csv(report).decode("utf-8"))))
    assert [r["outage_id"] for r in rows] == ["o1", "o2", "o3"]
    assert {r["availability_pct"] for r in rows} == {"99.6528"}
    assert {r["tnodisp_minutes"] for r in rows} == {"150.00"}
    assert [r["counted_minutes"] for r in rows] == ["90.00", "60.00", "0.00"]
    assert [r["unclaimed_outage_minutes"] for r in rows] == ["2.00", "0.00", "0.00"]
    assert rows[2]["exclusion_kind"] == "customer_equipment"


async def test_exclusion_revoked_counts_the_outage_again(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    try:
        (exclusion,) = await ctx.ledger.exclusions(service=SERVICE)
        await ctx.ledger.revoke_exclusion(
            exclusion.id, reason="router belonged to the carrier", by=ACTOR, at=mx(10, 28, 10)
        )
        report = await make_report(ctx, SERVICE, "2026-10", NOW, lang="en")
        audit = await ctx.ledger.audit_log(entity="exclusion", entity_id=exclusion.id)
    finally:
        await store.close()
    # o3 now counts from its ticket (09:01) to restoration (09:30): 29 min more.
    assert report.counted_minutes == Decimal("179.00")
    assert [a.action for a in audit] == ["exclusion.create", "exclusion.revoke"]
    assert audit[1].detail["after"]["revoked_by"] == ACTOR


async def test_manual_outage_and_ticket_correction_feed_the_sla(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    try:
        manual = await ctx.ledger.add_manual_outage(
            service=SERVICE,
            kind="outage",
            first_failure_at=mx(10, 10, 8),
            restored_at=mx(10, 10, 9),
            ticket_opened_at=mx(10, 10, 8, 10),
            carrier_ticket="CX-2000",
            evidence_ref="carrier RFO 2026-10-10",
            note="seen by users",
            by=ACTOR,
            at=mx(10, 11, 9),
        )
        # The carrier's log shows o1's ticket at 14:01, not 14:02.
        await ctx.ledger.correct_ticket_time(
            outage_id="o1",
            value=mx(10, 3, 14, 1),
            previous=mx(10, 3, 14, 2),
            reason="carrier log shows 14:01",
            reference="CX-1001",
            by=ACTOR,
            at=mx(10, 12, 9),
        )
        report = await make_report(ctx, SERVICE, "2026-10", NOW, lang="en")
    finally:
        await store.close()
    lines = {o.id: o for o in report.outages}
    assert lines[manual.id].counted_us == 50 * 60_000_000
    assert lines[manual.id].evidence_ref == "carrier RFO 2026-10-10"
    assert lines["o1"].counted_us == 91 * 60_000_000
    assert lines["o1"].ticket_source == "correction"
    assert report.counted_minutes == Decimal("201.00")
    assert report.unclaimed_us == (1 + 10) * 60_000_000


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("es", ["Informe de disponibilidad", "99.6528 %", "Cumplido", "Bonificación"]),
        ("en", ["Service availability report", "99.6528 %", "Met", "Service credit"]),
    ],
)
async def test_pdf_text(tmp_path: Path, lang: str, words: list[str]) -> None:
    require_binary("pdftotext")  # poppler-utils: a failure under CI, a skip on a laptop
    store, ctx = await worked_example(tmp_path)
    try:
        report = await make_report(ctx, SERVICE, "2026-10", NOW, lang=lang)
    finally:
        await store.close()
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render_pdf(report))
    text = pdf_text(pdf)
    pages = text.split("\f")
    for word in words:
        assert word in pages[0], word  # the one-page summary has every headline figure
    assert "(720 h − 2.5 h) / 720 h × 100 = 99.6528 %" in pages[0]
    assert "CX-NOTICE-77" in text and "CX-1001" in text  # detail on later pages
    assert "CX-1001" not in pages[0]
    assert len([p for p in pages if p.strip()]) >= 2


async def test_html_escapes_user_text(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    try:
        await ctx.ledger.add_manual_outage(
            service=SERVICE,
            kind="outage",
            first_failure_at=mx(10, 5, 8),
            restored_at=mx(10, 5, 9),
            ticket_opened_at=None,
            carrier_ticket="",
            evidence_ref="<script>alert(1)</script>",
            note="",
            by=ACTOR,
            at=mx(10, 6, 9),
        )
        report = await make_report(ctx, SERVICE, "2026-10", NOW, lang="en")
    finally:
        await store.close()
    html = render_html(report).decode("utf-8")
    assert "<script>" not in html and "&lt;script&gt;" in html
