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

import collections
import functools
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
from probes.instants import utc_from_ns
from probes.result import NOT_THE_TRUNKS_FAULT, Outcome, ProbeResult

__all__ = [
    "NO_EVENTS",
    "HealthPolicy",
    "QualityPolicy",
    "QualityStreaks",
    "ReplayError",
    "TrunkHealth",
    "TrunkPolicies",
    "TrunkState",
    "mark_unknown",
    "reduce",
    "reduce_quality",
    "replay",
    "shared_policy",
]

# Returned when nothing changed (the common case): shared, immutable, no allocation.
NO_EVENTS: tuple[Event, ...] = ()


class ReplayError(ValueError):
    """The journal contradicts itself (a close without its open, two open outages...)."""


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    down_after: int = 3  # failures in a row that confirm an outage
    up_after: int = 2  # successes in a row that close it

    def __post_init__(self) -> None:
        if self.down_after < 1 or self.up_after < 1:
            raise ValueError(
                f"health policy needs down_after >= 1 and up_after >= 1, got "
                f"down_after={self.down_after}, up_after={self.up_after}"
            )


@functools.lru_cache(maxsize=1024)
def shared_policy(down_after: int, up_after: int) -> HealthPolicy:
    """One immutable policy per (down_after, up_after): 100,000 trunks share a few
    (one object each was ~7 MB)."""
    return HealthPolicy(down_after, up_after)


class TrunkPolicies(dict[str, HealthPolicy]):
    """Each trunk's policy by name, holding only those unlike `default` (most trunks take
    the same thresholds: a 100,000-entry dict of one shared policy was 3.8 MB)."""

    __slots__ = ("default",)

    def __init__(self, default: HealthPolicy) -> None:
        super().__init__()
        self.default = default

    @classmethod
    def of(cls, policies: Iterable[tuple[str, HealthPolicy]]) -> TrunkPolicies:
        """The trunks' policies, the most common one as the default."""
        pairs = list(policies)
        counts = collections.Counter(policy for _, policy in pairs)
        out = cls(counts.most_common(1)[0][0] if counts else HealthPolicy())
        for trunk, policy in pairs:
            out[trunk] = policy
        return out

    def __missing__(self, trunk: str) -> HealthPolicy:
        return self.default

    def __setitem__(self, trunk: str, policy: HealthPolicy) -> None:
        if policy == self.default:
            self.pop(trunk, None)
        else:
            super().__setitem__(trunk, policy)


@dataclass(slots=True)
class QualityStreaks:
    """A trunk's test calls in a row below its profile (`bad`) or within it (`good`)."""

    bad: int = 0
    good: int = 0
    started_at: datetime | None = None  # sent time of the running streak's first call
    cause: str | None = None  # the bad streak's first cause


@dataclass(slots=True)
class TrunkHealth:
    """One trunk's state; ``reduce`` mutates it in place (one per trunk, on the hot path)."""

    trunk: str
    state: TrunkState = TrunkState.UNKNOWN
    fail_streak: int = 0
    ok_streak: int = 0
    # Sent time of the running failure streak's first result, or of a recovery's first
    # success (while DOWN); None while an UP trunk answers.
    streak_started_at: datetime | None = None
    # First failure's outcome and cause, kept until the outage they start is confirmed.
    streak_outcome: str | None = None
    streak_detail: str | None = None
    open_outage: Outage | None = None
    last_outcome: Outcome | None = None
    # Quality (test calls against the trunk's threshold profile): its own streaks, made at
    # the first test call (most trunks have none: three slots a trunk less), and interval.
    quality: QualityStreaks | None = None
    open_degradation: Outage | None = None

    def settled_state(self) -> TrunkState:
        """The state the open intervals imply: DOWN over DEGRADED over UP."""
        if self.open_outage is not None:
            return TrunkState.DOWN
        if self.open_degradation is not None:
            return TrunkState.DEGRADED
        return TrunkState.UP


