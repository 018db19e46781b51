"""Contract SLA arithmetic (DESIGN.md §2): periods, Ttotal, Tnodisp, availability, credits. Pure.

Inputs are aware datetimes (normalised to UTC on entry); durations are exact ``timedelta``s
(integer microseconds) and percentages exact ``Fraction``s, rounded only for display.
The contract's time zone is used for month boundaries only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from fractions import Fraction
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.sla.intervals import (
    Interval,
    IntervalSet,
    SlaInputError,
    difference,
    intersection,
    intersection_all,
    measure,
    microseconds,
    span,
    split_at,
    union,
    utc_instant,
)

__all__ = [
    "DISPLAY_PLACES",
    "MONEY_QUANTUM",
    "ROLLING_WINDOW",
    "THIRTY_DAY_MONTH",
    "Basis",
    "CompositionRule",
    "ContractTerms",
    "CreditBalance",
    "CreditMonth",
    "CreditTier",
    "DowntimeClock",
    "Exclusion",
    "ExclusionKind",
    "Interval",
    "NotCounted",
    "OutageKind",
    "OutageLine",
    "OutageRecord",
    "Period",
    "PeriodKind",
    "SlaInputError",
    "SlaResult",
    "availability",
    "carry_credits",
    "compose",
    "credit_for",
    "display_pct",
    "month_of",
    "month_period",
    "rolling_period",
]

THIRTY_DAY_MONTH = timedelta(hours=720)  # the annexes' "total hours of a 30-day month"
ROLLING_WINDOW = timedelta(days=30)  # rolling availability: the last 30 days, i.e. 720 h
DISPLAY_PLACES = 4  # reports show percentages to 4 decimals (the worked example's 99.6528 %)
MONEY_QUANTUM = Decimal("0.01")  # fees and credits are invoiced in cents / centavos
_DECIMAL_PRECISION = 50  # enough digits that fee × percentage products are never rounded
_US_PER_HOUR = 3_600_000_000
_HUNDRED = Fraction(100)


class Basis(StrEnum):
    THIRTY_DAY = "thirty_day"  # Ttotal = 720 h for every whole month
    CALENDAR = "calendar"  # Ttotal = real hours of the month in the contract's time zone


class DowntimeClock(StrEnum):
    TICKET = "ticket"  # downtime runs from the ticket opening to restoration
    DETECTION = "detection"  # downtime runs from the first failed probe to restoration


class OutageKind(StrEnum):
    OUTAGE = "outage"  # total interruption
    DEGRADATION = "degradation"  # below agreed quality: a fault, downtime only if the contract says


class ExclusionKind(StrEnum):
    CUSTOMER_EQUIPMENT = "customer_equipment"
    NO_ACCESS = "no_access"
    MISUSE = "misuse"
    NON_PAYMENT = "non_payment"
    FORCE_MAJEURE = "force_majeure"
    NEW_INSTALLATION = "new_installation"
    SCHEDULED_MAINTENANCE = "scheduled_maintenance"
    STRIKE = "strike"
    NATURAL_DISASTER = "natural_disaster"
    # The annex names these two apart from force majeure: an interruption ordered by a
    # competent authority is explicitly *not* force majeure, and the customer's Internet
    # access bought from a third party is not the carrier's service.
    AUTHORITY_ORDER = "authority_order"
    CUSTOMER_INTERNET = "customer_internet"


class CompositionRule(StrEnum):
    ALL = "all"  # the service is down only while every required part is down
    ANY = "any"  # the service is down while any required part is down


class PeriodKind(StrEnum):
    MONTH = "month"
    ROLLING = "rolling"


class NotCounted(StrEnum):
    """Why part of an outage is not in Tnodisp, in the order the steps are applied."""

    OUTSIDE_PERIOD = "outside_period"  # before the period or acceptance, after its end or `now`
    UNKNOWN = "unknown"  # the monitor was not watching
    EXCLUDED = "excluded"  # an active exclusion classifies the whole outage
    DEGRADATION = "degradation"  # a degradation and the contract does not count them
    MAINTENANCE = "maintenance"  # inside a maintenance window
    BEFORE_TICKET = "before_ticket"  # clock ticket: detection → ticket opening (unclaimed)
    NO_TICKET = "no_ticket"  # clock ticket and no ticket was ever opened (all unclaimed)
    OVERLAP = "overlap"  # already counted under an earlier overlapping outage


_E = TypeVar("_E", bound=StrEnum)


def _enum(cls: type[_E], value: str, name: str) -> _E:
    try:
        return cls(value)
    except ValueError as exc:
        allowed = ", ".join(m.value for m in cls)
        raise SlaInputError(f"{name} {value!r} is not one of: {allowed}") from exc


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SlaInputError(f"unknown time zone {tz!r}") from exc


def _text(value: str, name: str) -> str:
    if not value.strip():
        raise SlaInputError(f"{name} must not be empty")
    return value


def _percent(value: Decimal, name: str, *, allow_zero: bool) -> Decimal:
    if not value.is_finite() or value < 0 or (value == 0 and not allow_zero) or value > 100:
        raise SlaInputError(f"{name} must be a percentage in {'[' if allow_zero else '('}0, 100]")
    return value


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting period [start_utc, end_utc); months carry the zone their boundaries came from."""

    start_utc: datetime
    end_utc: datetime
    label: str
    kind: PeriodKind = PeriodKind.MONTH
    tz: str = "UTC"

    def __post_init__(self) -> None:
        start = utc_instant(self.start_utc, "period start")
        end = utc_instant(self.end_utc, "period end")
        if end <= start:
            raise SlaInputError(f"period {self.label!r} must end after it starts")
        object.__setattr__(self, "start_utc", start)
        object.__setattr__(self, "end_utc", end)
        object.__setattr__(self, "kind", _enum(PeriodKind, self.kind, "period kind"))

    @property
    def length(self) -> timedelta:
        return self.end_utc - self.start_utc


