"""Server location over real DNS: dnspython's async stub resolver drives the RFC 3263 planner.

No cache here: each call asks afresh, and the returned expiry says when to ask again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.rdtypes.IN.SRV
import dns.resolver

from probes.dns.records import AddressRecord, Answer, NaptrRecord, Query, Record, SrvRecord
from probes.dns.rfc3263 import Destination, DnsFailure, Failure, Planner, Target
from probes.dns.settings import ResolverSettings
from probes.dns.srv_order import RandInt


@dataclass(slots=True, frozen=True)
class ResolvedTargets:
    """Targets in the order to try them; `expires_at` (on the injected clock) = now + TTL."""

    targets: tuple[Target, ...]
    ttl: int | None
    expires_at: float | None  # None: numeric host, never expires


def _name_text(name: dns.name.Name) -> str:
    # The root name (SRV target ".") reads as "": "service not offered" to the planner.
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")


def _records(answer: dns.resolver.Answer) -> tuple[Record, ...]:
    if answer.rrset is None:
        return ()
    # The smallest TTL of the chain: a CNAME on the way can expire before the final RRset.
    ttl = answer.chaining_result.minimum_ttl
    out: list[Record] = []
    for rdata in answer.rrset:
        if isinstance(rdata, dns.rdtypes.IN.NAPTR.NAPTR):
            out.append(
                NaptrRecord(
                    rdata.order,
                    rdata.preference,
                    _text(rdata.flags),
                    _text(rdata.service),
                    _text(rdata.regexp),
                    _name_text(rdata.replacement),
                    ttl,
                )
            )
        elif isinstance(rdata, dns.rdtypes.IN.SRV.SRV):
            out.append(
                SrvRecord(rdata.priority, rdata.weight, rdata.port, _name_text(rdata.target), ttl)
            )
        elif isinstance(rdata, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA):
            out.append(AddressRecord(rdata.address, ttl))
    return tuple(out)


def _negative_ttl(response: object) -> int | None:
    """How long an empty answer holds: the SOA minimum, or dnspython's default without one."""
    if not isinstance(response, dns.message.QueryMessage):
        return None
    try:
        ttl: int = response.resolve_chaining().minimum_ttl
    except dns.exception.DNSException:
        return None
    return ttl


def _nxdomain_response(exc: dns.resolver.NXDOMAIN) -> object:
    responses: dict[dns.name.Name, object] = exc.responses()  # type: ignore[no-untyped-call]
    return next(iter(responses.values()), None)


@dataclass
class SipResolver:
    """Resolves SIP destinations against one configured DNS server (or the system's).

    ValueError at construction when no server is given and resolv.conf names none.
    """

    settings: ResolverSettings = field(default_factory=ResolverSettings)
    randint: RandInt = random.randint
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        configure = self.settings.nameserver is None
        try:
            self._resolver = dns.asyncresolver.Resolver(configure=configure)
        except dns.resolver.NoResolverConfiguration:
            raise ValueError("no nameserver given and no usable /etc/resolv.conf") from None
        if self.settings.nameserver is not None:
            self._resolver.nameservers = [self.settings.nameserver]
            self._resolver.port = self.settings.port
        self._resolver.timeout = self.settings.timeout
        self._resolver.lifetime = self.settings.timeout
        self._resolver.cache = None  # the planner's TTL is the caller's cache

    async def resolve(self, destination: Destination | str) -> ResolvedTargets:
        """Every target of `destination` (a URI or Destination); DnsFailure when there is none."""
        if isinstance(destination, str):
            destination = Destination.from_uri(destination)
        planner = Planner(destination, randint=self.randint, families=self.settings.families)
        while not planner.done:
            queries = planner.queries()
            answers = await asyncio.gather(*(self.ask(q) for q in queries))
            for answer in answers:
                if planner.done:
                    break  # an earlier answer in this batch already ended it
                planner.feed(answer)
        result = planner.result()
        if isinstance(result, Failure):
            raise DnsFailure(result.kind, result.detail)
        expires_at = None if result.ttl is None else self.clock() + result.ttl
        return ResolvedTargets(result.targets, result.ttl, expires_at)

    async def ask(self, query: Query) -> Answer:
        """One DNS query, its outcome as a value (errors included)."""
        try:
            answer = await self._resolver.resolve(
                dns.name.from_text(query.name),
                query.rtype,
                raise_on_no_answer=False,
                search=False,
            )
        except dns.resolver.NXDOMAIN as exc:
            return Answer(
                query, rcode="nxdomain", negative_ttl=_negative_ttl(_nxdomain_response(exc))
            )
        except dns.resolver.NoNameservers as exc:
            # dnspython folds SERVFAIL and REFUSED (and the like) into this; the text says which.
            if "REFUSED" in str(exc):
                return Answer(query, rcode="refused", detail=str(exc))
            return Answer(query, rcode="servfail", detail=str(exc))
        except dns.exception.Timeout:
            return Answer(query, rcode="timeout", detail=f"no answer in {self.settings.timeout} s")
        except dns.exception.DNSException as exc:
            # YXDOMAIN, a malformed reply and the like: the server is not serving this name.
            return Answer(query, rcode="servfail", detail=f"{type(exc).__name__}: {exc}")
        records = _records(answer)
        negative = _negative_ttl(answer.response) if not records else None
        return Answer(query, records, negative_ttl=negative)


async def resolve_targets(
    destination: Destination | str,
    settings: ResolverSettings | None = None,
    *,
    randint: RandInt = random.randint,
) -> ResolvedTargets:
    """One-shot resolution with a resolver of its own."""
    resolver = SipResolver(settings or ResolverSettings(), randint=randint)
    return await resolver.resolve(destination)
