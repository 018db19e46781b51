"""SIP OPTIONS probe over UDP, TCP and TLS (RFC 3261 §11), the hot path's I/O shell.

UDP probes share one socket per address family; responses are matched in the
protocol callback by Via branch, then checked against Call-ID, CSeq method and the
source address. No task or coroutine is created per probe on the UDP path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import operator
import os
import socket
import ssl
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from probes.clock import SYSTEM_CLOCK, Clock
from probes.deadlines import Deadlines
from probes.dns.rfc3263 import DnsFailure
from probes.dns.settings import ResolverSettings
from probes.probe import ResultCallback, run_once
from probes.result import Outcome, ProbeResult
from probes.sip.digest import DigestError, authorization_header, select_challenge
from probes.sip.errors import SipParseError
from probes.sip.framing import StreamFramer
from probes.sip.ids import new_branch_and_call_id_word, new_call_id, new_tag
from probes.sip.limits import MAX_DATAGRAM
from probes.sip.message import SipResponse, parse_message, transaction_key
from probes.sip.reply import read_reply
from probes.sip.transaction import NonInviteClientTransaction
from probes.sip.uri import SipUri, default_port
from probes.untrusted import truncate_untrusted

if TYPE_CHECKING:
    from probes.dns.resolver import SipResolver

# Re-resolve names this often: carriers move SBCs behind DNS, but not per probe.
DNS_TTL_NS = 300 * 1_000_000_000
# Untrusted text (reason phrases, error strings) kept in results and logs is cut here.
MAX_REASON_CHARS = 80
# Default alive policy: 2xx and 4xx except 408 mean the far end is up.
DEFAULT_ALIVE = frozenset(range(200, 300)) | (frozenset(range(400, 500)) - {408})
# A UDP socket's receive buffer: ≥ ~1,000 replies in flight overflowed the default here.
DEFAULT_RCVBUF = 4 * 1024 * 1024
# Datagrams read at most by one drain before a probe's timer acts (bounds the loop's turn).
DRAIN_LIMIT = 4096
# ... and by the scheduler's drain before a slot's sends (when its in-flight cap fills):
# a backlog is caught up over a few slots (~25 µs an answer), so no single turn holds the
# sends for long.
TICK_DRAIN_LIMIT = 256

Address = tuple[str, int]


# Not frozen: a frozen dataclass's __init__ costs ~3× as much (one object.__setattr__ per
# field), ~0.2 s of start-up at 100,000 trunks. Nothing assigns to it after it is made.
@dataclass(slots=True, weakref_slot=True)
class OptionsSettings:
    """What one OPTIONS probe needs to know about its trunk."""

    trunk: str
    uri: str
    timeout: float = 4.0
    alive_codes: frozenset[int] = DEFAULT_ALIVE
    from_uri: str | None = None
    user_agent: str = "trunkwatch"
    max_forwards: int = 70
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_verify: bool = True
    tls_ca_file: Path | None = None
    tls_server_name: str | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # RFC 3263 server location (NAPTR → SRV → A/AAAA) through this resolver; None: the
    # system's getaddrinfo for the URI's host and port.
    dns: ResolverSettings | None = None


@dataclass(slots=True)
class MalformedCounter:
    """Counts packets that were not a valid answer to anything we sent."""

    parse_errors: int = 0
    mismatches: int = 0
    last_error: str = ""
    on_malformed: Callable[[str, bytes, Address | None], None] | None = None

    def report(self, kind: str, data: bytes, addr: Address | None) -> None:
        if kind == "parse_error":
            self.parse_errors += 1
        else:
            self.mismatches += 1
        self.last_error = kind
        if self.on_malformed is not None:
            self.on_malformed(kind, data, addr)


# The request's fixed parts around the per-probe values (branch, Call-ID, CSeq). Apart
# from the trunk's Request-URI and From tag they depend only on the local address,
# transport, From URI, Max-Forwards and User-Agent: one shared template serves every
# trunk alike (~340 bytes a trunk at 100,000 trunks).
_BEFORE_CSEQ = b"\r\nCSeq: "


@dataclass(frozen=True, slots=True)
class _Template:
    local: Address
    via: bytes  # " SIP/2.0\r\nVia: ...;branch=" (the branch follows)
    from_part: bytes  # ";rport ... From: <...>;tag=" (the trunk's tag follows)
    after_cseq: bytes  # " OPTIONS\r\nContact ... User-Agent ...\r\n"
    call_id_suffix: str  # "@host"


_TEMPLATES: dict[_Template, _Template] = {}
_MAX_TEMPLATES = 1024


def _shared_template(template: _Template) -> _Template:
    if len(_TEMPLATES) >= _MAX_TEMPLATES:
        return _TEMPLATES.get(template, template)
    return _TEMPLATES.setdefault(template, template)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class _Links:
    """What a probe reaches the world through, and its clock: one object for all of a
    monitor's probes (seven slots a probe less, ~5.6 MB at 100,000 trunks)."""

    loop: asyncio.AbstractEventLoop
    udp: UdpSipTransport | None
    udp_v6: UdpSipTransport | None
    malformed: MalformedCounter
    keep_messages: bool
    clock: Clock
    # Bound once: the hot path reads them several times per probe.
    mono: Callable[[], int] = field(init=False, compare=False)
    wall: Callable[[], int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mono", self.clock.monotonic_ns)
        object.__setattr__(self, "wall", self.clock.wall_ns)


@dataclass(slots=True)
class _Rare:
    """What few probes hold: a TLS context, an RFC 3263 resolver, and the messages the
    one-shot CLI prints (keep_messages; not the monitor's: ~750 bytes a trunk)."""

    ssl: ssl.SSLContext | None = None
    resolver: SipResolver | None = None
    last_request: bytes = b""
    last_response: SipResponse | bytes | None = None  # raw until asked for parsed


# By the objects' identities (a MalformedCounter compares by value): an entry lives while
# a probe holds its _Links, and with it those objects, so an id is not reused meanwhile.
_LINKS: weakref.WeakValueDictionary[tuple[int, int, int, int, bool, int], _Links] = (
    weakref.WeakValueDictionary()
)


def _shared_links(links: _Links) -> _Links:
    key = (
        id(links.loop),
        id(links.udp),
        id(links.udp_v6),
        id(links.malformed),
        links.keep_messages,
        id(links.clock),
    )
    return _LINKS.setdefault(key, links)


def _truncate(text: str) -> str:
    return truncate_untrusted(text, MAX_REASON_CHARS)


# Reason phrases, escaped once and shared: servers send a handful ("OK"), and a copy per
# probe (with the escaped one) was ~10 MB at 100,000 trunks. Bounded against a peer that
# sends a new phrase every time: short phrases only, and at most this many.
_REASONS: dict[str, str] = {}
_MAX_REASONS = 1024
_MAX_SHARED_REASON_CHARS = 64


def _reason(reason: str) -> str:
    shared = _REASONS.get(reason)
    if shared is not None:
        return shared
    escaped = _truncate(reason)
    if len(_REASONS) < _MAX_REASONS and len(reason) <= _MAX_SHARED_REASON_CHARS:
        _REASONS[reason] = escaped
    return escaped


class UdpSipTransport(asyncio.DatagramProtocol):
    """One UDP socket shared by many probes; answers are routed by Via branch."""

    def __init__(self, malformed: MalformedCounter) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.by_branch: dict[str, OptionsProbe] = {}
        # Last probe sent to each address: lets garbage from that peer fail its probe.
        self.by_addr: dict[Address, OptionsProbe] = {}
        self.malformed = malformed
        self.local: Address = ("0.0.0.0", 0)
        self.connected = False
        # The same socket, read directly by drain() (None where the fd is not available).
        self._reader: socket.socket | None = None
        self.drained = 0  # datagrams drain() read (answers the loop had not read yet)
        # The transaction timers of the probes on this socket (system clock only).
        self.deadlines: Deadlines | None = None

    @classmethod
    async def open(
        cls,
        family: int,
        malformed: MalformedCounter,
        *,
        remote: Address | None = None,
        rcvbuf: int = DEFAULT_RCVBUF,
    ) -> UdpSipTransport:
        loop = asyncio.get_running_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            if remote is not None:
                sock.connect(remote)  # a connected socket reports ICMP refusals
            else:
                sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
        except OSError:
            sock.close()
            raise
        _, proto = await loop.create_datagram_endpoint(lambda: cls(malformed), sock=sock)
        proto.connected = remote is not None
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's and asyncio's UDP transports do not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local = (sockname[0], sockname[1])
        # Drained once per batch of due timers, not once per timer: in an outage of many
        # trunks every probe retransmits three times, and a drain per retransmission was
        # a failed recvfrom (and its exception) each.
        self.deadlines = Deadlines(asyncio.get_running_loop(), before=self.drain)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            reader = socket.socket(fileno=os.dup(sock.fileno()))
            reader.setblocking(False)
            self._reader = reader

    def drain(self, limit: int = DRAIN_LIMIT) -> None:
        """Hand on what already waits in the socket, before a probe's timer acts on it.

        uvloop runs due timers before it polls sockets: when the loop is behind, a reply
        that arrived in time can still be unread when its probe's timeout fires, and a
        monitor must not call an answered probe a timeout (nor retransmit needlessly).
        """
        reader = self._reader
        if reader is None:
            return
        for _ in range(limit):
            try:
                data, addr = reader.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # a connected socket's ICMP error, read here first
                self.error_received(exc)
                return
            self.drained += 1
            self.datagram_received(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        peer: Address = (str(addr[0]), int(addr[1]))
        # The usual reply takes the lazy read (probes/sip/reply.py); anything else, the
        # full parser, which also names the problem of a malformed packet.
        reply = read_reply(data)
        if reply is not None:
            probe = self.by_branch.get(reply.branch)
            if probe is None:
                self._bad("mismatch", data, peer)
                return
            probe.on_reply(reply.status, reply.reason, reply.key, peer, data)
            return
        try:
            msg = parse_message(data)
        except SipParseError:
            self._bad("parse_error", data, peer)
            return
        if not isinstance(msg, SipResponse):
            self._bad("mismatch", data, peer)  # requests to a probe socket are not answers
            return
        key = transaction_key(msg)
        probe = self.by_branch.get(key[0]) if key is not None else None
        if probe is None or key is None:
            self._bad("mismatch", data, peer)
            return
        probe.on_response(msg, key, peer, data)

    def _bad(self, kind: str, data: bytes, peer: Address) -> None:
        self.malformed.report(kind, data, peer)
        probe = self.by_addr.get(peer)
        if probe is not None:
            probe.on_bad_packet(kind)

    def error_received(self, exc: Exception) -> None:
        # Only a connected socket reports ICMP errors; it serves a single probe.
        if self.connected:
            for probe in list(self.by_branch.values()):
                probe.on_transport_error(exc)

    def send(self, data: bytes, addr: Address) -> None:
        assert self.transport is not None
        if self.connected:
            self.transport.sendto(data)
        else:
            self.transport.sendto(data, addr)

    def close(self) -> None:
        if self.deadlines is not None:
            self.deadlines.close()
        if self.transport is not None:
            self.transport.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None


class StreamSipConnection(asyncio.Protocol):
    """One TCP or TLS connection to a trunk, reused across probes (RFC 3261 §18)."""

    def __init__(self, probe: OptionsProbe) -> None:
        self.probe = probe
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.local: Address = ("0.0.0.0", 0)
        self.peer: Address = ("0.0.0.0", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        self.local = (sockname[0], sockname[1])
        self.peer = (peername[0], peername[1])

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except SipParseError:
            self.probe.malformed.report("parse_error", data, self.peer)
            self.probe.on_bad_packet("parse_error")
            self.abort()  # the stream has lost its framing: start again on a new connection
            return
        for frame in frames:
            try:
                msg = parse_message(frame)
            except SipParseError:
                self.probe.malformed.report("parse_error", frame, self.peer)
                self.probe.on_bad_packet("parse_error")
                continue
            key = transaction_key(msg) if isinstance(msg, SipResponse) else None
            if key is None or key[0] != self.probe.branch or not isinstance(msg, SipResponse):
                self.probe.malformed.report("mismatch", frame, self.peer)
                self.probe.on_bad_packet("mismatch")
                continue
            self.probe.on_response(msg, key, self.peer, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.probe.on_connection_lost(self, exc)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


def build_ssl_context(settings: OptionsSettings) -> ssl.SSLContext:
    """Server certificates are verified by default; CA file and client cert are optional."""
    ctx = ssl.create_default_context(
        cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
    )
    if not settings.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.tls_cert_file is not None:
        ctx.load_cert_chain(
            str(settings.tls_cert_file),
            str(settings.tls_key_file) if settings.tls_key_file else None,
        )
    return ctx


@functools.lru_cache(maxsize=4096)  # trunks share their carriers' hosts (100k at start-up)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)  # trunks of one carrier often share its URI
def _parse_uri(text: str) -> tuple[SipUri, str, str]:
    """The trunk's URI (immutable, so shared), its Request-URI (without URI headers, RFC 3261
    §19.1.5) and its transport (a property that parses the URI's parameters each time)."""
    uri = SipUri.parse(text)
    request_uri = dataclasses.replace(uri, password=None, headers=())
    return uri, str(request_uri), uri.transport


def uri_transport(text: str) -> str:
    """The transport of a trunk URI, parsed once for the probe and the exporter's facts."""
    return _parse_uri(text)[2]


class OptionsProbe:
    """Sends OPTIONS to one trunk; at most one probe in flight (timeout < interval)."""

    kind = "options"

    __slots__ = (
        "_auth_header",
        "_bad",
        "_cseq",
        "_dns_ttl_ns",
        "_links",
        "_local_host",
        "_on_done",
        "_rare",
        "_resolved_at",
        "_started_ns",
        "_tag",
        "_template",
        "_timer",
        "_timer_token",
        "_txn",
        "addr",
        "branch",
        "call_id",
        "conn",
        "request_uri",
        "sent_ns",
        "sent_wall_ns",
        "settings",
        "transport_name",
        "trunk",
    )

    def __init__(
        self,
        settings: OptionsSettings,
        *,
        udp: UdpSipTransport | None = None,
        udp_v6: UdpSipTransport | None = None,
        malformed: MalformedCounter | None = None,
        clock: Clock = SYSTEM_CLOCK,
        keep_messages: bool = True,
    ) -> None:
        self.trunk = settings.trunk
        # The Request-URI is all a probe keeps of its URI (the parsed form is `uri`, asked
        # for off the hot path): ~220 bytes a trunk less with a URI of its own.
        uri, self.request_uri, self.transport_name = _parse_uri(settings.uri)
        # Shared with probes of trunks set up alike: its trunk and URI are blank.
        self.settings = _shared_settings(settings)
        if self.transport_name not in ("udp", "tcp", "tls"):
            raise ValueError(f"unsupported transport {self.transport_name!r} in {settings.uri}")
        # Sockets, counter, loop, keep_messages and clock: one object for the monitor's probes.
        self._links = _shared_links(
            _Links(
                asyncio.get_event_loop(),
                udp,
                udp_v6,
                malformed if malformed is not None else MalformedCounter(),
                keep_messages,
                clock,
            )
        )
        self.addr: Address | None = None
        self._resolved_at = 0
        self._dns_ttl_ns = DNS_TTL_NS
        self._local_host: str | None = None
        self._rare: _Rare | None = None
        if self.transport_name == "tls":
            self._set_ssl(build_ssl_context(settings))
        self.conn: StreamSipConnection | None = None
        # The request template (_set_template): shared by the UDP probes of a local address
        # set up alike, so no object of each probe's own for the cyclic GC to walk (100,000
        # of them made every full collection longer).
        self._template: _Template | None = None
        self._tag = b""
        self.branch = ""
        self.call_id = ""
        self._cseq = 0
        self._txn: NonInviteClientTransaction | None = None
        self._timer: asyncio.TimerHandle | None = None
        # The shared UDP socket's deadlines serve the system clock; a test's fake clock
        # (and TCP/TLS) takes a loop timer of its own. The token cancels a deadline.
        self._timer_token = 0 if clock is SYSTEM_CLOCK else -1
        self._on_done: ResultCallback | None = None
        self._started_ns = 0
        self.sent_ns = 0
        self.sent_wall_ns = 0
        self._bad: Outcome | None = None
        self._auth_header: str | None = None
        if _is_ip(uri.host):
            # An address literal needs no resolver (and no executor thread per trunk).
            port = uri.port or default_port(self.transport_name)
            self.addr = (uri.host, port)
            self._resolved_at = _NEVER_STALE
            family = socket.AF_INET6 if ":" in uri.host else socket.AF_INET
            self._local_host = _local_address_towards(family, self.addr)

    @property
    def malformed(self) -> MalformedCounter:
        return self._links.malformed

    def use_udp(self, udp: UdpSipTransport, *, v6: bool) -> None:
        """Send over `udp` (the one-shot CLI's own socket, opened once the address is known)."""
        links = self._links
        changed = (
            dataclasses.replace(links, udp_v6=udp) if v6 else dataclasses.replace(links, udp=udp)
        )
        self._links = _shared_links(changed)

    @property
    def uri(self) -> SipUri:
        """The trunk's URI, parsed (its password and headers left out, as in the request)."""
        return _parse_uri(self.request_uri)[0]

    # ---- the Probe interface -------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._on_done is not None

    def start(self, on_done: ResultCallback) -> None:
        if self._on_done is not None:
            on_done(self._result(Outcome.PROBE_CRASHED, detail="previous probe still running"))
            return
        self._on_done = on_done
        links = self._links
        self._started_ns = links.mono()
        self.sent_wall_ns = links.wall()
        self._bad = None
        self._auth_header = None
        self._cseq = 0
        needs_dns = self.addr is None or (self._started_ns - self._resolved_at > self._dns_ttl_ns)
        needs_connect = self.transport_name != "udp" and (
            self.conn is None or not self.conn.is_open
        )
        if needs_dns or needs_connect:
            # Rare path (first probe, DNS refresh, reconnect): a task is acceptable here.
            task = links.loop.create_task(self._prepare_and_send(needs_dns))
            task.add_done_callback(self._task_done)
        else:
            self._send_new_request()

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.abort()
            self.conn = None
        self._forget()
        self._unregister_branch()
        if self._on_done is not None:
            self._finish(Outcome.PROBE_CRASHED, detail="probe closed")

    # ---- preparation (DNS, connect) ------------------------------------------------

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            if self._on_done is not None:
                self._finish(Outcome.PROBE_CRASHED, detail="cancelled")
            return
        exc = task.exception()
        if exc is not None and self._on_done is not None:
            self._finish(Outcome.PROBE_CRASHED, detail=_truncate(repr(exc)))

    async def _prepare_and_send(self, needs_dns: bool) -> None:
        deadline = self._started_ns + int(self.settings.timeout * 1e9)
        try:
            if needs_dns:
                outcome, detail = await self._resolve(deadline)
                if outcome is not None:
                    self._finish(outcome, detail=detail)
                    return
            if self.transport_name != "udp" and (self.conn is None or not self.conn.is_open):
                outcome, detail = await self._connect(deadline)
                if outcome is not None:
                    self._finish(outcome, detail=detail)
                    return
        except Exception as exc:  # a bug, not a network failure: counted as the monitor's fault
            self._finish(Outcome.PROBE_CRASHED, detail=_truncate(repr(exc)))
            return
        self._send_new_request()

    def _remaining(self, deadline: int) -> float:
        return max(0.0, (deadline - self._links.mono()) / 1e9)

    async def _resolve(self, deadline: int) -> tuple[Outcome | None, str]:
        if self.settings.dns is not None:
            return await self._locate(self.settings.dns, deadline)
        host = self.uri.host
        port = self.uri.port or default_port(self.transport_name)
        socktype = socket.SOCK_DGRAM if self.transport_name == "udp" else socket.SOCK_STREAM
        try:
            infos = await asyncio.wait_for(
                self._links.loop.getaddrinfo(host, port, type=socktype), self._remaining(deadline)
            )
        except TimeoutError:
            return Outcome.DNS, f"resolving {host} timed out"
        except socket.gaierror as exc:
            return Outcome.DNS, _truncate(f"{host}: {exc.strerror}")
        if not infos:
            return Outcome.DNS, f"{host}: no addresses"
        # Prefer IPv4 when both exist, as most carrier SBCs are addressed that way.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family, _, _, _, sockaddr = infos[0]
        self._use((str(sockaddr[0]), int(sockaddr[1])), family, DNS_TTL_NS)
        return None, ""

    async def _locate(self, dns: ResolverSettings, deadline: int) -> tuple[Outcome | None, str]:
        """RFC 3263: the first target (NAPTR order, SRV priority and weight) on our transport;
        re-located when its TTL runs out."""
        rare = self._extra()
        if rare.resolver is None:
            from probes.dns.resolver import SipResolver  # dnspython: for host-name trunks only

            rare.resolver = SipResolver(dns)
        try:
            found = await asyncio.wait_for(
                rare.resolver.resolve(self.request_uri), self._remaining(deadline)
            )
        except TimeoutError:
            return Outcome.DNS, f"locating {self.uri.host} timed out"
        except DnsFailure as exc:
            return Outcome.DNS, _truncate(f"{self.uri.host}: {exc.kind}: {exc.detail}")
        mine = [t for t in found.targets if t.transport == self.transport_name]
        if not mine:
            return Outcome.DNS, f"{self.uri.host}: no {self.transport_name} target"
        target = mine[0]
        family = socket.AF_INET6 if target.family == "ipv6" else socket.AF_INET
        ttl_ns = DNS_TTL_NS if target.ttl is None else max(1, target.ttl) * 1_000_000_000
        self._use((target.address, target.port), family, ttl_ns)
        return None, ""

    def _use(self, addr: Address, family: int, ttl_ns: int) -> None:
        self.addr = addr
        self._resolved_at = self._links.mono()
        self._dns_ttl_ns = ttl_ns
        if self.transport_name == "udp":
            self._local_host = _local_address_towards(family, addr)

    async def _connect(self, deadline: int) -> tuple[Outcome | None, str]:
        assert self.addr is not None
        server_name = self.settings.tls_server_name or self.uri.host
        context = self._rare.ssl if self._rare is not None else None
        try:
            _, conn = await asyncio.wait_for(
                self._links.loop.create_connection(
                    lambda: StreamSipConnection(self),
                    self.addr[0],
                    self.addr[1],
                    ssl=context,
                    server_hostname=server_name if context is not None else None,
                ),
                self._remaining(deadline),
            )
        except TimeoutError:
            return Outcome.TIMEOUT, "connect timed out"
        except ssl.SSLError as exc:
            return Outcome.TLS, _truncate(exc.reason or str(exc))
        except ssl.CertificateError as exc:
            return Outcome.TLS, _truncate(str(exc))
        except ConnectionRefusedError:
            return Outcome.REFUSED, "connection refused"
        except OSError as exc:
            return Outcome.NETWORK, _truncate(exc.strerror or str(exc))
        self.conn = conn
        self._local_host = conn.local[0]
        return None, ""

    # ---- the transaction -------------------------------------------------------------

    def _local(self) -> Address:
        if self.transport_name == "udp":
            transport = self._udp_for_addr()
            host = self._local_host or transport.local[0]
            return (host, transport.local[1])
        assert self.conn is not None
        return self.conn.local

    def _udp_of_family(self) -> UdpSipTransport | None:
        """The shared UDP socket for this trunk's address family (None before resolution)."""
        if self.transport_name != "udp" or self.addr is None:
            return None
        links = self._links
        return links.udp_v6 if ":" in self.addr[0] else links.udp

    def _udp_for_addr(self) -> UdpSipTransport:
        transport = self._udp_of_family()
        if transport is None:
            raise RuntimeError("no UDP socket for this address family")
        return transport

    def _set_template(self, local: Address) -> _Template:
        """The request's fixed parts for this local address, built once, reused per probe
        (the From tag with them: the same tag while the local address stays)."""
        template = self._template
        if template is not None and template.local == local:
            return template
        host, port = local
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        from_uri = self.settings.from_uri or f"sip:trunkwatch@{hostport}"
        # The trunk's own parts are its Request-URI and From tag; the rest is the same for
        # every probe from this local address set up alike, held once (_shared_template).
        self._tag = f"{new_tag()}\r\nTo: <".encode()
        made = _Template(
            local,
            f" SIP/2.0\r\nVia: SIP/2.0/{self.transport_name.upper()} {hostport};branch=".encode(),
            f";rport\r\nMax-Forwards: {self.settings.max_forwards}\r\n"
            f"From: <{from_uri}>;tag=".encode(),
            f" OPTIONS\r\n"
            f"Contact: <sip:trunkwatch@{hostport};transport={self.transport_name}>\r\n"
            f"Accept: application/sdp\r\nUser-Agent: {self.settings.user_agent}\r\n".encode(),
            _call_id_suffix(host),
        )
        # UDP probes share a few local addresses (the shared sockets'). A TCP/TLS
        # connection's own local port would make the table grow: its template is its own.
        template = self._template = _shared_template(made) if self.transport_name == "udp" else made
        return template

    def _build_request(self, template: _Template) -> bytes:
        # surrogateescape: a realm or nonce that was not UTF-8 goes back as the bytes it was.
        auth = (
            b""
            if self._auth_header is None
            else self._auth_header.encode("utf-8", "surrogateescape") + b"\r\n"
        )
        ruri = self.request_uri.encode()  # ~40 ns a probe, against 52 bytes a trunk kept
        return b"".join(
            (
                b"OPTIONS ",
                ruri,
                template.via,
                self.branch.encode(),
                template.from_part,
                self._tag,
                ruri,
                b">\r\nCall-ID: ",
                self.call_id.encode(),
                _BEFORE_CSEQ,
                str(self._cseq).encode(),
                template.after_cseq,
                auth,
                b"Content-Length: 0\r\n\r\n",
            )
        )

    def _send_new_request(self) -> None:
        self._forget()
        self._unregister_branch()
        template = self._set_template(self._local())
        self.branch, call_id_word = new_branch_and_call_id_word()
        if self._cseq == 0:  # a new call per probe; the auth retry stays in it (§22.2)
            self.call_id = call_id_word + template.call_id_suffix
        self._cseq += 1
        data = self._build_request(template)
        links = self._links
        if links.keep_messages:
            self._extra().last_request = data
        now = links.mono()
        budget = self._started_ns + int(self.settings.timeout * 1e9) - now
        if budget <= 0:
            self._finish(Outcome.TIMEOUT, detail="no time left to send")
            return
        self._txn = NonInviteClientTransaction(
            data, reliable=self.transport_name != "udp", now_ns=now, timeout_ns=budget
        )
        try:
            if self.transport_name == "udp":
                udp = self._udp_for_addr()
                udp.by_branch[self.branch] = self
                assert self.addr is not None
                udp.by_addr[self.addr] = self
                self.sent_ns = links.mono()
                udp.send(data, self.addr)
            else:
                assert self.conn is not None and self.conn.transport is not None
                self.sent_ns = links.mono()
                self.conn.transport.write(data)
        except OSError as exc:
            self._finish(Outcome.NETWORK, detail=_truncate(exc.strerror or str(exc)))
            return
        self._arm_timer()

    def _arm_timer(self) -> None:
        assert self._txn is not None
        deadline = self._txn.next_deadline_ns()
        if deadline is None:
            return
        if self._timer_token >= 0 and self.transport_name == "udp":
            udp = self._udp_of_family()
            if udp is not None and udp.deadlines is not None:
                self._timer_token += 1
                udp.deadlines.add(deadline, self, self._timer_token)
                return
        delay = max(0.0, (deadline - self._links.mono()) / 1e9)
        self._timer = self._links.loop.call_later(delay, self._on_timer)

    def on_deadline(self, token: int) -> None:
        """The shared deadline armed with `token` passed; a stale one (answered) is ignored."""
        if token == self._timer_token:
            self._on_timer(drained=True)  # Deadlines drained the socket before the batch

    def _on_timer(self, drained: bool = False) -> None:
        try:
            self._timer_fired(drained)
        except Exception as exc:
            self.crashed(exc)

    def crashed(self, exc: Exception) -> None:
        """A bug on this probe's completion path: the probe ends now, as the monitor's own
        fault (never the trunk's), and the scheduler counts and logs it."""
        # The type only: an exception's message can quote peer bytes or a credential.
        self._finish(Outcome.PROBE_CRASHED, detail=f"bug: {type(exc).__name__}")

    def _timer_fired(self, drained: bool) -> None:
        self._timer = None
        txn = self._txn
        if txn is None:
            return
        udp = self._udp_of_family()
        if udp is not None and not drained:
            udp.drain()  # our answer may be waiting unread (a loop that is behind)
            if self._txn is not txn:
                return  # it was: the probe ended (or went on to its auth retry)
        action = txn.on_timer(self._links.mono())
        if action.timed_out:
            self._finish(self._bad or Outcome.TIMEOUT, detail=None)
            return
        if action.retransmit is not None and self.transport_name == "udp" and self.addr:
            try:
                self._udp_for_addr().send(action.retransmit, self.addr)
            except OSError as exc:
                self._finish(Outcome.NETWORK, detail=_truncate(exc.strerror or str(exc)))
                return
        self._arm_timer()

    # ---- inputs from the transports -------------------------------------------------

    def on_response(
        self, msg: SipResponse, key: tuple[str, str, str], peer: Address, raw: bytes
    ) -> None:
        try:
            self._on_response(msg.status, msg.reason, key, peer, raw, msg)
        except Exception as exc:
            self.crashed(exc)

    def on_reply(
        self, status: int, reason: str, key: tuple[str, str, str], peer: Address, raw: bytes
    ) -> None:
        """A reply read lazily (probes/sip/reply.py): parsed in full only if it is needed."""
        try:
            self._on_response(status, reason, key, peer, raw, None)
        except Exception as exc:
            self.crashed(exc)

    def _on_response(
        self,
        status: int,
        reason: str,
        key: tuple[str, str, str],
        peer: Address,
        raw: bytes,
        msg: SipResponse | None,
    ) -> None:
        now = self._links.mono()
        if self._txn is None or key[0] != self.branch:
            return
        if (
            key[1] != "OPTIONS"
            or key[2] != self.call_id
            or (self.transport_name == "udp" and peer != self.addr)
        ):
            self._links.malformed.report("mismatch", raw, peer)
            self._bad = Outcome.MISMATCH
            return
        if self._links.keep_messages:
            self._extra().last_response = msg if msg is not None else raw
        final = self._txn.on_response(status, now)
        if not final:
            return
        rtt = now - self.sent_ns
        if status in (401, 407) and self.settings.username and self._auth_header is None:
            # The lazy read accepts only what the full parser accepts: this cannot raise.
            if self._try_authenticate(msg if msg is not None else _parse_response(raw)):
                return
            self._finish(
                Outcome.AUTH, status=status, reason=reason, rtt_ns=rtt, detail="unusable challenge"
            )
            return
        if status in (401, 407) and self._auth_header is not None:
            self._finish(
                Outcome.AUTH, status=status, reason=reason, rtt_ns=rtt, detail="credentials refused"
            )
            return
        outcome = Outcome.OK if status in self.settings.alive_codes else Outcome.SIP_ERROR
        self._finish(outcome, status=status, reason=reason, rtt_ns=rtt)

    @property
    def last_response(self) -> SipResponse | None:
        """The last answer to our own request, parsed when asked (the CLI's verbose print)."""
        if self._rare is None:
            return None
        last = self._rare.last_response
        if isinstance(last, bytes):
            last = self._rare.last_response = _parse_response(last)
        return last

    @property
    def last_request(self) -> bytes:
        """The last request sent (kept with keep_messages, for the CLI's verbose print)."""
        return b"" if self._rare is None else self._rare.last_request

    def _set_ssl(self, context: ssl.SSLContext | None) -> None:
        if context is not None or self._rare is not None:
            self._extra().ssl = context

    def _extra(self) -> _Rare:
        rare = self._rare
        if rare is None:
            rare = self._rare = _Rare()
        return rare

    def _try_authenticate(self, msg: SipResponse) -> bool:
        name = "WWW-Authenticate" if msg.status == 401 else "Proxy-Authenticate"
        challenges = msg.headers.get_all(name)
        if not challenges or self.settings.password is None or self.settings.username is None:
            return False
        try:
            challenge = select_challenge(challenges)
            value = authorization_header(
                challenge,
                method="OPTIONS",
                uri=self.request_uri,
                username=self.settings.username,
                password=self.settings.password,
            )
        except (DigestError, SipParseError):
            return False
        auth_name = "Authorization" if msg.status == 401 else "Proxy-Authorization"
        self._auth_header = f"{auth_name}: {value}"
        self._send_new_request()
        return True

    def on_bad_packet(self, kind: str) -> None:
        if self._txn is not None:
            self._bad = Outcome.PARSE_ERROR if kind == "parse_error" else Outcome.MISMATCH

    def on_transport_error(self, exc: Exception) -> None:
        if self._on_done is None:
            return
        if isinstance(exc, ConnectionRefusedError):
            self._finish(Outcome.REFUSED, detail="ICMP port unreachable")
        else:
            self._finish(Outcome.NETWORK, detail=_truncate(str(exc)))

    def on_connection_lost(self, conn: StreamSipConnection, exc: Exception | None) -> None:
        if self.conn is conn:
            self.conn = None
        if self._on_done is not None and self._txn is not None:
            detail = "connection closed by peer" if exc is None else _truncate(str(exc))
            # TLS 1.3 rejects a client certificate only after the handshake: the alert
            # arrives as the connection's end, and it is a TLS failure, not the network's.
            outcome = Outcome.TLS if isinstance(exc, ssl.SSLError) else Outcome.NETWORK
            self._finish(self._bad or outcome, detail=detail)

    # ---- completion -------------------------------------------------------------------

    def _forget(self) -> None:
        # The finished branch stays registered until the next request: answers to our
        # own retransmissions that arrive late are absorbed, not counted as mismatches
        # (what Timer K does for a UDP client transaction, RFC 3261 §17.1.2.2).
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timer_token >= 0:
            self._timer_token += 1  # the shared deadline, if any, goes stale
        udp, addr = self._udp_of_family(), self.addr
        if udp is not None and addr is not None and udp.by_addr.get(addr) is self:
            del udp.by_addr[addr]
        self._txn = None

    def _unregister_branch(self) -> None:
        udp = self._udp_of_family()
        if udp is not None and self.branch and udp.by_branch.get(self.branch) is self:
            del udp.by_branch[self.branch]

    def _result(
        self,
        outcome: Outcome,
        *,
        status: int | None = None,
        reason: str = "",
        rtt_ns: int | None = None,
        detail: str | None = None,
    ) -> ProbeResult:
        return ProbeResult(
            trunk=self.trunk,
            probe=self.kind,
            outcome=outcome,
            sent_wall_ns=self.sent_wall_ns,
            rtt_ns=rtt_ns,
            duration_ns=self._links.mono() - self._started_ns,
            status_code=status,
            reason=_reason(reason) if status is not None else None,
            detail=detail,
        )

    def _finish(
        self,
        outcome: Outcome,
        *,
        status: int | None = None,
        reason: str = "",
        rtt_ns: int | None = None,
        detail: str | None = None,
    ) -> None:
        self._forget()
        on_done = self._on_done
        self._on_done = None
        if on_done is not None:
            result = self._result(
                outcome, status=status, reason=reason, rtt_ns=rtt_ns, detail=detail
            )
            # Nothing reads them until the next probe (a late answer is matched on the
            # branch alone): ~180 bytes a trunk less between probes, 18 MB at 100,000.
            self.call_id = ""
            self._started_ns = self.sent_ns = self.sent_wall_ns = 0
            on_done(result)


# Probes of trunks set up alike share one settings object with the trunk's name and URI
# left out (each probe holds its own): ~150 bytes a trunk less at 100,000 trunks. Weak:
# a reload's replaced settings go with their probes.
_SETTINGS: weakref.WeakValueDictionary[tuple[object, ...], OptionsSettings] = (
    weakref.WeakValueDictionary()
)
_SHAPE = operator.attrgetter(
    *(f.name for f in dataclasses.fields(OptionsSettings) if f.name not in ("trunk", "uri"))
)


def _shared_settings(settings: OptionsSettings) -> OptionsSettings:
    """`settings` without its trunk and URI, one object for all alike."""
    key = _SHAPE(settings)  # every field's type is hashable
    shared = _SETTINGS.get(key)
    if shared is None:
        shared = _SETTINGS[key] = dataclasses.replace(settings, trunk="", uri="")
    return shared


# The Call-ID's "@host" by local host, made once (bounded by the machine's own addresses).
_CALL_ID_SUFFIXES: dict[str, str] = {}


def _call_id_suffix(host: str) -> str:
    """ "@host" for our Call-IDs, the host checked as a Call-ID word once (RFC 3261 §25.1)."""
    suffix = _CALL_ID_SUFFIXES.get(host)
    if suffix is None:
        call_id = new_call_id(host if ":" not in host else f"[{host}]")
        suffix = _CALL_ID_SUFFIXES[host] = call_id[call_id.index("@") :]
    return suffix


def _parse_response(raw: bytes) -> SipResponse:
    """A reply the lazy read accepted, in full (a request never gets that far)."""
    msg = parse_message(raw)
    assert isinstance(msg, SipResponse)
    return msg


_local_addresses: dict[str, str | None] = {}
# The resolution time of an address literal: it never needs resolving again.
_NEVER_STALE = 2**62


def _local_address_towards(family: int, addr: Address) -> str | None:
    """The local IP the kernel would use towards addr, for Via and Contact (no packet sent)."""
    if addr[0] in _local_addresses:  # thousands of trunks often share a few SBCs
        return _local_addresses[addr[0]]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(addr)
            local: str | None = str(sock.getsockname()[0])
        except OSError:
            local = None
    _local_addresses[addr[0]] = local
    return local


@dataclass(slots=True)
class SharedUdp:
    """The scheduler's UDP sockets: one per address family, shared by every UDP probe."""

    v4: UdpSipTransport
    v6: UdpSipTransport | None

    @classmethod
    async def open(cls, malformed: MalformedCounter, rcvbuf: int = DEFAULT_RCVBUF) -> SharedUdp:
        v4 = await UdpSipTransport.open(socket.AF_INET, malformed, rcvbuf=rcvbuf)
        try:
            v6: UdpSipTransport | None = await UdpSipTransport.open(
                socket.AF_INET6, malformed, rcvbuf=rcvbuf
            )
        except OSError:  # a host without IPv6 still probes IPv4 trunks
            v6 = None
        return cls(v4, v6)

    def probe(
        self, settings: OptionsSettings, clock: Clock = SYSTEM_CLOCK, *, keep_messages: bool = True
    ) -> OptionsProbe:
        return OptionsProbe(
            settings,
            udp=self.v4,
            udp_v6=self.v6,
            malformed=self.v4.malformed,
            clock=clock,
            keep_messages=keep_messages,
        )

    def drain(self) -> None:
        """Hand on the answers already waiting in both sockets (see UdpSipTransport.drain)."""
        self.v4.drain(TICK_DRAIN_LIMIT)
        if self.v6 is not None:
            self.v6.drain(TICK_DRAIN_LIMIT)

    def close(self) -> None:
        self.v4.close()
        if self.v6 is not None:
            self.v6.close()


async def probe_options_once(
    settings: OptionsSettings, malformed: MalformedCounter | None = None
) -> tuple[ProbeResult, OptionsProbe]:
    """One probe, as `trunkwatch probe options` runs it: a connected UDP socket sees refusals.

    Returns the probe too, whose last_request/last_response the CLI prints.
    """
    malformed = malformed if malformed is not None else MalformedCounter()
    probe = OptionsProbe(settings, malformed=malformed)
    if probe.transport_name != "udp":
        try:
            return await run_once(probe), probe
        finally:
            await probe.close()
    started = SYSTEM_CLOCK.monotonic_ns()
    outcome, detail = await probe._resolve(started + int(settings.timeout * 1e9))
    if outcome is not None:
        return ProbeResult(
            trunk=settings.trunk,
            probe=probe.kind,
            outcome=outcome,
            sent_wall_ns=SYSTEM_CLOCK.wall_ns(),
            duration_ns=SYSTEM_CLOCK.monotonic_ns() - started,
            detail=detail,
        ), probe
    assert probe.addr is not None
    family = socket.AF_INET6 if ":" in probe.addr[0] else socket.AF_INET
    udp = await UdpSipTransport.open(family, malformed, remote=probe.addr)
    probe.use_udp(udp, v6=family == socket.AF_INET6)
    try:
        return await run_once(probe), probe
    finally:
        await probe.close()
        udp.close()
