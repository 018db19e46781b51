"""Time as an argument: a clock with a monotonic and a wall reading, and a fake for tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    def monotonic_ns(self) -> int: ...
    def wall_ns(self) -> int: ...


class SystemClock:
    """perf_counter_ns for durations (the loop's cached clock runs early), time_ns for instants."""

    __slots__ = ()

    def monotonic_ns(self) -> int:
        return time.perf_counter_ns()

    def wall_ns(self) -> int:
        return time.time_ns()


@dataclass(slots=True)
class FakeClock:
    """A clock tests step by hand; both readings advance together."""

    mono: int = 1_000 * NS_PER_S
    wall: int = 1_790_000_000 * NS_PER_S

    def monotonic_ns(self) -> int:
        return self.mono

    def wall_ns(self) -> int:
        return self.wall

    def advance(self, seconds: float) -> None:
        step = round(seconds * NS_PER_S)
        self.mono += step
        self.wall += step


def utc_from_ns(wall_ns: int) -> datetime:
    """An aware UTC datetime (microsecond precision) from a wall-clock reading in ns."""
    return datetime.fromtimestamp(wall_ns / NS_PER_S, tz=UTC)


def ns_from_utc(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("naive datetime: instants must be timezone-aware UTC")
    return round(instant.timestamp() * 1_000_000) * 1_000