@dataclass(slots=True)
class QualityPolicy:
    degrade_after: int = 2  # test calls below the profile in a row that open a degradation
    recover_after: int = 2  # good test calls in a row that close it

    def __post_init__(self) -> None:
        if self.degrade_after < 1 or self.recover_after < 1:
            raise ValueError(
                f"quality policy needs degrade_after >= 1 and recover_after >= 1, got "
                f"degrade_after={self.degrade_after}, recover_after={self.recover_after}"
            )


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
            # Only a recovery's first success is ever read (restored_at): an UP trunk holds
            # no instant and no cause (a datetime each was ~6 MB at 100,000 trunks).
            health.streak_outcome = health.streak_detail = None
            health.streak_started_at = (
                utc_from_ns(result.sent_wall_ns) if health.state is TrunkState.DOWN else None
            )
        health.ok_streak += 1
        state = health.state
        if state is TrunkState.UNKNOWN:
            health.state = health.settled_state()
            return (TrunkStateChanged(health.trunk, now, state, health.state, outcome.value),)
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
    recovered_at, health.streak_started_at = health.streak_started_at, None  # read once
    outage = health.open_outage
    health.open_outage = None
    health.state = health.settled_state()  # UP, or DEGRADED if a degradation is still open
    events: tuple[Event, ...] = (
        TrunkStateChanged(health.trunk, now, TrunkState.DOWN, health.state, outcome.value),
    )
    if outage is not None:  # DOWN always has one; replay guarantees it too
        restored_at = max(recovered_at, outage.first_failure_at)  # clock steps
        closed = outage.closed(restored_at=restored_at, closed_at=max(now, restored_at))
        events += (OutageClosed(closed),)
    return events


def reduce_quality(
    health: TrunkHealth,
    verdict: str | None,
    sent_at: datetime,
    now: datetime,
    policy: QualityPolicy,
    *,
    new_id: Callable[[], str] = new_outage_id,
) -> tuple[Event, ...]:
    """Fold one test call's quality verdict into ``health``: None = within the profile,
    otherwise a short cause (e.g. "jitter_15s>0.03"). Degradations never count as downtime.

    A degradation opens after ``degrade_after`` bad calls in a row (from the first of them)
    and closes after ``recover_after`` good ones (at the first of them); while the trunk is
    DOWN its state stays DOWN, and the degradation shows once the outage closes.
    """
    streaks = health.quality
    if streaks is None:
        streaks = health.quality = QualityStreaks()
    if verdict is not None:
        streaks.good = 0
        if streaks.bad == 0:
            streaks.started_at = sent_at
            streaks.cause = verdict
        streaks.bad += 1
        if health.open_degradation is None and streaks.bad >= policy.degrade_after:
            assert streaks.started_at is not None
            started = streaks.started_at
            degradation = Outage(
                id=new_id(),
                trunk=health.trunk,
                kind=OutageKind.DEGRADATION,
                first_failure_at=started,
                confirmed_at=max(now, started),
                first_outcome=streaks.cause or verdict,
            )
            health.open_degradation = degradation
            return (OutageOpened(degradation), *_settle(health, now, verdict))
        return NO_EVENTS
    streaks.bad = 0
    if streaks.good == 0:
        streaks.started_at = sent_at
    streaks.good += 1
    current = health.open_degradation
    if current is not None and streaks.good >= policy.recover_after:
        assert streaks.started_at is not None
        restored_at = max(streaks.started_at, current.first_failure_at)
        health.open_degradation = None
        closed = current.closed(restored_at=restored_at, closed_at=max(now, restored_at))
        return (OutageClosed(closed), *_settle(health, now, "quality_ok"))
    return NO_EVENTS


def _settle(health: TrunkHealth, now: datetime, cause: str) -> tuple[Event, ...]:
    """A state change event if the open intervals now imply another (known) state."""
    if health.state is TrunkState.UNKNOWN:
        return NO_EVENTS  # availability probes decide when the trunk is known again
    new = health.settled_state()
    if new is health.state:
        return NO_EVENTS
    old, health.state = health.state, new
    return (TrunkStateChanged(health.trunk, now, old, new, cause),)


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
        if health.state in (TrunkState.DOWN, TrunkState.DEGRADED, TrunkState.UNKNOWN):
            continue  # an open outage or degradation continues across the gap
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
        elif isinstance(event, OutageOpened) and event.outage.kind is OutageKind.DEGRADATION:
            health.open_degradation = event.outage
        elif isinstance(event, OutageClosed) and event.outage.kind is OutageKind.DEGRADATION:
            health.open_degradation = None
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
        # The open intervals, not the last state line, decide: DOWN iff an outage is open,
        # DEGRADED iff (only) a degradation is.
        if health.open_outage is not None or health.open_degradation is not None:
            health.state = health.settled_state()
        elif health.state in (TrunkState.DOWN, TrunkState.DEGRADED):
            health.state = TrunkState.UNKNOWN
    return healths
