"""RFC 3263 §4 server location, sans-I/O: the planner names the DNS queries it needs next, is
fed their answers, and ends with ordered targets and their TTL, or a typed failure."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from probes.dns.records import (
    AddressRecord,
    Answer,
    NaptrRecord,
    Query,
    RecordType,
    SrvRecord,
    normalize_name,
)
from probes.dns.srv_order import RandInt, weighted_order
from probes.sip.errors import SipParseError
from probes.sip.uri import SipUri

Scheme = Literal["sip", "sips"]
Transport = Literal["udp", "tcp", "tls"]
Family = Literal["ipv4", "ipv6"]
FailureKind = Literal["nxdomain", "servfail", "timeout", "no_records"]

# The NAPTR services this client supports (RFC 3263 §4.1), and what each means.
NAPTR_SERVICES: dict[str, Transport] = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIXES: dict[Transport, str] = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
DEFAULT_PORTS: dict[Transport, int] = {"udp": 5060, "tcp": 5060, "tls": 5061}
FAMILY_RTYPES: dict[Family, RecordType] = {"ipv4": "A", "ipv6": "AAAA"}
_TRANSPORTS: dict[str, Transport] = {"udp": "udp", "tcp": "tcp", "tls": "tls"}
DEFAULT_FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")
# The SRV lookups tried when there are no usable NAPTR records, in this client's preference.
_SRV_FALLBACK: dict[Scheme, tuple[Transport, ...]] = {
    "sip": ("udp", "tcp", "tls"),
    "sips": ("tls",),
}


@dataclass(slots=True, frozen=True)
class Destination:
    """What a SIP URI asks to reach: scheme, host (or maddr), port and transport if given."""

    scheme: Scheme
    host: str
    port: int | None = None
    transport: Transport | None = None

    @classmethod
    def from_uri(cls, text: str) -> Destination:
        """From a sip:/sips: URI; ValueError for a transport this client cannot use."""
        try:
            uri = SipUri.parse(text)
        except SipParseError as exc:
            raise ValueError(str(exc)) from None
        scheme: Scheme = "sips" if uri.scheme == "sips" else "sip"
        transport: Transport | None = None
        if uri.param("transport"):
            # SipUri.transport folds sips + tcp into "tls" (TLS over TCP).
            transport = _TRANSPORTS.get(uri.transport)
            if transport is None:
                raise ValueError(f"unsupported transport {uri.transport!r} in {text}")
        if scheme == "sips" and transport not in (None, "tls"):
            raise ValueError(f"a sips: URI needs TLS, not {transport} ({text})")
        host = uri.param("maddr") or uri.host  # RFC 3263 §4: maddr overrides the host
        return cls(scheme=scheme, host=host, port=uri.port, transport=transport)

    @property
    def default_transport(self) -> Transport:
        """The transport without NAPTR/SRV guidance (§4.1): UDP for sip:, TLS for sips:."""
        return self.transport or ("tls" if self.scheme == "sips" else "udp")


@dataclass(slots=True, frozen=True)
class Target:
    """One place to send requests; `ttl` is the smallest TTL on its NAPTR/SRV/A chain."""

    host: str
    port: int
    transport: Transport
    address: str
    family: Family
    ttl: int | None  # None: a numeric host, which never expires


@dataclass(slots=True, frozen=True)
class Resolution:
    """The targets in the order to try them; `ttl` is the smallest TTL of every answer used."""

    targets: tuple[Target, ...]
    ttl: int | None


@dataclass(slots=True, frozen=True)
class Failure:
    """Server location failed; `kind` says how (a DNS error, or nothing to contact)."""

    kind: FailureKind
    detail: str


class DnsFailure(Exception):
    """Server location failed: `kind` is nxdomain, servfail, timeout or no_records."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: FailureKind = kind
        self.detail = detail


@dataclass(slots=True, frozen=True)
class _Route:
    """An SRV name to look up for one transport, from NAPTR or from the §4.1 fallback."""

    transport: Transport
    srv_name: str
    ttl: int | None  # the NAPTR record's TTL, when it came from one


