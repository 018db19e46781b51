"""The contract's response and repair clocks (issue 9): pure arithmetic, the report's
breaches, the overdue gauges, and the two exclusion kinds the annex adds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sla_world import ACTOR, SERVICE, mx, settings, worked_example

from monitor.metrics.sla import compute_samples
from monitor.sla import ExclusionKind
from monitor.sla.clocks import ClockLimits, judge
from monitor.sla.reports import make_report, render, report_dict

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)
M = timedelta(minutes=1)
LIMITS = ClockLimits(response_max=30 * M, repair_max=240 * M)


@pytest.mark.parametrize(
    ("ack", "restored", "now", "expected"),
    [
        # acknowledged in 10 min, restored in 3 h: both met
        (10, 180, 300, (10, True, False, 180, True, False)),
        # acknowledged in 45 min (breach), restored in 5 h (breach)
        (45, 300, 400, (45, False, False, 300, False, False)),
        # still waiting: 20 min in, nothing met or missed yet
        (None, None, 20, (20, None, True, 20, None, True)),
        # no acknowledgement after 31 min: overdue while it runs
        (None, None, 31, (31, False, True, 31, None, True)),
        # restored after 4 h 1 min, never acknowledged: both breached, neither running
        (None, 241, 500, (500, False, True, 241, False, False)),
    ],
)
def test_the_clocks(ack: int | None, restored: int | None, now: int, expected: tuple) -> None:  # type: ignore[type-arg]
    at = lambda minutes: None if minutes is None else T0 + minutes * M  # noqa: E731
    v = judge(T0, at(ack), at(restored), LIMITS, T0 + now * M)
    response, response_met, response_running, repair, repair_met, repair_running = expected
    assert (v.response, v.response_met, v.response_running) == (
        response * M,
        response_met,
        response_running,
    )
    assert (v.repair, v.repair_met, v.repair_running) == (repair * M, repair_met, repair_running)
    assert v.response_overdue == (response_running and response_met is False)


def test_no_ticket_no_clock_and_no_limit_no_verdict() -> None:
    assert judge(None, None, None, LIMITS, T0).response is None
    v = judge(T0, T0 + 99 * M, T0 + 999 * M, ClockLimits(), T0 + 999 * M)
    assert (v.response, v.response_met, v.repair_met) == (99 * M, None, None)


async def test_the_report_lists_breaches_and_the_gauges_show_overdue(tmp_path: Path) -> None:
    # o1: ticket 14:02, acknowledged 14:02 (the world's rows), restored 15:32 → repair 90 min.
    store, ctx = await worked_example(tmp_path)
    ctx.settings = settings(tmp_path, response_max="30m", repair_max="60m", limits={})
    try:
        report = await make_report(ctx, SERVICE, "2026-10", mx(11, 1, 0), lang="en")
        data = report_dict(report)
        o1 = next(o for o in data["outages"] if o["id"] == "o1")
        assert o1["clocks"]["repair"]["minutes"] == "90.00" and o1["clocks"]["repair_met"] is False
        assert o1["clocks"]["response_met"] is True
        assert {"outage_id": "o1", "clock": "repair"}.items() <= data["breaches"][0].items()
        assert data["limits"]["repair_max"]["minutes"] == "60.00"
        html = render(report, "html").decode()
        assert "Response and repair times missed" in html and "Repair time o1" in html
        csv_text = render(report, "csv").decode()
        assert "repair_minutes" in csv_text.splitlines()[0]

        # A per-service limit overrides the contract's.
        ctx.settings = settings(tmp_path, repair_max="60m", limits={SERVICE: {"repair_max": "2h"}})
        report = await make_report(ctx, SERVICE, "2026-10", mx(11, 1, 0), lang="en")
        assert report_dict(report)["breaches"] == []

        # An outage still open past its repair time: the gauge says so.
        from sla_world import outage

        opened, _ = outage("o9", mx(10, 30, 8), mx(10, 30, 23))
        await store.append([opened])
        ctx.settings = settings(tmp_path, repair_max="1h", limits={})
        now = mx(10, 30, 10)  # the open outage's ticket: none → no clock; add a correction
        await ctx.ledger.correct_ticket_time(
            outage_id="o9", value=mx(10, 30, 8, 5), previous=None, reason="carrier log",
            reference="", by=ACTOR, at=now,
        )  # fmt: skip
        samples = {(s.name, s.labels): s.value for s in await compute_samples(ctx, now)}
        svc = (("service", SERVICE),)
        assert samples[("trunkwatch_ticket_repair_overdue", svc)] == 1.0
        assert samples[("trunkwatch_ticket_response_overdue", svc)] == 0.0  # no limit set
    finally:
        await store.close()


@pytest.mark.parametrize("kind", [ExclusionKind.AUTHORITY_ORDER, ExclusionKind.CUSTOMER_INTERNET])
async def test_the_annex_exclusion_kinds_exclude(tmp_path: Path, kind: ExclusionKind) -> None:
    from monitor.sla import commands as sla_commands

    store, ctx = await worked_example(tmp_path)
    try:
        await sla_commands.add_exclusion(
            ctx, outage_id="o1", service=SERVICE, kind=kind.value, reason="annex",
            reference="REF-1", by=ACTOR, at=mx(11, 1, 0),
        )  # fmt: skip
        report = report_dict(await make_report(ctx, SERVICE, "2026-10", mx(11, 1, 0), lang="es"))
        o1 = next(o for o in report["outages"] if o["id"] == "o1")
        assert o1["counted"]["minutes"] == "0.00" and o1["exclusion"]["kind"] == kind.value
        # 60 min left of the worked example's 150: (720 − 1) / 720
        assert report["availability"]["pct"] == "99.8611"
        assert json.dumps(report, ensure_ascii=False)
    finally:
        await store.close()