def month_period(year: int, month: int, tz: str) -> Period:
    """The calendar month in zone tz, local midnight of the 1st to the next 1st, as UTC instants."""
    if not 1 <= month <= 12:
        raise SlaInputError(f"month must be 1..12, got {month}")
    if not 1 <= year <= 9998:  # datetime's range, leaving room for the following month
        raise SlaInputError(f"year out of range: {year}")
    zone = _zone(tz)
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    # fold=0: a midnight skipped by DST maps to the transition instant, a repeated one to its
    # first occurrence; either way the month starts where the local day first shows the 1st.
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(next_year, next_month, 1, tzinfo=zone)
    return Period(start, end, f"{year:04d}-{month:02d}", PeriodKind.MONTH, tz)


def month_of(instant: datetime, tz: str) -> Period:
    """The calendar month (in zone tz) that contains instant."""
    local = utc_instant(instant).astimezone(_zone(tz))
    return month_period(local.year, local.month, tz)


def rolling_period(now: datetime) -> Period:
    """The rolling window [now − 30 d, now); its Ttotal is 720 h on either basis."""
    end = utc_instant(now, "now")
    return Period(end - ROLLING_WINDOW, end, f"30 d to {end.isoformat()}", PeriodKind.ROLLING)


@dataclass(frozen=True, slots=True)
class CreditTier:
    """Availability strictly below below_pct earns credit_pct of the monthly fee."""

    below_pct: Decimal
    credit_pct: Decimal

    def __post_init__(self) -> None:
        _percent(self.below_pct, "credit tier threshold", allow_zero=False)
        _percent(self.credit_pct, "credit tier credit", allow_zero=True)


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """The SLA terms of one contract, as the arithmetic needs them."""

    target_pct: Decimal
    basis: Basis
    clock: DowntimeClock
    degradation_counts: bool
    tz: str
    acceptance: datetime
    credit_tiers: tuple[CreditTier, ...] = ()
    monthly_fee: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        _percent(self.target_pct, "target", allow_zero=True)
        _zone(self.tz)
        if not self.monthly_fee.is_finite() or self.monthly_fee < 0:
            raise SlaInputError("monthly fee must be a non-negative amount")
        object.__setattr__(self, "basis", _enum(Basis, self.basis, "basis"))
        object.__setattr__(self, "clock", _enum(DowntimeClock, self.clock, "clock"))
        object.__setattr__(self, "acceptance", utc_instant(self.acceptance, "acceptance"))
        object.__setattr__(self, "credit_tiers", tuple(self.credit_tiers))

    def month(self, year: int, month: int) -> Period:
        return month_period(year, month, self.tz)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """An audited classification of a whole outage as not counted; revoking keeps the record."""

    kind: ExclusionKind
    by: str
    at: datetime
    reason: str
    reference: str = ""  # carrier ticket, work order, letter... anything the carrier can check
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(ExclusionKind, self.kind, "exclusion kind"))
        _text(self.by, "exclusion author")
        _text(self.reason, "exclusion reason")
        at = utc_instant(self.at, "exclusion time")
        object.__setattr__(self, "at", at)
        if self.revoked_at is None:
            if self.revoked_by is not None or self.revoked_reason is not None:
                raise SlaInputError("revoked_by/revoked_reason given without revoked_at")
            return
        revoked_at = utc_instant(self.revoked_at, "revocation time")
        if revoked_at < at:
            raise SlaInputError("an exclusion cannot be revoked before it was made")
        _text(self.revoked_by or "", "revoked_by")
        object.__setattr__(self, "revoked_at", revoked_at)

    def active_at(self, now: datetime) -> bool:
        """In force at now: made by then and not revoked by then (old reports stay reproducible)."""
        return self.at <= now and (self.revoked_at is None or self.revoked_at > now)


