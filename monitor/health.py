"""The health state machine: probe results in, state changes and outage events out; no I/O.

Rules (DESIGN §4):
- A trunk starts UNKNOWN. ``down_after`` failures in a row make it DOWN and open an outage
  (first_failure_at = sent time of the streak's first failure, confirmed_at = now).
- While DOWN, ``up_after`` successes in a row make it UP and close that outage
  (restored_at = sent time of the streak's first success, closed_at = now). A failure
  inside the recovering streak resets it and keeps the SAME outage open: a flapping trunk
  gets one outage, not many.
- From UNKNOWN the first success makes it UP: there is no outage to close, so nothing
  needs the extra confirmation ``up_after`` buys, and an answer proves the trunk answers.
- Results whose outcome is the monitor's own fault (NOT_THE_TRUNKS_FAULT) change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.events import (
    Event,
    MonitorGap,
    Outage,
    OutageClosed,
    OutageKind,
    OutageOpened,
    TrunkState,
    TrunkStateChanged,
    new_outage_id,
)
from probes.clock import utc_from_ns
from probes.result import NOT_THE_TRUNKS_FAULT, Outcome, ProbeResult

__all__ = [
    "NO_EVENTS",
    "HealthPolicy",
    "ReplayError",
    "TrunkHealth",
    "TrunkState",
    "mark_unknown",
    "reduce",
    "replay",
]

# Returned when nothing changed (the common case): shared, immutable, no allocation.
NO_EVENTS: tuple[Event, ...] = ()


class ReplayError(ValueError):
    """The journal contradicts itself (a close without its open, two open outages...)."""


@dataclass(slots=True)
class HealthPolicy:
    down_after: int = 3  # failures in a row that confirm an outage
    up_after: int = 2  # successes in a row that close it

    def __post_init__(self) -> None:
        if self.down_after < 1 or self.up_after < 1:
            raise ValueError(
                f"health policy needs down_after >= 1 and up_after >= 1, got "
                f"down_after={self.down_after}, up_after={self.up_after}"
            )


@dataclass(slots=True)
class TrunkHealth:
    """One trunk's state; ``reduce`` mutates it in place (one per trunk, on the hot path)."""

    trunk: str
    state: TrunkState = TrunkState.UNKNOWN
    fail_streak: int = 0
    ok_streak: int = 0
    # Sent time of the first result of whichever streak is running (only one is non-zero).
    streak_started_at: datetime | None = None
    # First failure's outcome and cause, kept until the outage they start is confirmed.
    streak_outcome: str | None = None
    streak_detail: str | None = None
    open_outage: Outage | None = None
    last_outcome: Outcome | None = None


def reduce(
    health: TrunkHealth,
    result: ProbeResult,
    now: datetime,
    policy: HealthPolicy,
    *,
    new_id: Callable[[], str] = new_outage_id,
) -> tuple[Event, ...]:
    """Fold one probe result into ``health`` (mutated in place); return what changed.

    ``now`` is when the result arrived (aware UTC); ``new_id`` names a new outage (uuid4
    by default; tests pass a counter to make runs repeatable).
    """
    if result.trunk != health.trunk:
        raise ValueError(f"result for trunk {result.trunk!r} fed to health of {health.trunk!r}")
    outcome = result.outcome
    if outcome in NOT_THE_TRUNKS_FAULT:
        return NO_EVENTS
    health.last_outcome = outcome
    if outcome is Outcome.OK:
        health.fail_streak = 0
        if health.ok_streak == 0:
            health.streak_started_at = utc_from_ns(result.sent_wall_ns)
        health.ok_streak += 1
        state = health.state
        if state is TrunkState.UNKNOWN:
            health.state = TrunkState.UP
            return (TrunkStateChanged(health.trunk, now, state, TrunkState.UP, outcome.value),)
        if state is TrunkState.DOWN and health.ok_streak >= policy.up_after:
            return _close(health, now, outcome)
        return NO_EVENTS

    health.ok_streak = 0  # a failure inside a recovery resets it; the outage stays open
    if health.fail_streak == 0:
        health.streak_started_at = utc_from_ns(result.sent_wall_ns)
        health.streak_outcome = outcome.value
        health.streak_detail = result.detail
    health.fail_streak += 1
    if health.state is not TrunkState.DOWN and health.fail_streak >= policy.down_after:
        return _open(health, now, new_id)
    return NO_EVENTS


