"""DNS questions and answers as plain values: what the RFC 3263 planner asks and is fed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RecordType = Literal["NAPTR", "SRV", "A", "AAAA"]
# How a query ended: "noerror" may still carry no records (NODATA).
Rcode = Literal["noerror", "nxdomain", "servfail", "refused", "timeout"]


@dataclass(slots=True, frozen=True)
class Query:
    """One question: a name (lower case, no trailing dot) and a record type."""

    name: str
    rtype: RecordType


@dataclass(slots=True, frozen=True)
class NaptrRecord:
    """RFC 3403 NAPTR; `replacement` without the trailing dot."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str
    ttl: int


@dataclass(slots=True, frozen=True)
class SrvRecord:
    """RFC 2782 SRV; a `target` of "" (the root, ".") means the service is not offered."""

    priority: int
    weight: int
    port: int
    target: str
    ttl: int


@dataclass(slots=True, frozen=True)
class AddressRecord:
    """One A or AAAA record: the address as text."""

    address: str
    ttl: int


Record = NaptrRecord | SrvRecord | AddressRecord


@dataclass(slots=True, frozen=True)
class Answer:
    """The answer to `query`; `negative_ttl` is the SOA minimum of an empty answer, if given."""

    query: Query
    records: tuple[Record, ...] = ()
    rcode: Rcode = "noerror"
    negative_ttl: int | None = None
    detail: str = ""


def normalize_name(name: str) -> str:
    """Lower case, without the trailing dot: the form queries and records compare in."""
    return name.rstrip(".").lower()