def _ip_family(host: str) -> Family | None:
    try:
        return "ipv6" if ipaddress.ip_address(host).version == 6 else "ipv4"
    except ValueError:
        return None


def _min_ttl(*ttls: int | None) -> int | None:
    known = [t for t in ttls if t is not None]
    return min(known) if known else None


def _answer_ttl(answer: Answer) -> int | None:
    if answer.records:
        return min(r.ttl for r in answer.records)
    return answer.negative_ttl


def usable_naptr(records: Sequence[NaptrRecord], scheme: Scheme) -> list[NaptrRecord]:
    """NAPTR records this client can follow, by order then preference (RFC 3403 §4.1).

    Only terminal "s" records with a supported service; a sips: URI keeps SIPS+D2T only.
    """
    out = []
    for record in records:
        transport = NAPTR_SERVICES.get(record.service.upper())
        if transport is None or record.flags.lower() != "s" or not record.replacement:
            continue
        if scheme == "sips" and transport != "tls":
            continue
        out.append(record)
    return sorted(out, key=lambda r: (r.order, r.preference))


_ERROR_KINDS: dict[str, FailureKind] = {
    "servfail": "servfail",
    "refused": "servfail",
    "timeout": "timeout",
}


class Planner:
    """Sans-I/O RFC 3263 resolution: ask `queries()`, `feed()` the answers until `done`.

    Any SERVFAIL, REFUSED or timeout ends it as a Failure: a partial answer would silently
    change which targets (and transports) the monitor probes.
    """

    def __init__(
        self,
        destination: Destination,
        *,
        randint: RandInt,
        families: Sequence[Family] = DEFAULT_FAMILIES,
    ) -> None:
        if not families:
            raise ValueError("at least one address family is needed")
        self.destination = destination
        self._randint = randint
        self._families = tuple(dict.fromkeys(families))
        self._domain = normalize_name(destination.host)
        self._asked: list[Query] = []
        self._answers: dict[Query, Answer] = {}
        self._routes: list[_Route] = []
        # Set when A/AAAA of the domain itself is used: (transport, port).
        self._direct: tuple[Transport, int] | None = None
        self._stage: Literal["naptr", "srv", "address", "done"] = "naptr"
        self._result: Resolution | Failure | None = None
        self._start()

    # -- the public loop -------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._result is not None

    def queries(self) -> tuple[Query, ...]:
        """Queries asked and not yet answered; empty once done."""
        if self.done:
            return ()
        return tuple(q for q in self._asked if q not in self._answers)

    def feed(self, answer: Answer) -> None:
        """Take the answer to one outstanding query."""
        if answer.query not in self.queries():
            raise ValueError(f"no outstanding query {answer.query}")
        self._answers[answer.query] = answer
        kind = _ERROR_KINDS.get(answer.rcode)
        if kind is not None:
            detail = f"{answer.query.rtype} {answer.query.name}: {answer.rcode.upper()}"
            self._result = Failure(kind, f"{detail} {answer.detail}".rstrip())
            self._stage = "done"
            return
        if not self.queries():
            self._advance()

    def result(self) -> Resolution | Failure:
        if self._result is None:
            raise RuntimeError("the planner still waits for answers")
        return self._result

    # -- the stages --------------------------------------------------------------------------

    def _ask(self, query: Query) -> None:
        if query not in self._asked:
            self._asked.append(query)

    def _ask_addresses(self, host: str) -> None:
        for family in self._families:
            self._ask(Query(host, FAMILY_RTYPES[family]))

    def _start(self) -> None:
        dest = self.destination
        family = _ip_family(dest.host)
        if family is not None:
            # §4.2: a numeric host needs no DNS at all.
            transport = dest.default_transport
            port = dest.port or DEFAULT_PORTS[transport]
            target = Target(dest.host, port, transport, dest.host, family, None)
            self._result = Resolution((target,), None)
            self._stage = "done"
        elif dest.port is not None:
            # §4.2: an explicit port skips NAPTR and SRV.
            self._go_direct(dest.default_transport, dest.port)
        elif dest.transport is not None:
            # §4.1: an explicit transport skips NAPTR; §4.2: SRV for that transport only.
            self._go_srv([self._fallback_route(dest.transport)])
        else:
            self._ask(Query(self._domain, "NAPTR"))

    def _fallback_route(self, transport: Transport) -> _Route:
        return _Route(transport, f"{SRV_PREFIXES[transport]}.{self._domain}", None)

    def _go_srv(self, routes: list[_Route]) -> None:
        self._routes = routes
        self._stage = "srv"
        for route in routes:
            self._ask(Query(route.srv_name, "SRV"))

    def _go_direct(self, transport: Transport, port: int) -> None:
        self._direct = (transport, port)
        self._stage = "address"
        self._ask_addresses(self._domain)

    def _advance(self) -> None:
        if self._stage == "naptr":
            naptr = self._answers[Query(self._domain, "NAPTR")]
            records = [r for r in naptr.records if isinstance(r, NaptrRecord)]
            routes = [
                _Route(NAPTR_SERVICES[r.service.upper()], normalize_name(r.replacement), r.ttl)
                for r in usable_naptr(records, self.destination.scheme)
            ]
            if not routes:
                # §4.1: no (usable) NAPTR records: SRV for each supported transport.
                routes = [self._fallback_route(t) for t in _SRV_FALLBACK[self.destination.scheme]]
            self._go_srv(list(dict.fromkeys(routes)))
        elif self._stage == "srv":
            hosts = [r.target for route in self._routes for r in self._srv_records(route)]
            if hosts:
                self._stage = "address"
                for host in dict.fromkeys(normalize_name(h) for h in hosts):
                    self._ask_addresses(host)
            else:
                # §4.2: no SRV records: A/AAAA of the domain, on the most preferred transport.
                transport = self._routes[0].transport
                self._go_direct(transport, DEFAULT_PORTS[transport])
        if not self.queries():
            self._finish()

    def _srv_records(self, route: _Route) -> list[SrvRecord]:
        answer = self._answers[Query(route.srv_name, "SRV")]
        return [r for r in answer.records if isinstance(r, SrvRecord) and r.target]

    def _finish(self) -> None:
        self._stage = "done"
        targets: list[Target] = []
        if self._direct is not None:
            transport, port = self._direct
            targets = self._address_targets(self._domain, port, transport, None)
        else:
            for route in self._routes:
                srv_answer = self._answers[Query(route.srv_name, "SRV")]
                ttl = _min_ttl(route.ttl, _answer_ttl(srv_answer))
                for srv in weighted_order(self._srv_records(route), self._randint):
                    host = normalize_name(srv.target)
                    targets += self._address_targets(host, srv.port, route.transport, ttl)
        unique = tuple(dict.fromkeys(targets))
        if unique:
            ttls = [_answer_ttl(a) for a in self._answers.values()]
            self._result = Resolution(unique, _min_ttl(*ttls))
            return
        asked = ", ".join(f"{q.rtype} {q.name}" for q in self._asked)
        if all(a.rcode == "nxdomain" for a in self._answers.values()):
            self._result = Failure("nxdomain", f"no such domain {self._domain} (asked {asked})")
        else:
            self._result = Failure("no_records", f"no address for {self._domain} (asked {asked})")

    def _address_targets(
        self, host: str, port: int, transport: Transport, ttl: int | None
    ) -> list[Target]:
        out = []
        for family in self._families:
            answer = self._answers[Query(host, FAMILY_RTYPES[family])]
            answer_ttl = _answer_ttl(answer)
            for record in answer.records:
                if isinstance(record, AddressRecord):
                    out.append(
                        Target(
                            host, port, transport, record.address, family, _min_ttl(ttl, answer_ttl)
                        )
                    )
        return out


def plan_all(
    destination: Destination,
    answers: dict[Query, Answer],
    *,
    randint: RandInt,
    families: Sequence[Family] = DEFAULT_FAMILIES,
) -> Resolution | Failure:
    """Run a Planner against a fixed table of answers (absent queries read as NXDOMAIN)."""
    planner = Planner(destination, randint=randint, families=families)
    while not planner.done:
        for query in planner.queries():
            planner.feed(answers.get(query, Answer(query, rcode="nxdomain")))
    return planner.result()
