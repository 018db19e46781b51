"""The built-in SIP OPTIONS responder (RFC 3261 §11.2) on UDP and TCP, with scripted misbehaviour.

It is the far end for `trunkwatch demo`, for tests of bad input and for the benchmark. The UDP
hot path answers a well-formed OPTIONS by copying the request's header lines byte for byte
(§8.2.6.2) instead of a full parse and serialize; anything unusual (folded lines, several
via-parms on one line, odd Via syntax, other methods) takes the full parser. Input that is
not SIP is dropped silently and counted in `malformed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import re
import socket
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import structlog

from probes.clock import Clock, SystemClock
from probes.instants import NS_PER_S
from probes.sip.errors import SipParseError
from probes.sip.framing import StreamFramer
from probes.sip.grammar import split_list
from probes.sip.ids import new_tag
from probes.sip.limits import MAX_MESSAGE_BYTES
from probes.sip.message import SipRequest, parse_message

log = structlog.get_logger("probes.responder")


class ResponderMode(StrEnum):
    NORMAL = "normal"  # 200 OK to OPTIONS, 405 to other methods
    SILENT = "silent"  # drop everything (an outage)
    STATUS = "status"  # reply with `status` / `reason` (e.g. 503)
    GARBAGE = "garbage"  # reply random bytes that are not SIP
    TRUNCATED = "truncated"  # a reply cut in the middle of its header block
    WRONG_BRANCH = "wrong_branch"  # top Via branch changed: matches no client transaction
    WRONG_CALL_ID = "wrong_call_id"
    OVERSIZED = "oversized"  # a reply beyond the parser's limits (MAX_HEADER_BYTES, ...)
    OTHER_PORT = "other_port"  # UDP: a correct reply from another source port (TCP: normal,
    # since a stream reply can only travel its request's connection)


SERVER_HEADER = "trunkwatch-responder"
ALLOW = b"OPTIONS"  # all we implement; every other method gets 405 with this Allow (§8.2.1)
ACCEPT = b"application/sdp"  # §11.2: what an OPTIONS answer advertises
# The largest UDP payload over IPv4 (65535 − 8 UDP − 20 IP header bytes); IPv6 allows 20 more.
MAX_UDP_PAYLOAD = 65_507
# An OVERSIZED reply over UDP fills a whole datagram, so its header block is about twice the
# parser's MAX_HEADER_BYTES; over TCP it also exceeds MAX_MESSAGE_BYTES, which UDP cannot carry.
OVERSIZED_UDP_BYTES = MAX_UDP_PAYLOAD
OVERSIZED_TCP_BYTES = MAX_MESSAGE_BYTES + 4_096
# Padding header lines stay well under MAX_HEADER_LINE: the only limit broken is the total size.
PADDING_LINE_BYTES = 1_000
GARBAGE_MIN_BYTES = 16
GARBAGE_MAX_BYTES = 512
# Benchmarks push ~40k OPTIONS/s at one socket; the default buffer overflowed at ~1k in flight.
UDP_RCVBUF = 4 * 1024 * 1024
# Binding port 0 picks a UDP port; TCP may already have it taken: try a few times.
BIND_ATTEMPTS = 50
# stop() waits this long for sockets to close; they close on the next loop iteration.
STOP_TIMEOUT_S = 2.0
DEFAULT_SIP_PORT = 5060  # §18.2.2: sent-by without a port
DEFAULT_SIPS_PORT = 5061
# Header text is UTF-8 (§7.3.1); undecodable bytes survive as surrogate escapes, so a value
# the parser hands back encodes to the very bytes the peer sent.
_ENC = "utf-8"
_ERRORS = "surrogateescape"

# RFC 3261 §21 reason phrases; others fall back to their class's.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
_CLASS_PHRASES = {1: "Provisional", 2: "Success", 3: "Redirect", 4: "Client Error",
                  5: "Server Error", 6: "Global Failure"}  # fmt: skip


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status) or _CLASS_PHRASES.get(status // 100, "Unknown")


# ---------------------------------------------------------------------------------------------
# Pure parts: what a request says, the reply's Via, the reply's bytes.


@dataclass(slots=True)
class RequestHead:
    """The header values a response copies (§8.2.6.2), as raw bytes."""

    method: bytes
    vias: list[bytes]  # one entry per Via line (a line may hold several via-parms)
    from_: bytes
    to: bytes
    call_id: bytes
    cseq: bytes


# The header lines the fast path copies, long or compact names (§7.3.3), any case (§7.3.1). One
# C-level regex scan of the header block instead of a Python loop over every line.
_COPIED_RE = re.compile(rb"\r\n(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*([^\r]*)", re.I)
_SINGLE = {b"from": 0, b"f": 0, b"to": 1, b"t": 1, b"call-id": 2, b"i": 2, b"cseq": 3}


def scan_request(data: bytes) -> RequestHead | None:
    """Fast path: an OPTIONS in the plain shape every prober sends, else None (use the parser)."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(b"OPTIONS "):
        return None
    # A lone CR or LF would be copied into our reply (injection); a CRLF followed by
    # whitespace is a folded line (§7.3.1): both are the parser's business.
    crlf = data.count(b"\r\n", 0, end)
    if (
        data.count(b"\n", 0, end) != crlf
        or data.count(b"\r", 0, end) != crlf
        or data.find(b"\r\n ", 0, end) >= 0
        or data.find(b"\r\n\t", 0, end) >= 0
    ):
        return None
    line_end = data.find(b"\r\n")
    parts = data[:line_end].split(b" ")
    if len(parts) != 3 or parts[2] != b"SIP/2.0" or not parts[1][:4].lower().startswith(b"sip"):
        return None
    vias: list[bytes] = []
    found: list[bytes | None] = [None, None, None, None]
    for m in _COPIED_RE.finditer(data, line_end, end + 2):
        name = m[1].lower()
        value = m[2].rstrip(b" \t")
        slot = _SINGLE.get(name)
        if slot is None:
            vias.append(value)
        elif found[slot] is not None:
            return None  # a duplicate; let the parser judge it
        else:
            found[slot] = value
    from_, to, call_id, cseq = found
    if not vias or from_ is None or to is None or not call_id or cseq is None:
        return None
    if not cseq.endswith(b" OPTIONS"):  # §8.1.1.5: CSeq method = request method
        return None
    return RequestHead(b"OPTIONS", vias, from_, to, call_id, cseq)


