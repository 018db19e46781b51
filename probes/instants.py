"""Instants and durations as integers of nanoseconds, and their UTC datetimes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

NS_PER_S: Final = 1_000_000_000


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def us_from_ns(wall_ns: int) -> int:
    """A reading in ns to the nearest microsecond (half up): what a datetime keeps of it."""
    return (wall_ns + 500) // 1000


def utc_from_ns(wall_ns: int) -> datetime:
    """An aware UTC datetime from a wall-clock reading in ns, to the nearest microsecond.

    Integer arithmetic, not a float of seconds (~0.24 µs apart today): the transition
    rings keep microseconds and give back the same datetime."""
    return _EPOCH + timedelta(microseconds=us_from_ns(wall_ns))


def ns_from_utc(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("naive datetime: instants must be timezone-aware UTC")
    return round(instant.timestamp() * 1_000_000) * 1_000
