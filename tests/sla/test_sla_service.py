"""Service composition (all/any, degradations), contract config and the SLA gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sla_world import SERVICE, settings_dict, worked_example

from monitor.events import Outage, OutageKind
from monitor.metrics.sla import SlaMetrics, compute_samples
from monitor.sla.contracts import ContractsSettings, ServiceConfig
from monitor.sla.service import compose_outages

T = datetime(2026, 10, 5, 12, tzinfo=UTC)


def out(
    ident: str, trunk: str, start_min: int, end_min: int | None, kind: str = "outage"
) -> Outage:
    first = T + timedelta(minutes=start_min)
    o = Outage(ident, trunk, OutageKind(kind), first, first + timedelta(seconds=15), "timeout")
    if end_min is None:
        return o
    end = T + timedelta(minutes=end_min)
    return o.closed(restored_at=end, closed_at=end + timedelta(seconds=5))


def test_rule_all_down_only_when_both_sbcs_are_down() -> None:
    service = ServiceConfig(name="svc", rule="all", parts=("a", "b"))
    got = compose_outages(
        service, [out("A", "a", 0, 60), out("B", "b", 30, 45)], T + timedelta(hours=2)
    )
    assert [(c.kind.value, c.id, c.start, c.end) for c in got] == [
        ("degradation", "A", T, T + timedelta(minutes=30)),
        ("outage", "B", T + timedelta(minutes=30), T + timedelta(minutes=45)),
        (
            "degradation",
            f"A@{(T + timedelta(minutes=45)).strftime('%Y%m%dT%H%M%S.%fZ')}",
            T + timedelta(minutes=45),
            T + timedelta(minutes=60),
        ),
    ]
    assert {o.id for o in got[1].constituents} == {"A", "B"}


def test_rule_any_and_open_outages() -> None:
    service = ServiceConfig(name="svc", rule="any", parts=("a", "b"))
    now = T + timedelta(hours=2)
    got = compose_outages(service, [out("A", "a", 0, 60), out("B", "b", 30, None)], now)
    assert [(c.id, c.start, c.end) for c in got] == [("A", T, None)]  # still open (B)
    quality = compose_outages(service, [out("Q", "a", 0, 10, "degradation")], now)
    assert [(c.id, c.kind.value) for c in quality] == [("Q", "degradation")]


def test_contract_config_checks(tmp_path: Path) -> None:
    data = settings_dict()
    data["contracts"][0]["services"] = ["nope"]
    with pytest.raises(ValidationError, match="unknown service 'nope'"):
        ContractsSettings.model_validate(data)
    data = settings_dict(tz="Mars/Base")
    with pytest.raises(ValidationError, match="unknown time zone"):
        ContractsSettings.model_validate(data)
    data = settings_dict(basis="lunar")
    with pytest.raises(ValidationError, match="thirty_day"):
        ContractsSettings.model_validate(data)
    ok = ContractsSettings.model_validate(settings_dict(), context={"base_dir": tmp_path})
    assert ok.signing_key_file == tmp_path / "trunkwatch-evidence.key"
    assert ok.unknown_trunks(["other"]) == [
        "service voice-mx: part 'sbc-mx-1' is not a configured trunk or endpoint"
    ]
    terms = ok.contracts[0].terms()
    assert terms.acceptance == datetime(2026, 9, 1, 6, tzinfo=UTC)  # local midnight, UTC−6
    with pytest.raises(ValueError, match="TRUNKWATCH_API_TOKEN"):
        ok.model_copy(update={"api_token_env": "TRUNKWATCH_API_TOKEN"}).api_token({})


async def test_gauges_match_the_report(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    try:
        now = datetime(2026, 10, 31, 12, tzinfo=UTC)
        await store.heartbeat(now)
        samples = {(s.name, s.labels): s.value for s in await compute_samples(ctx, now)}
        month = await ctx.sla(SERVICE, ctx.current_month(SERVICE, now), now)
        metrics = SlaMetrics(ctx)
        await metrics.refresh(now)
    finally:
        await store.close()
    svc = (("service", SERVICE),)
    assert samples[("trunkwatch_availability_ratio", (*svc, ("window", "month")))] == float(
        month.result.availability_exact / 100
    )
    assert samples[("trunkwatch_availability_ratio", (*svc, ("window", "month")))] == pytest.approx(
        0.996528, abs=1e-6
    )
    # 0.5 % of 720 h = 3.6 h allowed; 150 min used → 1.1 h = 3960 s left.
    assert samples[("trunkwatch_sla_budget_remaining_seconds", svc)] == pytest.approx(3960.0)
    assert samples[("trunkwatch_sla_target_ratio", svc)] == 0.995
    assert samples[("trunkwatch_sla_credit_ratio", svc)] == 0.05
    assert samples[("trunkwatch_monitoring_coverage_ratio", svc)] == 1.0
    assert ("trunkwatch_availability_ratio", (*svc, ("window", "rolling"))) in samples
    assert len(metrics.samples()) == 8 and metrics.errors == 0
    assert samples[("trunkwatch_ticket_response_overdue", svc)] == 0.0  # no limits configured


def test_the_sla_view_has_one_constructor_and_reads_its_tickets_from_the_store() -> None:
    # Issue 9: the CLI built SlaContext without the tickets the daemon passed in. Every input
    # now comes from the store, so no front end can build a partial view.
    import dataclasses

    from monitor.sla.service import SlaContext

    assert [f.name for f in dataclasses.fields(SlaContext) if f.init] == ["store", "settings"]


async def test_the_worked_example_gives_the_same_figures_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    """The shared store (PostgreSQL) computes exactly what the single-agent one does."""
    from sla_world import NOW

    results = []
    for name, url in (("sqlite", None), ("postgresql", pg_url)):
        (tmp_path / name).mkdir()
        store, ctx = await worked_example(tmp_path / name, url=url)
        try:
            period = ctx.month(SERVICE, "2026-10")
            results.append((await ctx.sla(SERVICE, period, NOW)).result)
        finally:
            await store.close()
    sqlite, postgres = results
    assert postgres == sqlite
    assert str(postgres.availability_pct) == "99.6528"