_VIA_PARM_RE = re.compile(
    rb"[ \t]*(?P<proto>[^/ \t]+[ \t]*/[ \t]*[^/ \t]+[ \t]*/[ \t]*[^ \t;]+)[ \t]+"
    rb"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*(?P<port>[0-9]{1,5}))?"
    rb"(?P<params>.*)\Z",
    re.S,
)
_PARAM_RE = re.compile(
    rb'[ \t]*;[ \t]*([^;=, \t"]+)(?:[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;, \t"]*))?'
)


def answer_via(
    top: bytes, src_host: str, src_port: int, *, branch: bytes | None = None
) -> tuple[bytes, int] | None:
    """The top via-parm for the response and the UDP port to send it to; None if malformed.

    RFC 3261 §18.2.1: add `received` when sent-by is not the source address. RFC 3581 §4: a
    valueless `rport` gets the source port, `received` is then always added, and the reply
    goes to the source port; without it, to sent-by's port (§18.2.2). `branch` replaces the
    branch value (WRONG_BRANCH mode).
    """
    m = _VIA_PARM_RE.match(top)
    if m is None:
        return None
    params: list[tuple[bytes, bytes | None]] = []
    text = m["params"]
    pos = 0
    for pm in _PARAM_RE.finditer(text):
        if pm.start() != pos:
            return None
        pos = pm.end()
        params.append((pm[1], pm[2]))
    if text[pos:].strip(b" \t"):
        return None
    port_text = m["port"]
    if port_text is not None:
        sent_port = int(port_text)
        if not 0 < sent_port <= 65_535:
            return None
    else:
        tls = m["proto"].rsplit(b"/", 1)[-1].strip().upper() == b"TLS"
        sent_port = DEFAULT_SIPS_PORT if tls else DEFAULT_SIP_PORT
    source = src_host.encode()
    rport = False
    out = [m["proto"], b" ", m["host"]]
    if port_text is not None:
        out += [b":", port_text]
    for name, value in params:
        lname = name.lower()
        if lname == b"received":
            continue  # ours replaces it
        if lname == b"rport" and not value:
            rport = True
            value = str(src_port).encode()
        elif lname == b"branch" and branch is not None:
            value = branch
        out += [b";", name] if value is None else [b";", name, b"=", value]
    if rport or m["host"].strip(b"[]") != source:
        out += [b";received=", source]
    return b"".join(out), (src_port if rport else sent_port)


