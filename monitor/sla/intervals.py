"""Half-open UTC time intervals and the set algebra the SLA needs: union, intersection, difference.

Every function takes any iterable of intervals and returns an ``IntervalSet``: a tuple sorted by
start, disjoint and with touching intervals merged, so equal sets compare equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class SlaInputError(ValueError):
    """Input the SLA arithmetic cannot use (naive instant, empty interval, bad contract term...)."""


ONE_MICROSECOND = timedelta(microseconds=1)  # datetime's resolution, the unit of all durations


def utc_instant(value: datetime, name: str = "instant") -> datetime:
    """The same instant as an aware UTC datetime; naive input is refused, never guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise SlaInputError(f"{name} {value.isoformat()} is naive: instants must be timezone-aware")
    # Normalising matters: subtracting two datetimes that share one non-UTC tzinfo ignores DST.
    return value.astimezone(UTC)


def microseconds(duration: timedelta) -> int:
    """A duration as an exact integer count of microseconds."""
    return duration // ONE_MICROSECOND


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """[start, end): start included, end excluded; both stored as aware UTC datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = utc_instant(self.start, "interval start")
        end = utc_instant(self.end, "interval end")
        if end <= start:
            raise SlaInputError(
                f"interval must end after it starts: {start.isoformat()} → {end.isoformat()}"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


IntervalSet = tuple[Interval, ...]


def span(start: datetime, end: datetime) -> IntervalSet:
    """The interval [start, end) as a set: empty when end is not after start."""
    if utc_instant(end, "end") <= utc_instant(start, "start"):
        return ()
    return (Interval(start, end),)


def union(*groups: Iterable[Interval]) -> IntervalSet:
    """Every instant covered by any interval of any group, each instant once."""
    ordered = sorted(interval for group in groups for interval in group)
    merged: list[Interval] = []
    for interval in ordered:
        if merged and interval.start <= merged[-1].end:
            last = merged[-1]
            if interval.end > last.end:
                merged[-1] = Interval(last.start, interval.end)
        else:
            merged.append(interval)
    return tuple(merged)


def intersection(a: Iterable[Interval], b: Iterable[Interval]) -> IntervalSet:
    """Instants covered by both a and b."""
    left, right = union(a), union(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i].start, right[j].start)
        end = min(left[i].end, right[j].end)
        if start < end:
            out.append(Interval(start, end))
        if left[i].end <= right[j].end:
            i += 1
        else:
            j += 1
    return tuple(out)


def intersection_all(groups: Sequence[Iterable[Interval]]) -> IntervalSet:
    """Instants covered by every group; needs at least one group (no groups is ambiguous)."""
    if not groups:
        raise SlaInputError("intersection of no groups is undefined")
    result = union(groups[0])
    for group in groups[1:]:
        result = intersection(result, group)
    return result


def difference(a: Iterable[Interval], b: Iterable[Interval]) -> IntervalSet:
    """Instants covered by a and not by b."""
    remove = union(b)
    out: list[Interval] = []
    j = 0
    for interval in union(a):
        cursor = interval.start
        # Skip removals that end before this interval; they cannot touch later ones either.
        while j < len(remove) and remove[j].end <= cursor:
            j += 1
        k = j
        while k < len(remove) and remove[k].start < interval.end:
            if remove[k].start > cursor:
                out.append(Interval(cursor, remove[k].start))
            cursor = max(cursor, remove[k].end)
            k += 1
        if cursor < interval.end:
            out.append(Interval(cursor, interval.end))
    return tuple(out)


def split_at(a: Iterable[Interval], instant: datetime) -> tuple[IntervalSet, IntervalSet]:
    """The part of a before instant and the part from instant on."""
    at = utc_instant(instant, "split instant")
    before: list[Interval] = []
    after: list[Interval] = []
    for interval in union(a):
        if interval.end <= at:
            before.append(interval)
        elif interval.start >= at:
            after.append(interval)
        else:
            before.append(Interval(interval.start, at))
            after.append(Interval(at, interval.end))
    return tuple(before), tuple(after)


def measure(a: Iterable[Interval]) -> timedelta:
    """Total time covered, overlaps counted once."""
    return sum((interval.duration for interval in union(a)), timedelta(0))
