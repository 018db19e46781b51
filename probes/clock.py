"""Time as an argument: a clock with a monotonic and a wall reading, and a fake for tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from probes.instants import NS_PER_S, utc_from_ns


class Clock(Protocol):
    """``monotonic_ns`` for durations and deadlines, ``wall_ns`` for instants (UTC)."""

    def monotonic_ns(self) -> int: ...
    def wall_ns(self) -> int: ...


class SystemClock:
    """perf_counter_ns for durations (the loop's cached clock runs early), time_ns for instants.

    The readings are the C functions themselves, so a bound `clock.monotonic_ns` costs what
    `time.perf_counter_ns` does (no Python frame per call on the hot path).
    """

    __slots__ = ()

    monotonic_ns = staticmethod(time.perf_counter_ns)
    wall_ns = staticmethod(time.time_ns)


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


# The one system clock: hot-path code binds its methods once (no cost per call).
SYSTEM_CLOCK: Final = SystemClock()


def utc_now(clock: Clock) -> datetime:
    """The clock's wall reading as an aware UTC datetime."""
    return utc_from_ns(clock.wall_ns())