@dataclass(frozen=True, slots=True)
class OutageRecord:
    """One outage (or degradation) of a service as the journal recorded it."""

    id: str
    first_failure_at: datetime  # first failed probe: detection
    confirmed_at: datetime
    ticket_opened_at: datetime | None  # None: no ticket was ever opened with the carrier
    restored_at: datetime | None  # first successful probe; None: still open, runs to `now`
    kind: OutageKind = OutageKind.OUTAGE
    exclusions: tuple[Exclusion, ...] = ()  # full history, revoked ones included

    def __post_init__(self) -> None:
        _text(self.id, "outage id")
        first = utc_instant(self.first_failure_at, f"outage {self.id} first failure")
        confirmed = utc_instant(self.confirmed_at, f"outage {self.id} confirmation")
        if confirmed < first:
            raise SlaInputError(f"outage {self.id}: confirmed before its first failure")
        object.__setattr__(self, "first_failure_at", first)
        object.__setattr__(self, "confirmed_at", confirmed)
        if self.ticket_opened_at is not None:
            ticket = utc_instant(self.ticket_opened_at, f"outage {self.id} ticket")
            object.__setattr__(self, "ticket_opened_at", ticket)
        if self.restored_at is not None:
            restored = utc_instant(self.restored_at, f"outage {self.id} restoration")
            if restored < first:
                raise SlaInputError(f"outage {self.id}: restored before its first failure")
            object.__setattr__(self, "restored_at", restored)
        object.__setattr__(self, "kind", _enum(OutageKind, self.kind, "outage kind"))
        object.__setattr__(self, "exclusions", tuple(self.exclusions))

    def exclusion_at(self, now: datetime) -> Exclusion | None:
        """The exclusion in force at now (the most recent if several), or None."""
        active = [e for e in self.exclusions if e.active_at(now)]
        return max(active, key=lambda e: e.at) if active else None


@dataclass(frozen=True, slots=True)
class OutageLine:
    """Where every moment of one outage went; the parts add up to ``duration``.

    ``duration`` = outside + unknown + withheld + maintenance + counted + unclaimed + overlap.
    """

    id: str
    kind: OutageKind
    open: bool  # not restored yet: measured up to `now`
    duration: timedelta  # first failure → restoration (or now)
    outside: timedelta  # before the period / acceptance, after its end or after now
    unknown: timedelta  # the monitor was not watching
    withheld: timedelta  # excluded outage, or degradation not counted by the contract
    maintenance: timedelta  # inside maintenance windows
    counted: timedelta  # this outage's share of Tnodisp
    unclaimed: timedelta  # clock ticket: down before the ticket (or with none) and not counted
    overlap: timedelta  # already accounted for under an earlier overlapping outage
    exclusion: Exclusion | None
    reasons: tuple[NotCounted, ...]


