"""Instants and durations as integers of nanoseconds, and their UTC datetimes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

NS_PER_S: Final = 1_000_000_000


def utc_from_ns(wall_ns: int) -> datetime:
    """An aware UTC datetime (microsecond precision) from a wall-clock reading in ns."""
    return datetime.fromtimestamp(wall_ns / NS_PER_S, tz=UTC)


def ns_from_utc(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("naive datetime: instants must be timezone-aware UTC")
    return round(instant.timestamp() * 1_000_000) * 1_000
