"""The journal's events: what health concluded, as immutable values with a JSON form.

Every instant is an aware UTC datetime: a naive one is refused, an aware one in another
zone is converted, so the journal never holds a local time.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Final, TypeAlias


class TrunkState(StrEnum):
    """What the monitor believes about a trunk: DOWN wins over DEGRADED, which wins over UP."""

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"  # answers, but its test calls are below the agreed quality
    DOWN = "down"


# Outage.end_cause: the trunk was removed from the config while the outage was open.
END_REMOVED: Final = "removed"


class OutageKind(StrEnum):
    OUTAGE = "outage"  # total interruption: counts as unavailability
    DEGRADATION = "degradation"  # below the agreed quality: a fault, not unavailability


class EventDecodeError(ValueError):
    """A journal payload that is not a valid event; the message says which field and why."""


def as_utc(instant: datetime, what: str = "instant") -> datetime:
    """The same instant in UTC; a naive datetime is refused (its zone would be a guess)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what}: naive datetime {instant.isoformat()}; instants must be aware")
    if instant.tzinfo is UTC:
        return instant
    return instant.astimezone(UTC)


def _opt_utc(instant: datetime | None, what: str) -> datetime | None:
    return None if instant is None else as_utc(instant, what)


def new_outage_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True, frozen=True)
class Outage:
    """One interruption of a trunk; for reports it runs first_failure_at → restored_at."""

    id: str
    trunk: str
    kind: OutageKind
    first_failure_at: datetime  # sent time of the first failed probe of the streak
    confirmed_at: datetime  # when the down_after-th failure arrived
    first_outcome: str  # outcome of the first failed probe (a probes.result.Outcome value)
    detail: str | None = None  # that probe's short cause
    restored_at: datetime | None = None  # sent time of the first success of the recovery
    closed_at: datetime | None = None  # when the up_after-th success arrived
    # Why it ended when not by the trunk's recovery: "removed" (the trunk left the config
    # on a reload: monitoring stopped, the service was not seen to come back).
    end_cause: str | None = None

    def __post_init__(self) -> None:
        # frozen: normalising to UTC has to go through object.__setattr__
        object.__setattr__(self, "kind", OutageKind(self.kind))
        object.__setattr__(
            self, "first_failure_at", as_utc(self.first_failure_at, "first_failure_at")
        )
        object.__setattr__(self, "confirmed_at", as_utc(self.confirmed_at, "confirmed_at"))
        object.__setattr__(self, "restored_at", _opt_utc(self.restored_at, "restored_at"))
        object.__setattr__(self, "closed_at", _opt_utc(self.closed_at, "closed_at"))
        if (self.restored_at is None) != (self.closed_at is None):
            raise ValueError(f"outage {self.id}: restored_at and closed_at are set together")
        if self.confirmed_at < self.first_failure_at:
            raise ValueError(f"outage {self.id}: confirmed before its first failure")
        if self.restored_at is not None and self.restored_at < self.first_failure_at:
            raise ValueError(f"outage {self.id}: restored before its first failure")

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def closed(self, *, restored_at: datetime, closed_at: datetime) -> Outage:
        return replace(self, restored_at=restored_at, closed_at=closed_at)

    def removed(self, at: datetime) -> Outage:
        """Ended at `at` because its trunk left the config: known down until then only."""
        return replace(self, restored_at=at, closed_at=at, end_cause=END_REMOVED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trunk": self.trunk,
            "kind": self.kind.value,
            "first_failure_at": self.first_failure_at.isoformat(),
            "confirmed_at": self.confirmed_at.isoformat(),
            "first_outcome": str(self.first_outcome),
            "detail": self.detail,
            "restored_at": _opt_iso(self.restored_at),
            "closed_at": _opt_iso(self.closed_at),
            # Only when set: journal payloads (and their hashes) of restored outages stay as
            # they were before the field existed.
            **({"end_cause": self.end_cause} if self.end_cause is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Outage:
        d = _object(data, "outage")
        try:
            return cls(
                id=_str(d, "id"),
                trunk=_str(d, "trunk"),
                kind=OutageKind(_str(d, "kind")),
                first_failure_at=_instant(d, "first_failure_at"),
                confirmed_at=_instant(d, "confirmed_at"),
                first_outcome=_str(d, "first_outcome"),
                detail=_opt_str(d, "detail"),
                restored_at=_opt_instant(d, "restored_at"),
                closed_at=_opt_instant(d, "closed_at"),
                end_cause=_opt_str(d, "end_cause"),
            )
        except EventDecodeError:
            raise
        except ValueError as exc:
            raise EventDecodeError(f"outage: {exc}") from exc


@dataclass(slots=True, frozen=True)
class TrunkStateChanged:
    """A trunk's state moved (including to and from UNKNOWN)."""

    kind: ClassVar[str] = "trunk_state"
    trunk: str
    at: datetime
    old: TrunkState
    new: TrunkState
    cause: str  # the outcome that tipped it ("timeout", "ok"...) or why it became unknown

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc(self.at, "at"))
        object.__setattr__(self, "old", TrunkState(self.old))
        object.__setattr__(self, "new", TrunkState(self.new))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "trunk": self.trunk,
            "at": self.at.isoformat(),
            "old": self.old.value,
            "new": self.new.value,
            "cause": self.cause,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrunkStateChanged:
        return cls(
            trunk=_str(d, "trunk"),
            at=_instant(d, "at"),
            old=_state(d, "old"),
            new=_state(d, "new"),
            cause=_str(d, "cause"),
        )

    def to_json(self) -> str:
        return _dumps(self.to_dict())


@dataclass(slots=True, frozen=True)
class OutageOpened:
    """An outage was confirmed (down_after failures in a row): the trunk is DOWN."""

    kind: ClassVar[str] = "outage_opened"
    outage: Outage

    def __post_init__(self) -> None:
        if not self.outage.is_open:
            raise ValueError(f"outage_opened for outage {self.outage.id} that is already closed")

    @property
    def trunk(self) -> str:
        return self.outage.trunk

    @property
    def at(self) -> datetime:
        return self.outage.confirmed_at

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "outage": self.outage.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutageOpened:
        return cls(outage=Outage.from_dict(d.get("outage")))

    def to_json(self) -> str:
        return _dumps(self.to_dict())


@dataclass(slots=True, frozen=True)
class OutageClosed:
    """An outage ended (up_after successes in a row); carries the whole closed outage."""

    kind: ClassVar[str] = "outage_closed"
    outage: Outage

    def __post_init__(self) -> None:
        if self.outage.is_open:
            raise ValueError(f"outage_closed for outage {self.outage.id} without closed_at")

    @property
    def trunk(self) -> str:
        return self.outage.trunk

    @property
    def at(self) -> datetime:
        assert self.outage.closed_at is not None  # checked in __post_init__
        return self.outage.closed_at

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "outage": self.outage.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutageClosed:
        return cls(outage=Outage.from_dict(d.get("outage")))

    def to_json(self) -> str:
        return _dumps(self.to_dict())


@dataclass(slots=True, frozen=True)
class MonitorGap:
    """The monitor (this agent) was not watching from start to end: unknown, not up or down."""

    kind: ClassVar[str] = "monitor_gap"
    agent: str
    start: datetime
    end: datetime
    reason: str  # e.g. "monitor_not_running"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start, "start"))
        object.__setattr__(self, "end", as_utc(self.end, "end"))
        if self.end <= self.start:
            raise ValueError(
                f"monitor gap must end after it starts: {self.start.isoformat()} → "
                f"{self.end.isoformat()}"
            )

    @property
    def trunk(self) -> None:
        return None  # a gap is the monitor's, not any one trunk's

    @property
    def at(self) -> datetime:
        return self.end  # recorded when the monitor is back

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "agent": self.agent,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorGap:
        return cls(
            agent=_str(d, "agent"),
            start=_instant(d, "start"),
            end=_instant(d, "end"),
            reason=_str(d, "reason"),
        )

    def to_json(self) -> str:
        return _dumps(self.to_dict())


Event: TypeAlias = TrunkStateChanged | OutageOpened | OutageClosed | MonitorGap

EVENT_TYPES: dict[str, type[Event]] = {
    t.kind: t for t in (TrunkStateChanged, OutageOpened, OutageClosed, MonitorGap)
}


def event_from_dict(data: Any) -> Event:
    d = _object(data, "event")
    kind = d.get("kind")
    event_type = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if event_type is None:
        raise EventDecodeError(f"event: unknown kind {kind!r}; expected one of {list(EVENT_TYPES)}")
    try:
        return event_type.from_dict(d)
    except EventDecodeError:
        raise
    except ValueError as exc:  # a dataclass invariant (naive time, gap end before start...)
        raise EventDecodeError(f"{kind}: {exc}") from exc


def from_json(text: str | bytes) -> Event:
    """Decode a journal payload; anything malformed raises EventDecodeError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventDecodeError(f"event: not JSON ({exc})") from exc
    return event_from_dict(data)


def to_json(event: Event) -> str:
    return event.to_json()


# One encoder, built once: json.dumps with options builds a new one per call (~3 µs of
# the ~40 µs an event cost to journal at 100,000 first states).
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _opt_iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat()


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise EventDecodeError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _str(d: dict[str, Any], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise EventDecodeError(f"field {key!r}: expected a string, got {value!r}")
    return value


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    return None if d.get(key) is None else _str(d, key)


def _instant(d: dict[str, Any], key: str) -> datetime:
    text = _str(d, key)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError as exc:
        raise EventDecodeError(f"field {key!r}: not an ISO 8601 instant: {text!r}") from exc
    if instant.tzinfo is None:
        raise EventDecodeError(f"field {key!r}: instant without a UTC offset: {text!r}")
    return instant.astimezone(UTC)


def _opt_instant(d: dict[str, Any], key: str) -> datetime | None:
    return None if d.get(key) is None else _instant(d, key)


def _state(d: dict[str, Any], key: str) -> TrunkState:
    text = _str(d, key)
    try:
        return TrunkState(text)
    except ValueError as exc:
        raise EventDecodeError(f"field {key!r}: unknown trunk state {text!r}") from exc
