"""Maintenance windows: one-off or recurring (RFC 5545 RRULE), and .ics import. Pure.

A window removes only the part of an outage it overlaps (DESIGN.md §2). A recurring window
repeats in wall-clock time of its zone ("every Sunday 02:00 local" stays 02:00 across DST);
each occurrence lasts the exact elapsed time of the first one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule as RecurrenceRule
from dateutil.rrule import rrulestr

from monitor.sla.intervals import Interval, IntervalSet, span, union, utc_instant

__all__ = [
    "ALL_SERVICES",
    "MAX_OCCURRENCES",
    "MAX_WINDOW",
    "IcsEvent",
    "MaintenanceCalendar",
    "MaintenanceError",
    "MaintenanceWindow",
    "Origin",
    "occurrences",
    "parse_ics",
    "parse_rrule",
    "windows_for",
]

ALL_SERVICES: Final = "*"  # a window whose services list is ["*"] covers every service
# A single maintenance longer than a week is a typo (or an outage being hidden).
MAX_WINDOW: Final = timedelta(days=7)
# Bounds the expansion of one rule over one period; a minutely rule over a month is a mistake.
MAX_OCCURRENCES: Final = 1000
MAX_ICS_BYTES: Final = 2 * 1024 * 1024  # a carrier's notice calendar; bigger is not one
MAX_TEXT: Final = 2000  # titles and references shown in reports


class MaintenanceError(ValueError):
    """A window, rule or calendar that cannot be used; the message says what and why."""


class Origin(StrEnum):
    CARRIER = "carrier"
    CUSTOMER = "customer"
    VENDOR = "vendor"


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise MaintenanceError(f"unknown time zone {tz!r}") from None


def parse_rrule(text: str, dtstart_local: datetime) -> RecurrenceRule:
    """An RFC 5545 §3.3.10 RECUR value (``FREQ=WEEKLY;BYDAY=SU``), anchored at dtstart."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body or "\n" in body or "\r" in body:
        raise MaintenanceError("rrule must be one RECUR value like FREQ=WEEKLY;BYDAY=SU")
    if "DTSTART" in body.upper():
        raise MaintenanceError("rrule must not carry DTSTART: the window's start is the anchor")
    try:
        rule = rrulestr(body, dtstart=dtstart_local)
    except (ValueError, TypeError) as exc:
        raise MaintenanceError(f"rrule {body!r} is not a valid RFC 5545 RECUR: {exc}") from None
    if not isinstance(rule, RecurrenceRule):
        raise MaintenanceError("rrule must be a single rule")
    return rule


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A scheduled maintenance announced by notice_ref; never deleted, only cancelled."""

    id: str
    title: str
    services: tuple[str, ...]
    origin: Origin
    start: datetime  # first occurrence, aware
    end: datetime
    tz: str = "UTC"  # the zone the rule repeats in
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()  # occurrence starts removed from the rule
    notice_ref: str = ""
    ical_uid: str | None = None
    ical_sequence: int | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    _rule: RecurrenceRule | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            start = utc_instant(self.start, "window start")
            end = utc_instant(self.end, "window end")
        except ValueError as exc:
            raise MaintenanceError(str(exc)) from None
        if end <= start:
            raise MaintenanceError("window must end after it starts")
        if end - start > MAX_WINDOW:
            raise MaintenanceError(f"window longer than {MAX_WINDOW.days} days")
        if not self.services:
            raise MaintenanceError("window must name services (or '*' for all)")
        if not self.title.strip() or len(self.title) > MAX_TEXT or len(self.notice_ref) > MAX_TEXT:
            raise MaintenanceError(
                f"title must be 1 to {MAX_TEXT} characters, notice_ref ≤ {MAX_TEXT}"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "origin", Origin(self.origin))
        object.__setattr__(self, "services", tuple(self.services))
        object.__setattr__(self, "exdates", tuple(utc_instant(d, "exdate") for d in self.exdates))
        zone = _zone(self.tz)
        if self.rrule is not None:
            rule = parse_rrule(self.rrule, start.astimezone(zone))
            object.__setattr__(self, "_rule", rule)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def covers(self, service: str) -> bool:
        return ALL_SERVICES in self.services or service in self.services

    def with_changes(self, **changes: Any) -> MaintenanceWindow:
        return replace(self, _rule=None, **changes)

    def to_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return None if d is None else d.isoformat()

        return {
            "id": self.id,
            "title": self.title,
            "services": list(self.services),
            "origin": self.origin.value,
            "start": iso(self.start),
            "end": iso(self.end),
            "tz": self.tz,
            "rrule": self.rrule,
            "exdates": [d.isoformat() for d in self.exdates],
            "notice_ref": self.notice_ref,
            "ical_uid": self.ical_uid,
            "ical_sequence": self.ical_sequence,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "updated_at": iso(self.updated_at),
            "updated_by": self.updated_by,
            "cancelled_at": iso(self.cancelled_at),
            "cancelled_by": self.cancelled_by,
            "cancel_reason": self.cancel_reason,
        }

    def exdates_json(self) -> str:
        return json.dumps([d.isoformat() for d in self.exdates])


def occurrences(window: MaintenanceWindow, start: datetime, end: datetime) -> IntervalSet:
    """The window's occurrences meeting [start, end) (unclipped), as UTC intervals."""
    start, end = utc_instant(start, "start"), utc_instant(end, "end")
    length = window.duration
    if window._rule is None:
        return span(window.start, window.end) if window.start < end and window.end > start else ()
    zone = _zone(window.tz)
    # An occurrence that started up to one length before `start` can still overlap it.
    after = (start - length).astimezone(zone)
    excluded = set(window.exdates)
    out: list[Interval] = []
    for local in window._rule.xafter(after, inc=True, count=MAX_OCCURRENCES + 1):
        if len(out) >= MAX_OCCURRENCES:
            raise MaintenanceError(
                f"window {window.id} repeats more than {MAX_OCCURRENCES} times in one period"
            )
        begin = local.astimezone(UTC)  # wall time in zone → the instant (fold=0 on DST gaps)
        if begin >= end:
            break
        if begin in excluded or begin + length <= start:
            continue
        out.append(Interval(begin, begin + length))
    return union(out)


