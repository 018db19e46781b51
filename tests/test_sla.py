"""SLA arithmetic: DESIGN.md §2 rules, its worked example, DST month edges and properties."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.sla import (
    THIRTY_DAY_MONTH,
    Basis,
    CompositionRule,
    ContractTerms,
    CreditMonth,
    CreditTier,
    DowntimeClock,
    Exclusion,
    ExclusionKind,
    NotCounted,
    OutageKind,
    OutageLine,
    OutageRecord,
    Period,
    SlaResult,
    availability,
    carry_credits,
    compose,
    credit_for,
    display_pct,
    month_of,
    month_period,
    rolling_period,
)
from monitor.sla.intervals import (
    Interval,
    SlaInputError,
    difference,
    intersection,
    measure,
    span,
    split_at,
    union,
)

MX = "America/Mexico_City"
TJ = "America/Tijuana"
MXZ = ZoneInfo(MX)
H = timedelta(hours=1)
M = timedelta(minutes=1)
US = timedelta(microseconds=1)
OCT = month_period(2026, 10, MX)
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
TIERS = (
    CreditTier(Decimal("99.5"), Decimal(5)),
    CreditTier(Decimal("99.0"), Decimal(10)),
    CreditTier(Decimal("98"), Decimal(25)),
)
FEE = Decimal("1000.00")


def mx(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MXZ)


def terms(**changes: object) -> ContractTerms:
    base = ContractTerms(
        target_pct=Decimal("99.5"),
        basis=Basis.THIRTY_DAY,
        clock=DowntimeClock.TICKET,
        degradation_counts=False,
        tz=MX,
        acceptance=LONG_AGO,
        credit_tiers=TIERS,
        monthly_fee=FEE,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def outage(
    oid: str,
    start: datetime,
    end: datetime | None,
    ticket: datetime | None = None,
    **changes: object,
) -> OutageRecord:
    """An outage ticketed at detection unless told otherwise."""
    record = OutageRecord(oid, start, start, start if ticket is None else ticket, end)
    return replace(record, **changes)  # type: ignore[arg-type]


def excl(kind: ExclusionKind = ExclusionKind.CUSTOMER_EQUIPMENT, **changes: object) -> Exclusion:
    base = Exclusion(kind, by="ana@noc", at=mx(10, 28), reason="PBX power", reference="CR-118")
    return replace(base, **changes)  # type: ignore[arg-type]


AFTER_OCT = mx(11, 5)


def run(
    outages: list[OutageRecord],
    *,
    t: ContractTerms | None = None,
    period: Period = OCT,
    maintenance: tuple[Interval, ...] = (),
    gaps: tuple[Interval, ...] = (),
    now: datetime = AFTER_OCT,
) -> SlaResult:
    return availability(t or terms(), period, outages, maintenance, gaps, now)


def line(result: SlaResult, oid: str) -> OutageLine:
    return next(x for x in result.lines if x.id == oid)


# --- DESIGN.md §2 worked example -------------------------------------------------------------


def test_worked_example_exactly() -> None:
    result = run(
        [
            OutageRecord("a", mx(10, 3, 14), mx(10, 3, 14, 1), mx(10, 3, 14, 2), mx(10, 3, 15, 32)),
            # Detected inside the 00:00–02:00 window; its ticket is opened when the window ends.
            OutageRecord("b", mx(10, 20, 1), mx(10, 20, 1, 1), mx(10, 20, 2), mx(10, 20, 3)),
            outage("c", mx(10, 25, 9), mx(10, 25, 9, 30), exclusions=(excl(),)),
        ],
        maintenance=(Interval(mx(10, 20, 0), mx(10, 20, 2)),),
    )
    assert result.availability_pct == Decimal("99.6528")
    assert result.ttotal == timedelta(hours=720)
    assert result.tnodisp == 150 * M
    assert result.unclaimed == 2 * M
    assert result.availability_exact == 100 * Fraction(720 * 60 - 150, 720 * 60)
    assert [(x.id, x.counted) for x in result.lines] == [("a", 90 * M), ("b", 60 * M), ("c", 0 * M)]
    assert line(result, "b").maintenance == 60 * M
    c = line(result, "c")
    assert c.exclusion is not None and c.exclusion.kind is ExclusionKind.CUSTOMER_EQUIPMENT
    assert c.withheld == 30 * M and c.reasons == (NotCounted.EXCLUDED,)
    assert result.target_met
    assert result.tier is None and result.credit == 0
    assert result.coverage_pct == 100
    assert result.complete


# --- periods and Ttotal ------------------------------------------------------------------------

# (zone, year, month, first instant in UTC, real hours). Tijuana follows US DST (2nd Sunday of
# March, 1st Sunday of November); Mexico City dropped DST after 2022 (April 3 – October 30 then).
MONTHS = [
    (MX, 2026, 3, datetime(2026, 3, 1, 6, tzinfo=UTC), 744),
    (MX, 2026, 11, datetime(2026, 11, 1, 6, tzinfo=UTC), 720),
    (TJ, 2026, 3, datetime(2026, 3, 1, 8, tzinfo=UTC), 743),
    (TJ, 2026, 11, datetime(2026, 11, 1, 7, tzinfo=UTC), 721),
    (TJ, 2026, 12, datetime(2026, 12, 1, 8, tzinfo=UTC), 744),
    (MX, 2022, 4, datetime(2022, 4, 1, 6, tzinfo=UTC), 719),
    (MX, 2022, 10, datetime(2022, 10, 1, 5, tzinfo=UTC), 745),
    (MX, 2024, 2, datetime(2024, 2, 1, 6, tzinfo=UTC), 696),
]


@pytest.mark.parametrize(("tz", "year", "month", "start", "hours"), MONTHS)
def test_month_boundaries_and_ttotal(
    tz: str, year: int, month: int, start: datetime, hours: int
) -> None:
    period = month_period(year, month, tz)
    assert period.start_utc == start
    assert period.length == timedelta(hours=hours)
    assert period.label == f"{year}-{month:02d}"
    nxt = month_period(year + month // 12, month % 12 + 1, tz)
    assert period.end_utc == nxt.start_utc  # months tile time: nothing lost or counted twice
    cal = run([], t=terms(tz=tz, basis=Basis.CALENDAR), period=period, now=nxt.end_utc)
    thirty = run([], t=terms(tz=tz, basis=Basis.THIRTY_DAY), period=period, now=nxt.end_utc)
    assert cal.ttotal == timedelta(hours=hours)
    assert thirty.ttotal == THIRTY_DAY_MONTH
    assert f"{hours} h" in cal.basis_note and "calendar" in cal.basis_note
    assert "720 h" in thirty.basis_note and f"{hours} h" in thirty.basis_note


def test_dst_months_differ_by_an_hour_between_zones() -> None:
    for month, delta in ((3, -H), (11, H)):
        tj = run([], t=terms(tz=TJ, basis=Basis.CALENDAR), period=month_period(2026, month, TJ))
        mxr = run([], t=terms(basis=Basis.CALENDAR), period=month_period(2026, month, MX))
        assert tj.ttotal - mxr.ttotal == delta


def test_outage_across_month_boundary_is_split_tijuana() -> None:
    tjz = ZoneInfo(TJ)
    o = outage(
        "x", datetime(2026, 10, 31, 23, 30, tzinfo=tjz), datetime(2026, 11, 1, 0, 45, tzinfo=tjz)
    )
    t = terms(tz=TJ, basis=Basis.CALENDAR)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    octr = run([o], t=t, period=month_period(2026, 10, TJ), now=now)
    novr = run([o], t=t, period=month_period(2026, 11, TJ), now=now)
    assert octr.tnodisp == 30 * M and novr.tnodisp == 45 * M
    assert line(octr, "x").outside == 45 * M and line(novr, "x").outside == 30 * M
    assert NotCounted.OUTSIDE_PERIOD in line(octr, "x").reasons


@pytest.mark.parametrize(
    ("start", "end", "real"),
    [
        # Nov 1 2026, Tijuana: 01:00–02:00 PDT is followed by 01:00–02:00 PST.
        (datetime(2026, 11, 1, 0, 30), datetime(2026, 11, 1, 3, 0), timedelta(hours=3, minutes=30)),
        # Mar 8 2026, Tijuana: 02:00 PST jumps to 03:00 PDT.
        (datetime(2026, 3, 8, 1, 30), datetime(2026, 3, 8, 3, 30), timedelta(hours=1)),
    ],
)
def test_durations_use_utc_instants_across_dst(
    start: datetime, end: datetime, real: timedelta
) -> None:
    tjz = ZoneInfo(TJ)
    o = outage("x", start.replace(tzinfo=tjz), end.replace(tzinfo=tjz))
    result = run([o], t=terms(tz=TJ), period=month_of(o.first_failure_at, TJ), now=mx(12, 31))
    assert result.tnodisp == real  # wall-clock subtraction would give end − start


def test_month_of_uses_contract_zone() -> None:
    instant = datetime(2026, 11, 1, 5, 59, tzinfo=UTC)  # Oct 31 23:59 in Mexico City
    assert month_of(instant, MX) == OCT
    assert month_of(instant, "UTC").label == "2026-11"


def test_partial_first_month_from_acceptance() -> None:
    acceptance = mx(10, 15, 12)
    real = OCT.end_utc - acceptance.astimezone(UTC)
    assert real == timedelta(days=16, hours=12)
    o = outage("pre", mx(10, 15, 11), mx(10, 15, 13))
    for basis in Basis:
        result = run([o], t=terms(acceptance=acceptance, basis=basis))
        assert result.ttotal == real
        assert result.effective_start == acceptance
        assert "partial" in result.basis_note and "396 h" in result.basis_note
        assert result.tnodisp == 60 * M  # the hour before acceptance is not the carrier's
        assert line(result, "pre").outside == 60 * M
        assert result.availability_exact == 100 * Fraction(396 * 60 - 60, 396 * 60)


def test_acceptance_at_period_start_is_a_whole_month() -> None:
    result = run([], t=terms(acceptance=OCT.start_utc))
    assert result.ttotal == THIRTY_DAY_MONTH and "partial" not in result.basis_note


def test_period_before_acceptance_is_refused() -> None:
    with pytest.raises(SlaInputError, match="acceptance"):
        run([], t=terms(acceptance=OCT.end_utc))


def test_rolling_window() -> None:
    now = mx(10, 31, 12)
    period = rolling_period(now)
    assert period.length == timedelta(days=30)
    o1 = outage("old", now - timedelta(days=30) - H, now - timedelta(days=30) + H)
    o2 = outage("new", now - 2 * H, None)
    for basis in Basis:
        result = run([o1, o2], t=terms(basis=basis), period=period, now=now)
        assert result.ttotal == timedelta(hours=720)
        assert result.tnodisp == 3 * H
        assert result.availability_exact == 100 * Fraction(720 - 3, 720)
        assert line(result, "new").open


def test_month_in_progress() -> None:
    now = mx(10, 11)  # ten days into October
    o = outage("open", mx(10, 10, 23), None)
    gap = Interval(mx(10, 5), mx(10, 6))
    result = run([o], gaps=(gap,), now=now)
    assert not result.complete
    assert result.tnodisp == H  # runs to now, not to the month end
    assert result.observed == timedelta(days=10)
    assert result.coverage_exact == 100 * Fraction(9, 10)  # of the observed part only


def test_thirty_day_basis_floors_availability_at_zero() -> None:
    # A whole 31-day month down is 744 h of downtime against a 720 h Ttotal.
    o = outage("long", mx(9, 1), None)
    result = run([o], t=terms(clock=DowntimeClock.DETECTION))
    assert result.tnodisp == timedelta(hours=744)
    assert result.availability_exact == 0 and "floored" in result.basis_note
    cal = run([o], t=terms(clock=DowntimeClock.DETECTION, basis=Basis.CALENDAR))
    assert cal.availability_exact == 0 and "floored" not in cal.basis_note


# --- clock, tickets, unclaimed -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clock", "ticket_min", "counted_min", "unclaimed_min", "reason"),
    [
        (DowntimeClock.TICKET, 5, 55, 5, NotCounted.BEFORE_TICKET),
        (DowntimeClock.TICKET, None, 0, 60, NotCounted.NO_TICKET),
        (DowntimeClock.TICKET, 90, 0, 60, NotCounted.BEFORE_TICKET),  # ticket after restoration
        (DowntimeClock.TICKET, -10, 60, 0, None),  # ticket before detection (customer called)
        (DowntimeClock.DETECTION, 5, 60, 0, None),
        (DowntimeClock.DETECTION, None, 60, 0, None),
    ],
)
def test_clock_rules(
    clock: DowntimeClock,
    ticket_min: int | None,
    counted_min: int,
    unclaimed_min: int,
    reason: NotCounted | None,
) -> None:
    start = mx(10, 7, 10)
    ticket = None if ticket_min is None else start + ticket_min * M
    o = OutageRecord("x", start, start + M, ticket, start + H)
    result = run([o], t=terms(clock=clock))
    assert result.tnodisp == counted_min * M
    assert result.unclaimed == unclaimed_min * M
    assert line(result, "x").reasons == (() if reason is None else (reason,))


def test_overlapping_outages_are_unioned() -> None:
    a = outage("a", mx(10, 7, 10), mx(10, 7, 11))
    b = outage("b", mx(10, 7, 10, 30), mx(10, 7, 12))
    for order in ([a, b], [b, a]):
        result = run(order)
        assert result.tnodisp == 120 * M
        assert [(x.id, x.counted, x.overlap) for x in result.lines] == [
            ("a", 60 * M, 0 * M),
            ("b", 60 * M, 30 * M),
        ]
        assert NotCounted.OVERLAP in line(result, "b").reasons


def test_time_counted_under_another_outage_is_not_unclaimed() -> None:
    a = outage("a", mx(10, 7, 10), mx(10, 7, 11), ticket=mx(10, 7, 10, 5))
    b = outage("b", mx(10, 7, 10, 2), mx(10, 7, 10, 30), ticket=mx(10, 7, 10, 3))
    result = run([a, b])
    assert result.tnodisp == 57 * M  # 10:03 → 11:00
    assert result.unclaimed == 3 * M  # 10:00 → 10:03
    assert sum((x.unclaimed for x in result.lines), timedelta(0)) == result.unclaimed


# --- maintenance, exclusions, degradations, gaps --------------------------------------------------


@pytest.mark.parametrize(
    ("windows", "counted_min"),
    [
        ([(15, 30)], 45),  # inside the outage
        ([(-60, 120)], 0),  # around it
        ([(-30, 20)], 40),  # over its start
        ([(50, 90)], 50),  # over its end
        ([(120, 180)], 60),  # elsewhere
        ([(10, 30), (20, 40)], 30),  # overlapping windows subtract their union once
    ],
)
def test_maintenance_removes_only_the_overlap(
    windows: list[tuple[int, int]], counted_min: int
) -> None:
    start = mx(10, 7, 10)
    maintenance = tuple(Interval(start + a * M, start + b * M) for a, b in windows)
    result = run([outage("x", start, start + H)], maintenance=maintenance)
    assert result.tnodisp == counted_min * M
    assert line(result, "x").maintenance == (60 - counted_min) * M


def test_revoked_exclusion_counts_again_as_of_its_revocation() -> None:
    revoked = excl(revoked_at=mx(11, 2), revoked_by="lead@noc", revoked_reason="carrier fault")
    o = outage("x", mx(10, 7, 10), mx(10, 7, 11), exclusions=(revoked,))
    assert run([o], now=mx(11, 5)).tnodisp == H  # revoked: counts again
    assert run([o], now=mx(11, 1)).tnodisp == 0 * M  # a report made before the revocation
    assert run([o], now=mx(10, 27)).tnodisp == H  # ...or before the exclusion was made
    again = excl(ExclusionKind.FORCE_MAJEURE, at=mx(11, 3), reason="earthquake")
    result = run([replace(o, exclusions=(revoked, again))])
    assert result.tnodisp == 0 * M
    x = line(result, "x")
    assert x.exclusion == again and x.withheld == H


@pytest.mark.parametrize("counts", [False, True])
def test_degradation_counts_only_with_the_switch(counts: bool) -> None:
    d = outage("d", mx(10, 7, 10), mx(10, 7, 10, 30), kind=OutageKind.DEGRADATION)
    result = run([d], t=terms(degradation_counts=counts))
    assert result.tnodisp == (30 * M if counts else 0 * M)
    assert (NotCounted.DEGRADATION in line(result, "d").reasons) is not counts


def test_unknown_time_is_neither_up_nor_down() -> None:
    o = outage("x", mx(10, 7, 10), mx(10, 7, 12))
    gaps = (
        Interval(mx(10, 7, 11), mx(10, 7, 11, 30)),  # inside the outage
        Interval(mx(10, 7, 11, 15), mx(10, 7, 11, 45)),  # overlaps the first gap
        Interval(mx(9, 30, 23), mx(10, 1, 1)),  # straddles the period start
    )
    result = run([o], gaps=gaps)
    assert result.tnodisp == 75 * M
    assert line(result, "x").unknown == 45 * M
    assert result.unknown == 45 * M + H
    assert result.coverage_exact == 100 * (1 - Fraction(105, 744 * 60))
    assert run([], gaps=gaps).availability_exact == 100  # no downtime is invented either


# --- credits -------------------------------------------------------------------------------------

# Downtime on a 720 h basis at each tier edge: exactly on the threshold is not "below" it.
EDGE = [
    (timedelta(0), None),
    (timedelta(hours=3.6), None),  # 99.5 % exactly
    (timedelta(hours=3.6) + US, 0),
    (timedelta(hours=7.2), 0),  # 99.0 % exactly
    (timedelta(hours=7.2) + US, 1),
    (timedelta(hours=14.4), 1),  # 98 % exactly
    (timedelta(hours=14.4) + US, 2),
    (timedelta(hours=720), 2),
]


@pytest.mark.parametrize(("down", "tier_index"), EDGE)
def test_credit_tiers_at_exact_edges(down: timedelta, tier_index: int | None) -> None:
    o = outage("x", mx(10, 2), mx(10, 2) + down) if down else None
    result = run([] if o is None else [o])
    assert result.tnodisp == down
    expected = None if tier_index is None else TIERS[tier_index]
    assert result.tier == expected
    pct = Decimal(0) if expected is None else expected.credit_pct
    assert result.credit == FEE * pct / 100
    assert result.target_met is (tier_index is None)


def test_credit_compares_exact_not_rounded_value() -> None:
    result = run([outage("x", mx(10, 2), mx(10, 2) + timedelta(hours=3.6) + US)])
    assert result.availability_pct == Decimal("99.5000")  # displays as the threshold...
    assert result.tier == TIERS[0]  # ...but is below it


def test_credit_amount_rounds_to_cents() -> None:
    tier, amount = credit_for(
        Fraction(99), (CreditTier(Decimal("99.5"), Decimal(5)),), Decimal("1234.57")
    )
    assert tier is not None and amount == Decimal("61.73")  # 61.7285


def test_credits_carry_over() -> None:
    months = [
        CreditMonth("2026-08", Decimal("50.00")),
        CreditMonth("2026-09", Decimal(0), applied=Decimal("30.00")),
        CreditMonth("2026-10", Decimal("100.00"), applied=Decimal("120.00")),
    ]
    ledger = carry_credits(Decimal("10.00"), months)
    assert [b.carried_forward for b in ledger] == [
        Decimal("60.00"),
        Decimal("30.00"),
        Decimal("10.00"),
    ]
    assert [b.brought_forward for b in ledger] == [
        Decimal("10.00"),
        Decimal("60.00"),
        Decimal("30.00"),
    ]
    with pytest.raises(SlaInputError, match="exceeds"):
        carry_credits(Decimal(0), [CreditMonth("2026-08", Decimal(5), applied=Decimal(6))])


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Fraction(9965275, 100000), "99.6528"),  # half rounds up
        (Fraction(9965275, 100000) - Fraction(1, 10**9), "99.6527"),
        (100 * Fraction(717_5, 720_0), "99.6528"),
        (Fraction(100), "100.0000"),
        (Fraction(0), "0.0000"),
    ],
)
def test_display_rounding(value: Fraction, shown: str) -> None:
    assert str(display_pct(value)) == shown


# --- composition ---------------------------------------------------------------------------------


def test_compose_all_and_any() -> None:
    t = mx(10, 7)
    parts = {
        "sbc1": [Interval(t + 10 * H, t + 11 * H), Interval(t + 12 * H, t + 13 * H)],
        "sbc2": [Interval(t + 10 * H + 30 * M, t + 12 * H + 30 * M)],
    }
    assert compose(CompositionRule.ALL, parts) == (
        Interval(t + 10 * H + 30 * M, t + 11 * H),
        Interval(t + 12 * H, t + 12 * H + 30 * M),
    )
    assert compose(CompositionRule.ANY, parts) == (Interval(t + 10 * H, t + 13 * H),)
    assert compose(CompositionRule.ALL, {"only": parts["sbc2"]}) == tuple(parts["sbc2"])
    assert compose(CompositionRule.ALL, {**parts, "sbc3": []}) == ()
    with pytest.raises(SlaInputError):
        compose(CompositionRule.ALL, {})


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_is_refused_clearly() -> None:
    naive = datetime(2026, 10, 7, 10)
    with pytest.raises(SlaInputError, match="naive"):
        Interval(naive, naive + H)
    with pytest.raises(SlaInputError, match="end after"):
        Interval(mx(10, 7), mx(10, 7))
    with pytest.raises(SlaInputError, match="naive"):
        run([], now=naive)
    with pytest.raises(SlaInputError, match="restored before"):
        outage("x", mx(10, 7, 10), mx(10, 7, 9))
    with pytest.raises(SlaInputError, match="duplicate"):
        run([outage("x", mx(10, 7), mx(10, 8)), outage("x", mx(10, 9), mx(10, 10))])
    with pytest.raises(SlaInputError, match="time zone"):
        run([], period=month_period(2026, 10, TJ))
    with pytest.raises(SlaInputError, match="unknown time zone"):
        month_period(2026, 10, "Mars/Olympus")
    with pytest.raises(SlaInputError, match="month"):
        month_period(2026, 13, MX)
    with pytest.raises(SlaInputError, match=r"not_a_kind.*customer_equipment"):
        excl(kind="not_a_kind")  # type: ignore[arg-type]
    with pytest.raises(SlaInputError, match="revoked before"):
        excl(revoked_at=mx(10, 1), revoked_by="x")
    with pytest.raises(SlaInputError, match="percentage"):
        CreditTier(Decimal("100.5"), Decimal(5))


def test_instants_in_any_zone_are_normalised_to_utc() -> None:
    i = Interval(mx(10, 7, 10), mx(10, 7, 11))
    assert i.start.tzinfo is UTC and i.start == datetime(2026, 10, 7, 16, tzinfo=UTC)


# --- properties ----------------------------------------------------------------------------------

PROPS = settings(max_examples=200, deadline=None)
MONTH_MIN = 31 * 24 * 60
BASE = OCT.start_utc

minutes = st.integers(min_value=-3000, max_value=MONTH_MIN + 3000)
lengths = st.integers(min_value=1, max_value=3000)


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(minutes)
    return Interval(BASE + start * M, BASE + (start + draw(lengths)) * M)


interval_lists = st.lists(intervals(), max_size=6)


@st.composite
def outage_records(draw: st.DrawFn, oid: str) -> OutageRecord:
    start = BASE + draw(minutes) * M
    end = None if draw(st.integers(0, 9)) == 0 else start + draw(st.integers(0, 3000)) * M
    ticket_off = draw(st.one_of(st.none(), st.integers(-30, 600)))
    ticket = None if ticket_off is None else start + ticket_off * M
    kind = draw(st.sampled_from(OutageKind))
    exclusions = (excl(at=BASE),) if draw(st.integers(0, 5)) == 0 else ()
    return OutageRecord(oid, start, start, ticket, end, kind, exclusions)


Scenario = tuple[ContractTerms, list[OutageRecord], list[Interval], list[Interval], datetime]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    t = terms(
        basis=draw(st.sampled_from(Basis)),
        clock=draw(st.sampled_from(DowntimeClock)),
        degradation_counts=draw(st.booleans()),
        acceptance=BASE + draw(st.integers(-1000, 20000)) * M,
    )
    n = draw(st.integers(0, 5))
    outs = [draw(outage_records(f"o{i}")) for i in range(n)]
    now = BASE + draw(st.integers(MONTH_MIN - 3000, MONTH_MIN + 3000)) * M
    return t, outs, draw(interval_lists), draw(interval_lists), now


def _run(s: Scenario, maintenance: list[Interval] | None = None) -> SlaResult:
    t, outs, maint, gaps, now = s
    return availability(t, OCT, outs, maint if maintenance is None else maintenance, gaps, now)


@PROPS
@given(scenarios())
def test_prop_availability_in_range_and_lines_add_up(s: Scenario) -> None:
    result = _run(s)
    assert 0 <= result.availability_exact <= 100
    assert result.coverage_exact is None or 0 <= result.coverage_exact <= 100
    zero = timedelta(0)
    assert sum((x.counted for x in result.lines), zero) == result.tnodisp
    assert sum((x.unclaimed for x in result.lines), zero) == result.unclaimed
    for x in result.lines:
        parts = [x.outside, x.unknown, x.withheld, x.maintenance, x.counted, x.unclaimed, x.overlap]
        assert all(p >= zero for p in parts)
        assert sum(parts, zero) == x.duration


@PROPS
@given(scenarios(), intervals())
def test_prop_maintenance_never_lowers_availability(s: Scenario, extra: Interval) -> None:
    before = _run(s)
    after = _run(s, [*s[2], extra])
    assert after.availability_exact >= before.availability_exact
    assert after.tnodisp <= before.tnodisp


@PROPS
@given(scenarios(), st.data())
def test_prop_splitting_an_outage_keeps_tnodisp(s: Scenario, data: st.DataObject) -> None:
    t, outs, maint, gaps, now = s
    closed = [o for o in outs if o.restored_at is not None and o.restored_at > o.first_failure_at]
    if not closed:
        return
    o = data.draw(st.sampled_from(closed))
    assert o.restored_at is not None
    length_us = (o.restored_at - o.first_failure_at) // US
    cut = (
        o.first_failure_at + data.draw(st.integers(1, length_us - 1)) * US
        if length_us > 1
        else None
    )
    if cut is None:
        return
    first = replace(o, id=o.id + "a", restored_at=cut)
    second = replace(o, id=o.id + "b", first_failure_at=cut, confirmed_at=cut)
    split = [x for x in outs if x is not o] + [first, second]
    assert availability(t, OCT, split, maint, gaps, now).tnodisp == _run(s).tnodisp


@PROPS
@given(scenarios(), st.randoms(use_true_random=False))
def test_prop_outage_order_does_not_matter(s: Scenario, rnd: random.Random) -> None:
    t, outs, maint, gaps, now = s
    shuffled = list(outs)
    rnd.shuffle(shuffled)
    assert availability(t, OCT, shuffled, maint, gaps, now) == _run(s)


@PROPS
@given(interval_lists, interval_lists)
def test_prop_interval_algebra(a: list[Interval], b: list[Interval]) -> None:
    u = union(a)
    assert union(u) == u and union(a, a) == u and union(reversed(a)) == u
    assert all(x.end < y.start for x, y in itertools.pairwise(u))  # disjoint, not touching
    assert measure(u) <= sum((x.duration for x in a), timedelta(0))
    assert measure(a) == measure(intersection(a, b)) + measure(difference(a, b))
    assert measure(union(a, b)) == measure(a) + measure(b) - measure(intersection(a, b))
    assert intersection(a, b) == intersection(b, a)
    assert compose(CompositionRule.ALL, {"p": a, "q": b}) == intersection(a, b)
    assert compose(CompositionRule.ANY, {"p": a, "q": b}) == union(a, b)
    cut = BASE + 10_000 * M
    before, after = split_at(a, cut)
    assert union(before, after) == u
    assert all(x.end <= cut for x in before) and all(x.start >= cut for x in after)
    assert span(cut, cut) == () and span(cut, cut + M) == (Interval(cut, cut + M),)