@dataclass(frozen=True, slots=True)
class SlaResult:
    """Availability of one service over one period, with everything a report must show."""

    period: Period
    effective_start: datetime  # period start, or acceptance when the service began inside it
    complete: bool  # now ≥ period end: later events can no longer change the figures
    ttotal: timedelta
    tnodisp: timedelta
    availability_exact: Fraction  # percent, exact
    target_pct: Decimal
    target_met: bool
    tier: CreditTier | None
    credit: Decimal
    lines: tuple[OutageLine, ...]
    unclaimed: timedelta  # downtime lost to late or missing tickets (clock ticket only)
    unknown: timedelta  # time the monitor was not watching, within the observed window
    observed: timedelta  # effective start → min(period end, now)
    coverage_exact: Fraction | None  # percent of `observed` that was watched; None if nothing yet
    basis_note: str

    @property
    def availability_pct(self) -> Decimal:
        return display_pct(self.availability_exact)

    @property
    def coverage_pct(self) -> Decimal | None:
        return None if self.coverage_exact is None else display_pct(self.coverage_exact)


def display_pct(value: Fraction) -> Decimal:
    """An exact percentage rounded half-up to DISPLAY_PLACES decimals, without float steps."""
    scale = 10**DISPLAY_PLACES
    scaled = value * scale
    # Half-up on the magnitude, so negative values (never produced here) would round symmetrically.
    magnitude = (abs(scaled) * 2 + 1) // 2
    rounded = magnitude if scaled >= 0 else -magnitude
    return Decimal(rounded).scaleb(-DISPLAY_PLACES)


def _hours(duration: timedelta) -> str:
    us = microseconds(duration)
    if us % _US_PER_HOUR == 0:
        return f"{us // _US_PER_HOUR} h"
    with localcontext() as ctx:
        ctx.prec = _DECIMAL_PRECISION
        hours = (Decimal(us) / _US_PER_HOUR).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    return f"{hours} h ({Decimal(us).scaleb(-6).normalize():f} s)"


def _ttotal(
    terms: ContractTerms, period: Period, effective_start: datetime
) -> tuple[timedelta, str]:
    """Ttotal and the sentence the report prints to justify it."""
    real = period.end_utc - effective_start
    if effective_start > period.start_utc:
        # DESIGN §2: a partial first month's Ttotal is the calendar hours from acceptance to the
        # period end, on either basis; the 720 h convention only describes whole months.
        return real, (
            f"partial period from service acceptance {effective_start.isoformat()}: "
            f"Ttotal = {_hours(real)}, the real time from acceptance to the period end "
            f"({terms.basis} basis applies to whole periods only)"
        )
    if period.kind is PeriodKind.ROLLING:
        return real, f"rolling window: Ttotal = {_hours(real)}, the window's length"
    if terms.basis is Basis.THIRTY_DAY:
        return THIRTY_DAY_MONTH, (
            f"thirty_day basis: Ttotal = {_hours(THIRTY_DAY_MONTH)} whatever the month's length "
            f"({period.label} has {_hours(real)} in {period.tz})"
        )
    return (
        real,
        f"calendar basis: Ttotal = {_hours(real)}, the real length of {period.label} "
        f"in {period.tz}",
    )


@dataclass(frozen=True, slots=True)
class _Draft:
    """One outage after the per-outage steps, before overlaps with other outages are resolved."""

    record: OutageRecord
    duration: timedelta
    outside: timedelta
    unknown: timedelta
    withheld: timedelta
    maintenance: timedelta
    counted: IntervalSet
    unclaimed: IntervalSet
    exclusion: Exclusion | None
    reasons: tuple[NotCounted, ...]