def windows_for(
    service: str, windows: Iterable[MaintenanceWindow], start: datetime, end: datetime
) -> IntervalSet:
    """Maintenance time of service within [start, end): cancelled windows do not count."""
    groups = [occurrences(w, start, end) for w in windows if not w.cancelled and w.covers(service)]
    return union(*groups)


class MaintenanceCalendar:
    """The windows in force, in memory: the ticket outbox asks about every held ticket each
    second whether its trunk is inside a window of a service the trunk is part of."""

    def __init__(self, services: Iterable[tuple[str, Iterable[str]]]) -> None:
        """``services``: (service name, its parts) pairs: windows name services, not trunks."""
        self._services_of: dict[str, set[str]] = {}
        self.set_services(services)
        self._windows: list[MaintenanceWindow] = []

    def set_services(self, services: Iterable[tuple[str, Iterable[str]]]) -> None:
        """The services and their parts (again, after a reload)."""
        services_of: dict[str, set[str]] = {}
        for name, parts in services:
            for trunk in parts:
                services_of.setdefault(trunk, set()).add(name)
        self._services_of = services_of

    def replace(self, windows: Iterable[MaintenanceWindow]) -> None:
        self._windows = [w for w in windows if not w.cancelled]

    def covers(self, trunk: str, at: datetime) -> bool:
        services = self._services_of.get(trunk, set())
        for window in self._windows:
            if ALL_SERVICES in window.services or services & set(window.services):
                if occurrences(window, at, at + timedelta(microseconds=1)):
                    return True
        return False


@dataclass(frozen=True, slots=True)
class IcsEvent:
    """One VEVENT of a carrier's maintenance calendar, ready to become a window."""

    uid: str
    sequence: int
    title: str
    start: datetime
    end: datetime
    tz: str
    rrule: str | None
    exdates: tuple[datetime, ...]
    cancelled: bool
    notice_ref: str


