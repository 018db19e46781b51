"""Maintenance windows: RRULE expansion in local wall time across DST, and .ics import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sla_world import ACTOR, SERVICE, worked_example

from monitor.sla.maintenance import (
    MaintenanceError,
    MaintenanceWindow,
    Origin,
    occurrences,
    parse_ics,
    windows_for,
)

TIJUANA = ZoneInfo("America/Tijuana")  # DST: 2026-03-08 and 2026-11-01


def window(**kw: object) -> MaintenanceWindow:
    base: dict[str, object] = {
        "id": "w",
        "title": "t",
        "services": (SERVICE,),
        "origin": Origin.CARRIER,
        "start": datetime(2026, 3, 1, 2, 0, tzinfo=TIJUANA),
        "end": datetime(2026, 3, 1, 4, 0, tzinfo=TIJUANA),
        "tz": "America/Tijuana",
    }
    base.update(kw)
    return MaintenanceWindow(**base)  # type: ignore[arg-type]


def test_weekly_rule_keeps_local_wall_time_across_dst() -> None:
    w = window(rrule="FREQ=WEEKLY;BYDAY=SU;COUNT=3")
    occ = occurrences(w, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert [o.start.astimezone(TIJUANA).hour for o in occ] == [2, 3, 2]
    # 2026-03-08 02:00 does not exist in Tijuana (spring forward): fold=0 maps it to 03:00 PDT,
    # i.e. 10:00 UTC, the transition instant. The others are 02:00 local: PST 10:00 UTC then
    # PDT 09:00 UTC.
    assert [o.start for o in occ] == [
        datetime(2026, 3, 1, 10, tzinfo=UTC),
        datetime(2026, 3, 8, 10, tzinfo=UTC),
        datetime(2026, 3, 15, 9, tzinfo=UTC),
    ]
    assert all(o.duration == timedelta(hours=2) for o in occ)


def test_exdate_and_range_clipping() -> None:
    w = window(rrule="FREQ=DAILY;COUNT=5", exdates=(datetime(2026, 3, 2, 10, tzinfo=UTC),))
    occ = occurrences(w, datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 4, 11, tzinfo=UTC))
    assert [o.start.day for o in occ] == [3, 4]
    # An occurrence that started before the range still overlaps it.
    occ = occurrences(w, datetime(2026, 3, 1, 11, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert [o.start for o in occ] == [datetime(2026, 3, 1, 10, tzinfo=UTC)]


def test_cancelled_and_other_services_do_not_count() -> None:
    w1 = window(id="a")
    w2 = window(id="b", services=("other",))
    w3 = window(
        id="c",
        start=datetime(2026, 3, 5, 1, tzinfo=UTC),
        end=datetime(2026, 3, 5, 2, tzinfo=UTC),
        cancelled_at=datetime.now(UTC),
    )
    w4 = window(
        id="d",
        services=("*",),
        start=datetime(2026, 3, 6, 1, tzinfo=UTC),
        end=datetime(2026, 3, 6, 2, tzinfo=UTC),
    )
    got = windows_for(
        SERVICE,
        [w1, w2, w3, w4],
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert [i.start for i in got] == [w1.start, w4.start]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rrule": "FREQ=NEVER"}, "RECUR"),
        ({"rrule": "DTSTART:20260101T000000Z\nFREQ=DAILY"}, "one RECUR"),
        ({"end": datetime(2026, 3, 1, 1, 0, tzinfo=TIJUANA)}, "end after it starts"),
        ({"end": datetime(2026, 3, 20, tzinfo=TIJUANA)}, "longer than 7 days"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"start": datetime(2026, 3, 1, 2, 0)}, "naive"),
        ({"services": ()}, "services"),
    ],
)
def test_bad_windows_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(MaintenanceError, match=message):
        window(**kw)


def test_minutely_rule_is_bounded() -> None:
    w = window(end=datetime(2026, 3, 1, 2, 0, 30, tzinfo=TIJUANA), rrule="FREQ=MINUTELY")
    with pytest.raises(MaintenanceError, match="more than"):
        occurrences(w, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Carrier//Notices//EN\r
BEGIN:VTIMEZONE\r
TZID:America/Mexico_City\r
BEGIN:STANDARD\r
DTSTART:19700101T000000\r
TZOFFSETFROM:-0600\r
TZOFFSETTO:-0600\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
UID:n-100@carrier.example\r
SEQUENCE:{seq}\r
DTSTAMP:20261001T000000Z\r
DTSTART;TZID=America/Mexico_City:20261004T020000\r
DURATION:PT2H\r
RRULE:FREQ=WEEKLY;COUNT=4\r
EXDATE;TZID=America/Mexico_City:20261011T020000\r
SUMMARY:Weekly core maintenance\r
STATUS:{status}\r
URL:https://carrier.example/notices/100\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_parse_ics() -> None:
    (event,) = parse_ics(ICS.format(seq=0, status="CONFIRMED").encode())
    assert event.uid == "n-100@carrier.example"
    assert event.tz == "America/Mexico_City"
    assert event.rrule == "FREQ=WEEKLY;COUNT=4"
    assert event.end - event.start == timedelta(hours=2)
    assert event.exdates == (datetime(2026, 10, 11, 2, tzinfo=ZoneInfo("America/Mexico_City")),)
    assert "https://carrier.example/notices/100" in event.notice_ref
    with pytest.raises(MaintenanceError, match="not an iCalendar"):
        parse_ics(b"hello")
    with pytest.raises(MaintenanceError, match="no VEVENT"):
        parse_ics(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n")


async def test_import_creates_updates_and_cancels(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    now = datetime(2026, 10, 1, tzinfo=UTC)
    try:
        first = await ctx.ledger.import_ics(
            parse_ics(ICS.format(seq=0, status="CONFIRMED").encode()),
            services=[SERVICE],
            origin="carrier",
            by=ACTOR,
            at=now,
        )
        again = await ctx.ledger.import_ics(
            parse_ics(ICS.format(seq=0, status="CONFIRMED").encode()),
            services=[SERVICE],
            origin="carrier",
            by=ACTOR,
            at=now,
        )
        newer = await ctx.ledger.import_ics(
            parse_ics(ICS.format(seq=1, status="CONFIRMED").replace("PT2H", "PT3H").encode()),
            services=[SERVICE],
            origin="carrier",
            by=ACTOR,
            at=now,
        )
        cancelled = await ctx.ledger.import_ics(
            parse_ics(ICS.format(seq=2, status="CANCELLED").encode()),
            services=[SERVICE],
            origin="carrier",
            by=ACTOR,
            at=now,
        )
        windows = [w for w in await ctx.ledger.windows() if w.ical_uid]
        audit = await ctx.ledger.audit_log(entity="maintenance", entity_id=windows[0].id)
    finally:
        await store.close()
    assert first.created == ("n-100@carrier.example",)
    assert again.unchanged == ("n-100@carrier.example",)
    assert newer.updated == ("n-100@carrier.example",)
    assert cancelled.cancelled == ("n-100@carrier.example",)
    (w,) = windows
    assert w.duration == timedelta(hours=3) and w.cancelled
    assert [a.action for a in audit] == [
        "maintenance.create",
        "maintenance.update",
        "maintenance.cancel",
    ]
    assert audit[1].detail["before"]["end"] != audit[1].detail["after"]["end"]
