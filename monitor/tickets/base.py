"""The ticket sink protocol and the values that cross it: requests in, typed results out.

A sink never raises for a failure of the far end: it returns ``RetryLater`` (network
errors, timeouts, 408, 429, 5xx) or ``Rejected`` (any other refusal, which retrying will
not fix). Exceptions mean bugs; the outbox catches, counts and retries them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeAlias

from monitor.events import Outage, OutageKind, as_utc

# A ticket's tag in subjects and searches: "TW-" and this many base32 characters of a
# hash of the ticket key (50 bits: no collision among a lifetime of outages), letters and
# digits only, so it survives every sink's query language without quoting.
REF_PREFIX = "TW-"
REF_LENGTH = 10
# Standard Webhooks ids are opaque strings; 40 hex digits of SHA-256 are unique enough.
IDEMPOTENCY_HEX = 40


class Action(StrEnum):
    OPEN = "open"
    UPDATE = "update"  # a note on the ticket (a grouped ticket's member restored)
    RESOLVE = "resolve"  # the restoration note, then resolve where the sink can


class Severity(StrEnum):
    CRITICAL = "critical"  # a total interruption (counts as unavailability)
    WARNING = "warning"  # a degradation: a fault at a lower priority


def severity_of(kind: OutageKind) -> Severity:
    return Severity.CRITICAL if kind is OutageKind.OUTAGE else Severity.WARNING


def ticket_ref(key: str) -> str:
    """The tag ("TW-ABCDE23456") that marks the ticket of ``key`` in the sink's system."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return REF_PREFIX + base64.b32encode(digest).decode("ascii")[:REF_LENGTH]


def idempotency_key(key: str, sink: str, action: Action, discriminator: str = "") -> str:
    """Deterministic id of one request: the same outage, sink and action give the same id."""
    text = "\x1f".join((key, sink, action.value, discriminator))
    return "tw_" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:IDEMPOTENCY_HEX]


@dataclass(slots=True, frozen=True)
class TicketContext:
    """What a ticket is about: one outage, or a carrier's outages grouped into one ticket."""

    key: str  # the outage id, or the group key of a grouped ticket
    carrier: str
    outages: tuple[Outage, ...]
    grouped: bool = False
    member: str | None = None  # for an update: the outage whose restoration it reports

    def __post_init__(self) -> None:
        if not self.outages:
            raise ValueError(f"ticket {self.key}: a ticket covers at least one outage")

    @property
    def ref(self) -> str:
        return ticket_ref(self.key)

    @property
    def kind(self) -> OutageKind:
        # A group mixing kinds is an outage: the worst member decides.
        kinds = {o.kind for o in self.outages}
        return OutageKind.OUTAGE if OutageKind.OUTAGE in kinds else OutageKind.DEGRADATION

    @property
    def severity(self) -> Severity:
        return severity_of(self.kind)

    @property
    def trunks(self) -> tuple[str, ...]:
        return tuple(o.trunk for o in self.outages)

    @property
    def first_failure_at(self) -> datetime:
        return min(o.first_failure_at for o in self.outages)

    @property
    def confirmed_at(self) -> datetime:
        return min(o.confirmed_at for o in self.outages)

    @property
    def restored_at(self) -> datetime | None:
        """When the last member came back; None while any is still down."""
        restored = [o.restored_at for o in self.outages]
        if any(r is None for r in restored):
            return None
        return max(r for r in restored if r is not None)

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "carrier": self.carrier,
                "grouped": self.grouped,
                "member": self.member,
                "outages": [o.to_dict() for o in self.outages],
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> TicketContext:
        data = json.loads(text)
        return cls(
            key=str(data["key"]),
            carrier=str(data.get("carrier") or ""),
            outages=tuple(Outage.from_dict(o) for o in data["outages"]),
            grouped=bool(data.get("grouped", False)),
            member=data.get("member"),
        )


@dataclass(slots=True, frozen=True)
class TicketRef:
    """A ticket as the sink knows it; ``data`` keeps sink-specific state (e-mail ids)."""

    external_id: str
    number: str | None = None  # the number people quote (RT id, INC0010001, carrier's #)
    url: str | None = None
    sink_created_at: datetime | None = None  # the sink's own creation stamp, if it gives one
    data: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sink_created_at is not None:
            object.__setattr__(
                self, "sink_created_at", as_utc(self.sink_created_at, "sink_created_at")
            )


@dataclass(slots=True, frozen=True)
class TicketRequest:
    """One delivery: rendered texts plus everything a sink needs to do it idempotently."""

    action: Action
    sink: str
    context: TicketContext
    idempotency_key: str
    subject: str
    body: str
    fields: Mapping[str, Any] = field(default_factory=dict)  # rendered per-sink extras
    ticket: TicketRef | None = None  # the ticket to update/resolve (None for open)
    attempt: int = 1

    @property
    def key(self) -> str:
        return self.context.key

    @property
    def ref(self) -> str:
        return self.context.ref

    @property
    def severity(self) -> Severity:
        return self.context.severity


@dataclass(slots=True, frozen=True)
class Delivered:
    ref: TicketRef | None = None  # the ticket, for open and find_existing


@dataclass(slots=True, frozen=True)
class NotFound:
    """find_existing: the sink holds no ticket for this key."""


@dataclass(slots=True, frozen=True)
class RetryLater:
    reason: str
    retry_after_s: float | None = None  # the sink's own Retry-After, honoured as a minimum


@dataclass(slots=True, frozen=True)
class Rejected:
    """The sink refused in a way retrying will not fix (bad credentials, bad request)."""

    reason: str


SinkResult: TypeAlias = Delivered | RetryLater | Rejected
FindResult: TypeAlias = Delivered | NotFound | RetryLater | Rejected


class TicketSink(Protocol):
    """One ticket system. ``open`` creates, ``update`` adds a note, ``resolve`` adds the
    restoration note and resolves (where the system can)."""

    name: str

    async def open(self, request: TicketRequest) -> SinkResult: ...

    async def find_existing(self, request: TicketRequest) -> FindResult:
        """The ticket an earlier attempt may have created (its reply was lost)."""
        ...

    async def update(self, request: TicketRequest) -> SinkResult: ...

    async def resolve(self, request: TicketRequest) -> SinkResult: ...

    async def close(self) -> None: ...