def _aware(value: Any, default_tz: str, what: str) -> tuple[datetime, str]:
    """A DTSTART/DTEND value as an aware datetime and the zone name it repeats in."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # RFC 5545 §3.3.5 "floating" time: the calendar did not say; use the caller's zone.
            return value.replace(tzinfo=_zone(default_tz)), default_tz
        key = getattr(value.tzinfo, "key", None)
        if isinstance(key, str):
            return value, key
        if value.utcoffset() == timedelta(0):
            return value, "UTC"
        return value, default_tz
    if isinstance(value, date):
        # An all-day notice (VALUE=DATE): local midnight in the caller's zone.
        return datetime.combine(value, time(0), _zone(default_tz)), default_tz
    raise MaintenanceError(f"{what} is not a date or date-time")


def parse_ics(data: bytes, default_tz: str = "UTC") -> list[IcsEvent]:
    """The VEVENTs of an iCalendar file (RFC 5545); anything unusable raises MaintenanceError."""
    from icalendar import Calendar

    if len(data) > MAX_ICS_BYTES:
        raise MaintenanceError(f"calendar larger than {MAX_ICS_BYTES} bytes")
    _zone(default_tz)
    try:
        calendar = Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
        raise MaintenanceError(f"not an iCalendar file: {str(exc)[:200]}") from None
    events: list[IcsEvent] = []
    for number, component in enumerate(calendar.walk("VEVENT"), start=1):
        events.append(_event(component, number, default_tz))
    if not events:
        raise MaintenanceError("the calendar has no VEVENT")
    return events


def _event(component: Any, number: int, default_tz: str) -> IcsEvent:
    uid = str(component.get("UID") or "").strip()
    where = f"VEVENT {number}" + (f" (UID {uid})" if uid else "")
    if not uid:
        raise MaintenanceError(f"{where}: no UID (RFC 5545 §3.8.4.7 requires one)")
    dtstart = component.get("DTSTART")
    if dtstart is None:
        raise MaintenanceError(f"{where}: no DTSTART")
    start, tz = _aware(dtstart.dt, default_tz, f"{where}: DTSTART")
    if component.get("DTEND") is not None:
        end, _ = _aware(component.get("DTEND").dt, tz, f"{where}: DTEND")
    elif component.get("DURATION") is not None:
        duration = component.get("DURATION").dt
        if not isinstance(duration, timedelta):
            raise MaintenanceError(f"{where}: DURATION is not a duration")
        end = (start.astimezone(UTC) + duration).astimezone(start.tzinfo)
    else:
        raise MaintenanceError(f"{where}: needs DTEND or DURATION to be a maintenance window")
    rule = component.get("RRULE")
    rrule_text = None
    if rule is not None:
        rules = rule if isinstance(rule, list) else [rule]
        if len(rules) != 1:
            raise MaintenanceError(f"{where}: more than one RRULE is not supported")
        rrule_text = rules[0].to_ical().decode("ascii")
    exdates: list[datetime] = []
    raw_ex = component.get("EXDATE")
    for group in raw_ex if isinstance(raw_ex, list) else ([raw_ex] if raw_ex is not None else []):
        for item in group.dts:
            exdates.append(_aware(item.dt, tz, f"{where}: EXDATE")[0])
    status = str(component.get("STATUS") or "").upper()
    sequence = int(component.get("SEQUENCE") or 0)
    title = str(component.get("SUMMARY") or "").strip() or "maintenance"
    url = str(component.get("URL") or "").strip()
    return IcsEvent(
        uid=uid,
        sequence=sequence,
        title=title[:MAX_TEXT],
        start=start,
        end=end,
        tz=tz,
        rrule=rrule_text,
        exdates=tuple(exdates),
        cancelled=status == "CANCELLED",
        notice_ref=(f"{uid} {url}".strip() if url else uid)[:MAX_TEXT],
    )


def check_window_fields(
    *, start: datetime, end: datetime, tz: str, rrule_text: str | None, services: Sequence[str]
) -> None:
    """Validate the parts of a window before it gets an id (used by the API and the CLI)."""
    MaintenanceWindow(
        id="check",
        title="check",
        services=tuple(services),
        origin=Origin.CARRIER,
        start=start,
        end=end,
        tz=tz,
        rrule=rrule_text,
    )