_TAG_RE = re.compile(rb";[ \t]*tag[ \t]*=", re.I)


def has_tag(name_addr: bytes) -> bool:
    """True if a From/To value carries a tag header param (not a URI param inside <>)."""
    close = name_addr.rfind(b">")
    return _TAG_RE.search(name_addr, close + 1 if close >= 0 else 0) is not None


def build_response(
    status: int,
    reason: bytes,
    via_lines: list[bytes],
    from_: bytes,
    to: bytes,
    call_id: bytes,
    cseq: bytes,
    trailer: bytes,
) -> bytes:
    """The reply's bytes; `trailer` holds the constant tail (Allow … Content-Length, CRLF)."""
    return b"".join(
        [
            b"SIP/2.0 %d %s\r\n" % (status, reason),
            *[b"Via: %s\r\n" % v for v in via_lines],
            b"From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n" % (from_, to, call_id, cseq),
            trailer,
        ]
    )


def truncate(reply: bytes) -> bytes:
    """`reply` cut in the middle of a header line: no empty line, no final CRLF (§7.5)."""
    cut = reply.find(b"\r\n\r\n") // 2
    while cut > 1 and reply[cut - 1 : cut] in (b"\r", b"\n"):
        cut -= 1
    return reply[:cut]


def pad(reply: bytes, size: int) -> bytes:
    """`reply` grown to exactly `size` bytes with X-Padding header lines before the empty line."""
    head_end = reply.find(b"\r\n\r\n") + 2
    missing = size - len(reply)
    lines: list[bytes] = []
    while missing > 0:
        prefix = b"X-Padding-%d: " % len(lines)
        overhead = len(prefix) + 2  # name, colon, space ... CRLF
        body = min(PADDING_LINE_BYTES, missing) - overhead
        rest = missing - overhead - body
        if 0 < rest <= overhead + 1:
            body += rest  # what would be left cannot hold a line of its own
        if body < 1:
            raise ValueError(f"cannot pad by {missing} bytes: less than one header line")
        lines.append(prefix + b"x" * body + b"\r\n")
        missing -= overhead + body
    return reply[:head_end] + b"".join(lines) + reply[head_end:]


def garbage(rng: random.Random) -> bytes:
    """Random bytes that no SIP parser accepts (they never start with a start line)."""
    data = bytearray(rng.randbytes(rng.randint(GARBAGE_MIN_BYTES, GARBAGE_MAX_BYTES)))
    data[0] = 0  # a NUL cannot begin a Request-Line or a Status-Line
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# The responder: state, counters and the asyncio shells.


@dataclass(slots=True)
class Answer:
    payload: bytes
    port: int  # UDP destination port (stream replies use the connection)
    other_port: bool = False
    close: bool = False  # stream: close the connection after writing