def _open(health: TrunkHealth, now: datetime, new_id: Callable[[], str]) -> tuple[Event, ...]:
    assert health.streak_started_at is not None and health.streak_outcome is not None
    first_failure_at = health.streak_started_at
    outage = Outage(
        id=new_id(),
        trunk=health.trunk,
        kind=OutageKind.OUTAGE,
        first_failure_at=first_failure_at,
        # The wall clock can step back (NTP) between a send and a later arrival; an outage
        # must still open, so its instants are kept in order rather than refused.
        confirmed_at=max(now, first_failure_at),
        first_outcome=health.streak_outcome,
        detail=health.streak_detail,
    )
    previous = health.state
    health.state = TrunkState.DOWN
    health.open_outage = outage
    changed = TrunkStateChanged(health.trunk, now, previous, TrunkState.DOWN, health.streak_outcome)
    return (changed, OutageOpened(outage))


def _close(health: TrunkHealth, now: datetime, outcome: Outcome) -> tuple[Event, ...]:
    assert health.streak_started_at is not None
    events: tuple[Event, ...] = (
        TrunkStateChanged(health.trunk, now, TrunkState.DOWN, TrunkState.UP, outcome.value),
    )
    if health.open_outage is not None:  # DOWN always has one; replay guarantees it too
        outage = health.open_outage
        restored_at = max(health.streak_started_at, outage.first_failure_at)  # clock steps
        closed = outage.closed(restored_at=restored_at, closed_at=max(now, restored_at))
        events += (OutageClosed(closed),)
    health.state = TrunkState.UP
    health.open_outage = None
    return events


def mark_unknown(
    healths: Mapping[str, TrunkHealth], now: datetime, cause: str
) -> list[TrunkStateChanged]:
    """The monitor did not watch for a while: every trunk without an open outage is UNKNOWN.

    A trunk with an open outage stays DOWN so the same outage (and its ticket) continues;
    all streaks restart, since results from before the gap say nothing about now.
    """
    events: list[TrunkStateChanged] = []
    for health in healths.values():
        health.fail_streak = health.ok_streak = 0
        health.streak_started_at = health.streak_outcome = health.streak_detail = None
        if health.state is TrunkState.DOWN or health.state is TrunkState.UNKNOWN:
            continue
        events.append(TrunkStateChanged(health.trunk, now, health.state, TrunkState.UNKNOWN, cause))
        health.state = TrunkState.UNKNOWN
    return events


def replay(events: Iterable[Event]) -> dict[str, TrunkHealth]:
    """Rebuild per-trunk state from the journal (in order); streaks start at 0.

    A trunk whose last outage is still open comes back DOWN with that same Outage (same id),
    so a restart mid-outage continues it instead of opening a second one.
    """
    healths: dict[str, TrunkHealth] = {}
    for event in events:
        if isinstance(event, MonitorGap):
            continue
        trunk = event.trunk
        health = healths.get(trunk)
        if health is None:
            health = healths[trunk] = TrunkHealth(trunk)
        if isinstance(event, TrunkStateChanged):
            health.state = event.new
        elif isinstance(event, OutageOpened):
            if health.open_outage is not None:
                raise ReplayError(
                    f"trunk {trunk!r}: outage {event.outage.id} opened while outage "
                    f"{health.open_outage.id} is still open"
                )
            health.open_outage = event.outage
        else:
            if health.open_outage is None or health.open_outage.id != event.outage.id:
                open_id = health.open_outage.id if health.open_outage else None
                raise ReplayError(
                    f"trunk {trunk!r}: outage {event.outage.id} closed but the open outage "
                    f"is {open_id}"
                )
            health.open_outage = None
    for health in healths.values():
        # The outage, not the last state line, decides: DOWN iff an outage is open.
        if health.open_outage is not None:
            health.state = TrunkState.DOWN
        elif health.state is TrunkState.DOWN:
            health.state = TrunkState.UNKNOWN
    return healths