def _draft(
    record: OutageRecord,
    terms: ContractTerms,
    window: IntervalSet,
    gaps: IntervalSet,
    maintenance: IntervalSet,
    now: datetime,
) -> _Draft:
    end = record.restored_at if record.restored_at is not None else now
    whole = span(record.first_failure_at, end)
    in_window = intersection(whole, window)
    known = difference(in_window, gaps)
    reasons: list[NotCounted] = []
    if measure(whole) > measure(in_window):
        reasons.append(NotCounted.OUTSIDE_PERIOD)
    if measure(in_window) > measure(known):
        reasons.append(NotCounted.UNKNOWN)

    exclusion = record.exclusion_at(now)
    uncounted_degradation = record.kind is OutageKind.DEGRADATION and not terms.degradation_counts
    if exclusion is not None or uncounted_degradation:
        if measure(known):
            reasons.append(NotCounted.EXCLUDED if exclusion else NotCounted.DEGRADATION)
        return _Draft(
            record,
            measure(whole),
            measure(whole) - measure(in_window),
            measure(in_window) - measure(known),
            measure(known),
            timedelta(0),
            (),
            (),
            exclusion,
            tuple(reasons),
        )

    claimable = difference(known, maintenance)
    if measure(known) > measure(claimable):
        reasons.append(NotCounted.MAINTENANCE)
    counted: IntervalSet
    unclaimed: IntervalSet
    if terms.clock is DowntimeClock.DETECTION:
        counted, unclaimed = claimable, ()
    elif record.ticket_opened_at is None:
        # Clock ticket: downtime is claimable only from a ticket; an outage that never got one
        # is never counted. It is reported in full as unclaimed so the NOC sees what it lost.
        counted, unclaimed = (), claimable
        if claimable:
            reasons.append(NotCounted.NO_TICKET)
    else:
        unclaimed, counted = split_at(claimable, record.ticket_opened_at)
        if unclaimed:
            reasons.append(NotCounted.BEFORE_TICKET)
    return _Draft(
        record,
        measure(whole),
        measure(whole) - measure(in_window),
        measure(in_window) - measure(known),
        timedelta(0),
        measure(known) - measure(claimable),
        counted,
        unclaimed,
        None,
        tuple(reasons),
    )