class SipResponder:
    """Answers OPTIONS on UDP and TCP (one port number for both); misbehaves on command."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        server_header: str = SERVER_HEADER,
        clock: Clock | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port = 0
        self.mode = ResponderMode.NORMAL
        self._status = 200
        self._reason: str | None = None
        self.received = 0  # datagrams and stream frames that arrived
        self.answered = 0  # replies sent (whatever the mode made of them)
        self.malformed = 0  # input that is not a SIP request we can answer; dropped
        self.dropped = 0  # requests not answered because of SILENT / silence_for
        self.ignored = 0  # ACKs, responses and CRLF keep-alives: nothing to answer
        self._clock = clock or SystemClock()
        self._silent_until_ns = 0
        self._rng = random.Random(seed)
        self._tag_prefix = b""
        self._counter = 0
        self._trailer = (
            b"Allow: " + ALLOW + b"\r\nAccept: " + ACCEPT + b"\r\nSupported: \r\n"
            b"Server: " + server_header.encode() + b"\r\nContent-Length: 0\r\n\r\n"
        )
        self._udp: asyncio.DatagramTransport | None = None
        self._other_udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.Transport] = set()
        self._open: set[asyncio.Future[None]] = set()  # one per transport until its socket closes

    # ---- configuration -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("SipResponder.port is known after start()")
        return self._port

    @property
    def status(self) -> int:
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        if not 100 <= value <= 699:  # §7.2: Status-Code is 3 digits, classes 1-6
            raise ValueError(f"SIP status must be 100-699, got {value}")
        self._status = value

    @property
    def reason(self) -> str:
        """The reason phrase for STATUS mode: as set, else the RFC 3261 §21 phrase."""
        return self._reason if self._reason is not None else reason_phrase(self._status)

    @reason.setter
    def reason(self, value: str) -> None:
        if "\r" in value or "\n" in value:
            raise ValueError("reason phrase must not contain CR or LF")
        self._reason = value

    def silence_for(self, seconds: float) -> None:
        """Drop everything for `seconds` from now, whatever the mode (the demo's outage)."""
        self._silent_until_ns = self._clock.monotonic_ns() + round(seconds * NS_PER_S)

    @property
    def silenced(self) -> bool:
        return self.mode is ResponderMode.SILENT or (
            self._silent_until_ns > 0 and self._clock.monotonic_ns() < self._silent_until_ns
        )

    # ---- the sans-I/O core -------------------------------------------------------------

    def respond(self, data: bytes, src_host: str, src_port: int, *, stream: bool) -> Answer | None:
        """What to send back for `data` from (src_host, src_port); None means stay silent."""
        self.received += 1
        if self.silenced:
            self.dropped += 1
            return None
        head = scan_request(data)
        if head is not None:
            mode = self.mode
            if mode is ResponderMode.NORMAL:  # the hot path: no parse, no mode dispatch
                via = answer_via(head.vias[0], src_host, src_port)
                if via is not None:
                    return self._finish(200, b"OK", via, head, head.vias[1:])
            return self._answer(head, src_host, src_port, stream)
        return self._slow(data, src_host, src_port, stream)

    def _slow(self, data: bytes, src_host: str, src_port: int, stream: bool) -> Answer | None:
        if not data.strip(b"\r\n"):
            self.ignored += 1  # CRLF keep-alive (RFC 5626 §3.5.1); nothing to answer
            return None
        try:
            msg = parse_message(data)
        except SipParseError:
            self.malformed += 1
            return None
        if not isinstance(msg, SipRequest) or msg.method == "ACK":
            self.ignored += 1  # responses are not ours to answer; ACK has no response (§17.2.1)
            return None
        h = msg.headers
        vias = [v.encode(_ENC, _ERRORS) for v in h.get_all("via")]
        fields = [h.get(n) for n in ("from", "to", "call-id", "cseq")]
        if not vias or any(f is None for f in fields):
            self.malformed += 1  # §8.1.1: mandatory headers; without a Via there is no route
            return None
        from_, to, call_id, cseq = (str(f).encode(_ENC, _ERRORS) for f in fields)
        head = RequestHead(msg.method.encode(), vias, from_, to, call_id, cseq)
        return self._answer(head, src_host, src_port, stream)

    def _answer(
        self, head: RequestHead, src_host: str, src_port: int, stream: bool
    ) -> Answer | None:
        mode = self.mode
        top, more = head.vias[0], head.vias[1:]
        if b"," in top:  # several via-parms on the first line (§7.3.1); only the top changes
            parms = [p.encode(_ENC, _ERRORS) for p in split_list(top.decode(_ENC, _ERRORS))]
            if not parms:
                self.malformed += 1
                return None
            top, more = parms[0], parms[1:] + more
        branch = None
        if mode is ResponderMode.WRONG_BRANCH:
            self._counter += 1
            branch = b"z9hG4bK-wrong-%x" % self._counter
        via = answer_via(top, src_host, src_port, branch=branch)
        if via is None:
            self.malformed += 1
            return None
        if mode is ResponderMode.STATUS:
            status, reason = self._status, self.reason.encode()
        elif head.method == b"OPTIONS":
            status, reason = 200, b"OK"
        else:
            status, reason = 405, b"Method Not Allowed"
        if mode is ResponderMode.WRONG_CALL_ID:
            head.call_id = b"wrong-" + head.call_id
        answer = self._finish(status, reason, via, head, more)
        if mode is ResponderMode.GARBAGE:
            answer.payload = garbage(self._rng)
        elif mode is ResponderMode.TRUNCATED:
            answer.payload = truncate(answer.payload)
            answer.close = stream  # the rest never comes: end the stream mid-message
        elif mode is ResponderMode.OVERSIZED:
            answer.payload = pad(
                answer.payload, OVERSIZED_TCP_BYTES if stream else OVERSIZED_UDP_BYTES
            )
        elif mode is ResponderMode.OTHER_PORT:
            answer.other_port = not stream  # a stream reply always uses its connection
        return answer

    def _finish(
        self,
        status: int,
        reason: bytes,
        via: tuple[bytes, int],
        head: RequestHead,
        more: list[bytes],
    ) -> Answer:
        to = head.to
        if status != 100 and not has_tag(to):  # §8.2.6.2: a tag, except on 100 Trying
            self._counter += 1
            to = b"%s;tag=%s%x" % (to, self._tag_prefix, self._counter)
        payload = build_response(
            status, reason, [via[0], *more], head.from_, to, head.call_id, head.cseq, self._trailer
        )
        self.answered += 1
        return Answer(payload, via[1])

    # ---- I/O ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind UDP and TCP on one port (port 0: one that is free for both) and serve.

        After stop(), start() binds the same port again: a restart, as a real outage looks.
        """
        if self._udp is not None:
            return
        loop = asyncio.get_running_loop()
        self._tag_prefix = new_tag().encode() + b"-"
        family = socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
        udp, tcp = _bind_pair(family, self.host, self._port or self._requested_port)
        self._port = udp.getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=udp)
        other = socket.socket(family, socket.SOCK_DGRAM)
        other.bind((self.host, 0))
        self._other_udp, _ = await loop.create_datagram_endpoint(
            lambda: _SendOnlyProtocol(self), sock=other
        )
        self._server = await loop.create_server(lambda: _StreamProtocol(self), sock=tcp)
        log.info("responder_started", host=self.host, port=self._port)

    async def stop(self) -> None:
        for transport in (self._udp, self._other_udp):
            if transport is not None:
                transport.close()
        self._udp = self._other_udp = None
        for stream in list(self._streams):
            stream.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # Transports close their sockets a loop iteration later: wait, so the port is really
        # free (and a datagram sent now is refused) when stop() returns.
        if self._open:
            await asyncio.wait(list(self._open), timeout=STOP_TIMEOUT_S)
        log.info(
            "responder_stopped",
            port=self._port,
            received=self.received,
            answered=self.answered,
            malformed=self.malformed,
            dropped=self.dropped,
        )

    def _send_udp(self, answer: Answer, host: str) -> None:
        transport = self._other_udp if answer.other_port else self._udp
        if transport is not None:
            transport.sendto(answer.payload, (host, answer.port))


def _bind_pair(
    family: socket.AddressFamily, host: str, port: int
) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on the same port number."""
    attempts = BIND_ATTEMPTS if port == 0 else 1
    last: OSError | None = None
    for _ in range(attempts):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(OSError):  # capped by net.core.rmem_max; best effort
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(128)
        except OSError as exc:
            udp.close()
            tcp.close()
            last = exc
            continue
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp
    raise OSError(f"cannot bind UDP and TCP on {host}:{port}: {last}")


class _Tracked:
    """Registers with the responder until connection_lost, so stop() can wait for the close."""

    def __init__(self, responder: SipResponder) -> None:
        self.responder = responder
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        responder._open.add(self.closed)

    def connection_lost(self, exc: Exception | None) -> None:
        self.responder._open.discard(self.closed)
        if not self.closed.done():
            self.closed.set_result(None)


class _SendOnlyProtocol(_Tracked, asyncio.DatagramProtocol):
    """The OTHER_PORT socket: it only sends."""


class _UdpProtocol(_Tracked, asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        host = str(addr[0])
        answer = self.responder.respond(data, host, addr[1], stream=False)
        if answer is not None:
            self.responder._send_udp(answer, host)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an earlier reply: the prober went away; nothing to do.
        log.debug("responder_udp_error", error=str(exc))


class _StreamProtocol(_Tracked, asyncio.Protocol):
    def __init__(self, responder: SipResponder) -> None:
        super().__init__(responder)
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport is no asyncio.Transport subclass.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        self.responder._streams.add(self.transport)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        try:
            frames = self.framer.feed(data)
        except SipParseError:
            # The stream lost its framing; nothing after this can be trusted (§18.3).
            self.responder.received += 1
            self.responder.malformed += 1
            transport.abort()
            return
        for frame in frames:
            answer = self.responder.respond(frame, self.peer[0], self.peer[1], stream=True)
            if answer is None:
                continue
            transport.write(answer.payload)
            if answer.close:
                transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.responder._streams.discard(self.transport)
        self.transport = None
        super().connection_lost(exc)


async def run_responder(host: str, port: int, stop_event: asyncio.Event) -> None:
    """Serve NORMAL answers on host:port (UDP and TCP) until `stop_event` is set."""
    responder = SipResponder(host, port)
    await responder.start()
    try:
        await stop_event.wait()
    finally:
        await responder.stop()
