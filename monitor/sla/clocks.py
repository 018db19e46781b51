"""The contract's own clocks (pure): how long the carrier took to acknowledge a ticket
(`response_max`) and to restore service (`repair_max`), both from the ticket's opening."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["ClockLimits", "ClockVerdict", "judge"]


@dataclass(frozen=True, slots=True)
class ClockLimits:
    response_max: timedelta | None = None
    repair_max: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ClockVerdict:
    """Elapsed time on each clock (to its end, or to now while it runs) and whether the limit
    was met: True, False (breached — overdue while still running), None (no ticket, no
    limit, or still running within it)."""

    response: timedelta | None = None
    response_met: bool | None = None
    response_running: bool = False
    repair: timedelta | None = None
    repair_met: bool | None = None
    repair_running: bool = False

    @property
    def response_overdue(self) -> bool:
        return self.response_running and self.response_met is False

    @property
    def repair_overdue(self) -> bool:
        return self.repair_running and self.repair_met is False


def _clock(
    start: datetime, end: datetime | None, limit: timedelta | None, now: datetime
) -> tuple[timedelta, bool | None, bool]:
    running = end is None
    elapsed = max(timedelta(0), (now if end is None else end) - start)
    if limit is None:
        return elapsed, None, running
    if elapsed > limit:
        return elapsed, False, running
    return elapsed, (None if running else True), running


def judge(
    ticket_opened_at: datetime | None,
    acknowledged_at: datetime | None,
    restored_at: datetime | None,
    limits: ClockLimits,
    now: datetime,
) -> ClockVerdict:
    """Both clocks of one outage as of `now`; no ticket opened, no clock."""
    if ticket_opened_at is None:
        return ClockVerdict()
    response = _clock(ticket_opened_at, acknowledged_at, limits.response_max, now)
    repair = _clock(ticket_opened_at, restored_at, limits.repair_max, now)
    return ClockVerdict(*response, *repair)