def availability(
    terms: ContractTerms,
    period: Period,
    outages: Sequence[OutageRecord],
    maintenance: Iterable[Interval],
    gaps: Iterable[Interval],
    now: datetime,
) -> SlaResult:
    """Availability % = (Ttotal − Tnodisp) / Ttotal × 100 for one service over period, as of now.

    - Only [max(period start, acceptance), min(period end, now)) counts: outages are clipped to
      it, which splits one crossing a month boundary; open outages run to now.
    - Outages are unioned, never double-counted; each instant is attributed to the earliest
      outage (by first failure, then id) that counts it, so the lines add up to Tnodisp.
    - Gaps (monitor not watching) are neither up nor down: removed from Tnodisp, reported as
      coverage. Ttotal stays the contract's, so unknown time cannot be claimed as downtime.
    - Maintenance removes only its overlap; an active exclusion or an uncounted degradation
      removes the whole outage. Exclusions apply as of now (made by then, not revoked by then).
    - Clock ticket: counted from the ticket opening; detection → ticket (or the whole outage when
      no ticket was opened) is unclaimed. Clock detection: counted from the first failure.
    - The credit is a share of terms.monthly_fee as given (pass a prorated fee for a partial
      month if the contract prorates it).
    - Availability is floored at 0 (Tnodisp can exceed 720 h in a 31-day month); tiers and target
      compare the exact value, the 4-decimal figure is for display.
    """
    now = utc_instant(now, "now")
    if period.kind is PeriodKind.MONTH and period.tz != terms.tz:
        raise SlaInputError(
            f"period {period.label} was cut in {period.tz}, the contract's time zone is {terms.tz}"
        )
    ids = [o.id for o in outages]
    if len(set(ids)) != len(ids):
        raise SlaInputError(f"duplicate outage ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    effective_start = max(period.start_utc, terms.acceptance)
    if effective_start >= period.end_utc:
        raise SlaInputError(
            f"period {period.label} ends at {period.end_utc.isoformat()}, not after service "
            f"acceptance at {terms.acceptance.isoformat()}"
        )
    ttotal, note = _ttotal(terms, period, effective_start)
    window = span(effective_start, min(period.end_utc, now))
    gap_set = intersection(gaps, window)
    maintenance_set = union(maintenance)

    ordered = sorted(outages, key=lambda o: (o.first_failure_at, o.id))
    drafts = [_draft(o, terms, window, gap_set, maintenance_set, now) for o in ordered]
    counted_all = union(*(d.counted for d in drafts))

    lines: list[OutageLine] = []
    taken_counted: IntervalSet = ()
    taken_unclaimed: IntervalSet = ()
    for d in drafts:
        counted = difference(d.counted, taken_counted)
        taken_counted = union(taken_counted, counted)
        # Time counted under any outage was claimed after all, so it is never unclaimed.
        unclaimed = difference(d.unclaimed, union(counted_all, taken_unclaimed))
        taken_unclaimed = union(taken_unclaimed, unclaimed)
        overlap = (measure(d.counted) - measure(counted)) + (
            measure(d.unclaimed) - measure(unclaimed)
        )
        reasons = d.reasons + ((NotCounted.OVERLAP,) if overlap else ())
        lines.append(
            OutageLine(
                id=d.record.id,
                kind=d.record.kind,
                open=d.record.restored_at is None,
                duration=d.duration,
                outside=d.outside,
                unknown=d.unknown,
                withheld=d.withheld,
                maintenance=d.maintenance,
                counted=measure(counted),
                unclaimed=measure(unclaimed),
                overlap=overlap,
                exclusion=d.exclusion,
                reasons=reasons,
            )
        )

    tnodisp = measure(counted_all)
    tt_us = microseconds(ttotal)
    exact = _HUNDRED * Fraction(tt_us - microseconds(tnodisp), tt_us)
    if exact < 0:
        exact = Fraction(0)
        note += f"; Tnodisp ({_hours(tnodisp)}) exceeds Ttotal, availability floored at 0 %"
    observed = measure(window)
    unknown = measure(gap_set)
    coverage = (
        _HUNDRED * Fraction(microseconds(observed - unknown), microseconds(observed))
        if observed
        else None
    )
    tier, credit = credit_for(exact, terms.credit_tiers, terms.monthly_fee)
    return SlaResult(
        period=period,
        effective_start=effective_start,
        complete=now >= period.end_utc,
        ttotal=ttotal,
        tnodisp=tnodisp,
        availability_exact=exact,
        target_pct=terms.target_pct,
        target_met=exact >= Fraction(terms.target_pct),
        tier=tier,
        credit=credit,
        lines=tuple(lines),
        unclaimed=measure(taken_unclaimed),
        unknown=unknown,
        observed=observed,
        coverage_exact=coverage,
        basis_note=note,
    )


def compose(rule: CompositionRule, parts: Mapping[str, Iterable[Interval]]) -> IntervalSet:
    """Down intervals of a service from its required parts': all → intersection, any → union."""
    if not parts:
        raise SlaInputError("a composed service needs at least one required part")
    groups = [tuple(p) for p in parts.values()]
    if _enum(CompositionRule, rule, "composition rule") is CompositionRule.ALL:
        return intersection_all(groups)
    return union(*groups)


def credit_for(
    availability_pct: Fraction, tiers: Iterable[CreditTier], monthly_fee: Decimal
) -> tuple[CreditTier | None, Decimal]:
    """The highest-credit tier whose threshold availability is strictly below, and its amount."""
    applicable = [t for t in tiers if availability_pct < Fraction(t.below_pct)]
    if not applicable:
        return None, Decimal(0).quantize(MONEY_QUANTUM)
    # Highest credit wins; on a tie the lower threshold is the more specific tier.
    tier = max(applicable, key=lambda t: (t.credit_pct, -t.below_pct))
    with localcontext() as ctx:
        ctx.prec = _DECIMAL_PRECISION
        amount = (monthly_fee * tier.credit_pct / 100).quantize(MONEY_QUANTUM, ROUND_HALF_UP)
    return tier, amount


@dataclass(frozen=True, slots=True)
class CreditMonth:
    """Credit earned in one period and what the carrier actually applied (on its invoice) then."""

    label: str
    earned: Decimal
    applied: Decimal = field(default=Decimal(0))


@dataclass(frozen=True, slots=True)
class CreditBalance:
    label: str
    brought_forward: Decimal
    earned: Decimal
    applied: Decimal
    carried_forward: Decimal  # still owed by the carrier after this period


def carry_credits(opening: Decimal, months: Iterable[CreditMonth]) -> tuple[CreditBalance, ...]:
    """Running credit balance: unpaid credit carries over to later months until applied."""
    if not opening.is_finite() or opening < 0:
        raise SlaInputError("opening credit balance must be a non-negative amount")
    balance = opening
    out: list[CreditBalance] = []
    for m in months:
        if not m.earned.is_finite() or m.earned < 0:
            raise SlaInputError(f"{m.label}: earned credit must be a non-negative amount")
        if not m.applied.is_finite() or m.applied < 0:
            raise SlaInputError(f"{m.label}: applied credit must be a non-negative amount")
        owed = balance + m.earned
        if m.applied > owed:
            raise SlaInputError(f"{m.label}: applied credit {m.applied} exceeds the {owed} owed")
        out.append(CreditBalance(m.label, balance, m.earned, m.applied, owed - m.applied))
        balance = owed - m.applied
    return tuple(out)
