"""The built-in responder, driven with plain sockets and hand-written requests (no Kamailio)."""

from __future__ import annotations

import asyncio
import errno
import random
import re
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from peers import free_port_both

from probes.clock import FakeClock
from probes.responder import (
    OVERSIZED_TCP_BYTES,
    OVERSIZED_UDP_BYTES,
    ResponderMode,
    SipResponder,
    answer_via,
    garbage,
    has_tag,
    pad,
    run_responder,
    scan_request,
    truncate,
)
from probes.sip.errors import SipParseError
from probes.sip.framing import StreamFramer
from probes.sip.limits import MAX_HEADER_BYTES, MAX_HEADER_LINE, MAX_MESSAGE_BYTES
from probes.sip.message import SipResponse, parse_message, transaction_key

HOST = "127.0.0.1"
REPLY_WAIT_S = 2.0  # generous for a loaded 2-core box; only failures wait this long
SILENCE_WAIT_S = 0.2  # how long "no reply" is watched for


@dataclass
class Sent:
    data: bytes
    branch: str
    call_id: str


def request(
    local_port: int,
    *,
    method: str = "OPTIONS",
    transport: str = "UDP",
    host: str = HOST,
    via_params: str = ";rport",
    extra_vias: tuple[str, ...] = (),
    to_tag: str | None = None,
    compact: bool = False,
) -> Sent:
    """A hand-written request the way a prober writes it (RFC 3261 §8.1.1)."""
    branch = "z9hG4bK" + secrets.token_hex(6)
    call_id = secrets.token_hex(8) + "@" + host
    sent_by = f"[{host}]" if ":" in host else host
    names = ("v", "f", "t", "i") if compact else ("Via", "From", "To", "Call-ID")
    to = f"<sip:{sent_by}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:{sent_by};transport={transport.lower()} SIP/2.0",
        f"{names[0]}: SIP/2.0/{transport} {sent_by}:{local_port};branch={branch}{via_params}",
        *[f"Via: {v}" for v in extra_vias],
        "Max-Forwards: 70",
        f"{names[1]}: <sip:probe@{sent_by}>;tag=fromtag1",
        f"{names[2]}: {to}",
        f"{names[3]}: {call_id}",
        f"CSeq: 7 {method}",
        "Content-Length: 0",
        "",
        "",
    ]
    return Sent("\r\n".join(lines).encode(), branch, call_id)


def header_values(reply: bytes, name: str) -> list[str]:
    head = reply.split(b"\r\n\r\n", 1)[0].decode()
    return [
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")[1:]
        if line.split(":", 1)[0].strip().lower() == name.lower()
    ]


@pytest.fixture
async def responder() -> AsyncIterator[SipResponder]:
    resp = SipResponder(HOST, 0, seed=7)
    await resp.start()
    try:
        yield resp
    finally:
        await resp.stop()


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind((HOST, 0))
        yield sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


async def exchange(
    sock: socket.socket, data: bytes, port: int, wait: float = REPLY_WAIT_S
) -> tuple[bytes, tuple[str, int]] | None:
    """Send one datagram to the responder and return the first reply and its source, or None."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, data, (HOST, port))
    try:
        reply, src = await asyncio.wait_for(loop.sock_recvfrom(sock, 70_000), wait)
    except TimeoutError:
        return None
    return reply, (src[0], src[1])


async def reply_to(
    sock: socket.socket, sent: Sent, responder: SipResponder, wait: float = REPLY_WAIT_S
) -> bytes | None:
    got = await exchange(sock, sent.data, responder.port, wait)
    return None if got is None else got[0]


# ---- NORMAL over UDP ---------------------------------------------------------------------


async def test_normal_reply_copies_the_request_and_adds_rport(
    responder: SipResponder, udp: socket.socket
) -> None:
    sent = request(port_of(udp))
    got = await exchange(udp, sent.data, responder.port)
    assert got is not None
    reply, source = got
    assert source == (HOST, responder.port)
    msg = parse_message(reply)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (200, "OK")
    assert transaction_key(msg) == (sent.branch, "OPTIONS", sent.call_id)
    local = port_of(udp)
    assert msg.headers.get_all("via") == [
        f"SIP/2.0/UDP {HOST}:{local};branch={sent.branch};rport={local};received={HOST}"
    ]
    assert msg.headers.get("from") == f"<sip:probe@{HOST}>;tag=fromtag1"
    to = msg.headers.get("to")
    assert to is not None and re.fullmatch(rf"<sip:{HOST}>;tag=[^;]+", to)
    assert msg.headers.get("cseq") == "7 OPTIONS"
    assert msg.headers.get("allow") == "OPTIONS"
    assert msg.headers.get("accept") == "application/sdp"
    assert msg.headers.get("supported") == ""
    assert msg.headers.get("server") == "trunkwatch-responder"
    assert msg.headers.get("content-length") == "0"
    assert msg.body == b""
    assert (responder.received, responder.answered, responder.malformed) == (1, 1, 0)


async def test_each_reply_gets_its_own_to_tag(responder: SipResponder, udp: socket.socket) -> None:
    tags = set()
    for _ in range(3):
        reply = await reply_to(udp, request(port_of(udp)), responder)
        assert reply is not None
        tags.add(header_values(reply, "to")[0])
    assert len(tags) == 3


async def test_an_existing_to_tag_is_kept(responder: SipResponder, udp: socket.socket) -> None:
    reply = await reply_to(udp, request(port_of(udp), to_tag="abc"), responder)
    assert reply is not None
    assert header_values(reply, "to") == [f"<sip:{HOST}>;tag=abc"]


async def test_all_vias_are_copied_in_order_and_only_the_top_one_changes(
    responder: SipResponder, udp: socket.socket
) -> None:
    lower = (
        "SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKlower1",
        "SIP/2.0/TCP 10.0.0.3;branch=z9hG4bKlow2",
    )
    for sent in (
        request(port_of(udp), extra_vias=lower),
        # The same three via-parms, but the first line holds two of them (§7.3.1).
        request(port_of(udp), via_params=";rport, " + lower[0], extra_vias=lower[1:]),
    ):
        reply = await reply_to(udp, sent, responder)
        assert reply is not None
        msg = parse_message(reply)
        vias = msg.headers.get_all("via")
        assert vias[1:] == list(lower)
        assert vias[0].endswith(f";rport={port_of(udp)};received={HOST}")


async def test_compact_and_folded_headers_take_the_full_parser(
    responder: SipResponder, udp: socket.socket
) -> None:
    compact = request(port_of(udp), compact=True)
    folded_sent = request(port_of(udp))
    folded = Sent(
        folded_sent.data.replace(b"CSeq: 7 OPTIONS", b"CSeq: 7\r\n OPTIONS"),
        folded_sent.branch,
        folded_sent.call_id,
    )
    assert scan_request(folded.data) is None  # the parser, not the fast path, answers it
    for sent in (compact, folded):
        reply = await reply_to(udp, sent, responder)
        assert reply is not None
        msg = parse_message(reply)
        assert isinstance(msg, SipResponse) and msg.status == 200
        assert transaction_key(msg) == (sent.branch, "OPTIONS", sent.call_id)


async def test_without_rport_the_reply_goes_to_the_sent_by_port(
    responder: SipResponder, udp: socket.socket
) -> None:
    """RFC 3261 §18.2.2: no rport → the port in sent-by, not the source port."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.setblocking(False)
        listener.bind((HOST, 0))
        sent = request(port_of(listener), via_params="")
        await loop.sock_sendto(udp, sent.data, (HOST, responder.port))
        reply = await asyncio.wait_for(loop.sock_recv(listener, 70_000), REPLY_WAIT_S)
        listener_port = port_of(listener)
    # Same host as the source: no received (§18.2.1).
    assert header_values(reply, "via") == [
        f"SIP/2.0/UDP {HOST}:{listener_port};branch={sent.branch}"
    ]


async def test_other_methods_get_405_with_allow(
    responder: SipResponder, udp: socket.socket
) -> None:
    reply = await reply_to(udp, request(port_of(udp), method="INFO"), responder)
    assert reply is not None
    assert reply.startswith(b"SIP/2.0 405 Method Not Allowed\r\n")
    assert header_values(reply, "allow") == ["OPTIONS"]


@pytest.mark.parametrize(
    ("data", "counter"),
    [
        (b"hello", "malformed"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "malformed"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "malformed"),  # a TLS ClientHello
        # No Via: no route back.
        (
            b"OPTIONS sip:a SIP/2.0\r\nFrom: <sip:b>;tag=1\r\nTo: <sip:a>\r\nCall-ID: x\r\n"
            b"CSeq: 1 OPTIONS\r\n\r\n",
            "malformed",
        ),
        # CSeq method differs from the request's (§8.1.1.5).
        (
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1\r\n"
            b"From: <sip:b>;tag=1\r\nTo: <sip:a>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
            "malformed",
        ),
        # A response: not ours to answer.
        (
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1\r\nFrom: <sip:b>;tag=1"
            b"\r\nTo: <sip:a>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
            "ignored",
        ),
        (b"\r\n\r\n", "ignored"),  # RFC 5626 keep-alive
    ],
)
async def test_what_is_not_an_answerable_request_gets_no_reply(
    responder: SipResponder, udp: socket.socket, data: bytes, counter: str
) -> None:
    assert await exchange(udp, data, responder.port, SILENCE_WAIT_S) is None
    assert getattr(responder, counter) == 1
    assert responder.answered == 0
    # ...and the responder still answers the next request.
    assert await reply_to(udp, request(port_of(udp)), responder) is not None


async def test_ack_gets_no_reply(responder: SipResponder, udp: socket.socket) -> None:
    assert (
        await reply_to(udp, request(port_of(udp), method="ACK"), responder, SILENCE_WAIT_S) is None
    )
    assert responder.ignored == 1


# ---- the modes over UDP ------------------------------------------------------------------


async def test_silent_drops_everything(responder: SipResponder, udp: socket.socket) -> None:
    responder.mode = ResponderMode.SILENT
    assert await reply_to(udp, request(port_of(udp)), responder, SILENCE_WAIT_S) is None
    assert (responder.received, responder.dropped, responder.answered) == (1, 1, 0)
    responder.mode = ResponderMode.NORMAL
    assert await reply_to(udp, request(port_of(udp)), responder) is not None


async def test_silence_for_ends_by_itself(responder: SipResponder, udp: socket.socket) -> None:
    responder.silence_for(0.3)
    assert responder.silenced
    assert await reply_to(udp, request(port_of(udp)), responder, SILENCE_WAIT_S) is None
    await asyncio.sleep(0.15)
    assert not responder.silenced
    assert await reply_to(udp, request(port_of(udp)), responder) is not None
    assert responder.mode is ResponderMode.NORMAL  # the mode itself never changed


def test_silence_for_follows_the_clock() -> None:
    clock = FakeClock()
    resp = SipResponder(HOST, 0, clock=clock)
    data = request(5062).data
    resp.silence_for(20)
    assert resp.respond(data, HOST, 5062, stream=False) is None
    clock.advance(19.9)
    assert resp.respond(data, HOST, 5062, stream=False) is None
    clock.advance(0.2)
    answer = resp.respond(data, HOST, 5062, stream=False)
    assert answer is not None and answer.payload.startswith(b"SIP/2.0 200 OK\r\n")
    assert (resp.dropped, resp.answered) == (2, 1)


@pytest.mark.parametrize(
    ("status", "reason", "line"),
    [
        (503, None, b"SIP/2.0 503 Service Unavailable\r\n"),
        (404, None, b"SIP/2.0 404 Not Found\r\n"),
        (483, "Hops", b"SIP/2.0 483 Hops\r\n"),
        (599, None, b"SIP/2.0 599 Server Error\r\n"),  # unknown code: its class's phrase
        (200, None, b"SIP/2.0 200 OK\r\n"),
    ],
)
async def test_status_mode_replies_with_the_configured_status(
    responder: SipResponder, udp: socket.socket, status: int, reason: str | None, line: bytes
) -> None:
    responder.mode = ResponderMode.STATUS
    responder.status = status
    if reason is not None:
        responder.reason = reason
    sent = request(port_of(udp))
    reply = await reply_to(udp, sent, responder)
    assert reply is not None and reply.startswith(line)
    msg = parse_message(reply)
    assert isinstance(msg, SipResponse)
    assert transaction_key(msg) == (sent.branch, "OPTIONS", sent.call_id)


def test_status_and_reason_are_validated() -> None:
    resp = SipResponder()
    with pytest.raises(ValueError, match="100-699"):
        resp.status = 700
    with pytest.raises(ValueError, match="CR or LF"):
        resp.reason = "OK\r\nX-Injected: 1"
    assert resp.status == 200


async def test_garbage_is_not_sip(responder: SipResponder, udp: socket.socket) -> None:
    responder.mode = ResponderMode.GARBAGE
    replies = []
    for _ in range(5):
        reply = await reply_to(udp, request(port_of(udp)), responder)
        assert reply is not None
        with pytest.raises(SipParseError):
            parse_message(reply)
        replies.append(reply)
    assert len(set(replies)) == 5  # random, not one canned string


async def test_truncated_stops_inside_the_headers(
    responder: SipResponder, udp: socket.socket
) -> None:
    responder.mode = ResponderMode.TRUNCATED
    reply = await reply_to(udp, request(port_of(udp)), responder)
    assert reply is not None
    assert reply.startswith(b"SIP/2.0 200 OK\r\nVia: ")
    assert b"\r\n\r\n" not in reply and not reply.endswith(b"\r\n")
    with pytest.raises(SipParseError):
        parse_message(reply)


@pytest.mark.parametrize("mode", [ResponderMode.WRONG_BRANCH, ResponderMode.WRONG_CALL_ID])
async def test_wrong_ids_parse_but_do_not_match(
    responder: SipResponder, udp: socket.socket, mode: ResponderMode
) -> None:
    responder.mode = mode
    sent = request(port_of(udp))
    reply = await reply_to(udp, sent, responder)
    assert reply is not None
    msg = parse_message(reply)
    assert isinstance(msg, SipResponse) and msg.status == 200
    key = transaction_key(msg)
    assert key is not None
    branch, method, call_id = key
    assert method == "OPTIONS"
    if mode is ResponderMode.WRONG_BRANCH:
        assert branch != sent.branch and branch.startswith("z9hG4bK")
        assert call_id == sent.call_id
    else:
        assert branch == sent.branch
        assert call_id != sent.call_id


async def test_oversized_fills_a_datagram_beyond_the_parser_limits(
    responder: SipResponder, udp: socket.socket
) -> None:
    responder.mode = ResponderMode.OVERSIZED
    reply = await reply_to(udp, request(port_of(udp)), responder)
    assert reply is not None
    assert len(reply) == OVERSIZED_UDP_BYTES
    assert reply.find(b"\r\n\r\n") > MAX_HEADER_BYTES
    with pytest.raises(SipParseError):
        parse_message(reply)
    # Nothing but the size is wrong: with the padding removed it is a normal reply.
    unpadded = re.sub(rb"X-Padding-\d+: x+\r\n", b"", reply)
    assert isinstance(parse_message(unpadded), SipResponse)


async def test_other_port_sends_a_good_reply_from_elsewhere(
    responder: SipResponder, udp: socket.socket
) -> None:
    responder.mode = ResponderMode.OTHER_PORT
    sent = request(port_of(udp))
    got = await exchange(udp, sent.data, responder.port)
    assert got is not None
    reply, (src_host, src_port) = got
    assert src_host == HOST and src_port != responder.port
    msg = parse_message(reply)
    assert isinstance(msg, SipResponse)
    assert transaction_key(msg) == (sent.branch, "OPTIONS", sent.call_id)


# ---- TCP ---------------------------------------------------------------------------------


async def tcp_replies(port: int, data: bytes, count: int, chunk: int | None = None) -> list[bytes]:
    """Write `data` (optionally `chunk` bytes at a time) and read `count` framed replies."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        if chunk is None:
            writer.write(data)
        else:
            for i in range(0, len(data), chunk):
                writer.write(data[i : i + chunk])
                await writer.drain()
        framer = StreamFramer()
        frames: list[bytes] = []
        while len(frames) < count:
            more = await asyncio.wait_for(reader.read(65_536), REPLY_WAIT_S)
            if not more:
                break
            frames += framer.feed(more)
        return frames
    finally:
        writer.close()


async def test_tcp_pipelined_and_byte_by_byte(responder: SipResponder) -> None:
    first = request(9, transport="TCP")
    second = request(9, transport="TCP")
    for chunk in (None, 1):
        replies = await tcp_replies(responder.port, first.data + second.data, 2, chunk)
        keys = [
            transaction_key(m) for m in map(parse_message, replies) if isinstance(m, SipResponse)
        ]
        assert keys == [
            (first.branch, "OPTIONS", first.call_id),
            (second.branch, "OPTIONS", second.call_id),
        ]
        # rport names the connection's source port, whatever sent-by said (RFC 3581 §4).
        assert re.search(rb";rport=(\d+);received=127\.0\.0\.1", replies[0])


async def test_tcp_status_mode(responder: SipResponder) -> None:
    responder.mode = ResponderMode.STATUS
    responder.status = 503
    [reply] = await tcp_replies(responder.port, request(9, transport="TCP").data, 1)
    assert reply.startswith(b"SIP/2.0 503 Service Unavailable\r\n")


async def test_tcp_truncated_ends_the_connection_mid_message(responder: SipResponder) -> None:
    responder.mode = ResponderMode.TRUNCATED
    reader, writer = await asyncio.open_connection(HOST, responder.port)
    try:
        writer.write(request(9, transport="TCP").data)
        data = await asyncio.wait_for(reader.read(), REPLY_WAIT_S)  # read() = until EOF
    finally:
        writer.close()
    assert data.startswith(b"SIP/2.0 200 OK\r\n")
    assert b"\r\n\r\n" not in data


async def test_tcp_oversized_breaks_the_stream_limit(responder: SipResponder) -> None:
    responder.mode = ResponderMode.OVERSIZED
    reader, writer = await asyncio.open_connection(HOST, responder.port)
    try:
        writer.write(request(9, transport="TCP").data)
        data = await asyncio.wait_for(reader.readexactly(OVERSIZED_TCP_BYTES), REPLY_WAIT_S)
    finally:
        writer.close()
    assert len(data) == OVERSIZED_TCP_BYTES > MAX_MESSAGE_BYTES
    with pytest.raises(SipParseError):
        StreamFramer().feed(data)


async def test_tcp_garbage_input_closes_the_connection(responder: SipResponder) -> None:
    reader, writer = await asyncio.open_connection(HOST, responder.port)
    try:
        writer.write(b"\x00\x01 this is not SIP at all\r\n\r\n" * 4)
        data = await asyncio.wait_for(reader.read(), REPLY_WAIT_S)
    except ConnectionResetError:
        data = b""
    finally:
        writer.close()
    assert data == b""
    assert responder.malformed >= 1
    assert responder.answered == 0


# ---- lifecycle ---------------------------------------------------------------------------


def bind_fails(kind: int, port: int, family: int = socket.AF_INET, host: str = HOST) -> bool:
    with socket.socket(family, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


async def test_port_zero_binds_udp_and_tcp_on_one_port(responder: SipResponder) -> None:
    assert bind_fails(socket.SOCK_DGRAM, responder.port)
    assert bind_fails(socket.SOCK_STREAM, responder.port)


async def test_stop_releases_the_port() -> None:
    resp = SipResponder(HOST, 0)
    await resp.start()
    port = resp.port
    reader, writer = await asyncio.open_connection(HOST, port)  # an open stream is closed too
    await resp.stop()
    assert await asyncio.wait_for(reader.read(), REPLY_WAIT_S) == b""
    writer.close()
    assert not bind_fails(socket.SOCK_DGRAM, port)


async def test_stop_then_start_is_a_restart_on_the_same_port(
    responder: SipResponder, udp: socket.socket
) -> None:
    port = responder.port
    await responder.stop()
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as connected:
        connected.setblocking(False)
        connected.connect((HOST, port))  # a connected socket reports the ICMP refusal
        await loop.sock_sendall(connected, request(port_of(connected)).data)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(loop.sock_recv(connected, 70_000), REPLY_WAIT_S)
    await responder.start()
    assert responder.port == port
    assert await reply_to(udp, request(port_of(udp)), responder) is not None


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6 or bind_fails(socket.SOCK_DGRAM, 0, socket.AF_INET6, "::1"):
        pytest.skip("no IPv6 loopback")
    resp = SipResponder("::1", 0)
    await resp.start()
    loop = asyncio.get_running_loop()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind(("::1", 0))
            sent = request(port_of(sock), host="::1")
            await loop.sock_sendto(sock, sent.data, ("::1", resp.port))
            reply = await asyncio.wait_for(loop.sock_recv(sock, 70_000), REPLY_WAIT_S)
            local_port = port_of(sock)
    finally:
        await resp.stop()
    assert header_values(reply, "via")[0].endswith(f";rport={local_port};received=::1")


def test_under_uvloop() -> None:
    """`trunkwatch demo`/`responder` run on uvloop, whose transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[bytes, bytes]:
        resp = SipResponder(HOST, 0)
        await resp.start()
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):  # uvloop has no loop.sock_sendto/recvfrom
            def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
                if not reply.done():
                    reply.set_result(data)

        try:
            transport, _ = await loop.create_datagram_endpoint(
                Client, local_addr=(HOST, 0), remote_addr=(HOST, resp.port)
            )
            try:
                transport.sendto(request(transport.get_extra_info("sockname")[1]).data)
                udp = await asyncio.wait_for(reply, REPLY_WAIT_S)
            finally:
                transport.close()
            [tcp] = await tcp_replies(resp.port, request(9, transport="TCP").data, 1)
        finally:
            await resp.stop()
        return udp, tcp

    udp_reply, tcp_reply = uvloop.run(main())
    assert udp_reply.startswith(b"SIP/2.0 200 OK\r\n")
    assert tcp_reply.startswith(b"SIP/2.0 200 OK\r\n")


async def test_run_responder_serves_until_stopped(udp: socket.socket) -> None:
    port = free_port_both()
    stop = asyncio.Event()
    task = asyncio.create_task(run_responder(HOST, port, stop))
    try:
        got = None
        for _ in range(20):  # it binds as soon as the task runs
            got = await exchange(udp, request(port_of(udp)).data, port, 0.1)
            if got is not None:
                break
        assert got is not None and got[0].startswith(b"SIP/2.0 200 OK\r\n")
    finally:
        stop.set()
        await asyncio.wait_for(task, REPLY_WAIT_S)
    assert not bind_fails(socket.SOCK_STREAM, port)


# ---- the pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("via", "expected", "reply_port"),
    [
        # RFC 3581 §4 example shape: rport filled in, received always added.
        (b"SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKx",
         b"SIP/2.0/UDP 10.1.1.1:4540;rport=9988;branch=z9hG4bKx;received=192.0.2.1", 9988),
        # No rport, sent-by differs from the source: received only, reply to sent-by's port.
        (b"SIP/2.0/UDP 10.1.1.1:4540;branch=z9hG4bKx",
         b"SIP/2.0/UDP 10.1.1.1:4540;branch=z9hG4bKx;received=192.0.2.1", 4540),
        # No port in sent-by: 5060 (§18.2.2); 5061 for TLS.
        (b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx", b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx", 5060),
        (b"SIP/2.0/TLS 192.0.2.1;branch=z9hG4bKx", b"SIP/2.0/TLS 192.0.2.1;branch=z9hG4bKx", 5061),
        # A hostname sent-by, LWS around the slashes and a stale received from the client.
        (b"SIP / 2.0 / UDP pc.example.com ; branch = z9hG4bKx ;received=1.2.3.4 ;rport",
         b"SIP / 2.0 / UDP pc.example.com;branch=z9hG4bKx;rport=9988;received=192.0.2.1", 9988),
        # Quoted values and an already filled-in rport are kept.
        (b'SIP/2.0/UDP 192.0.2.1:5062;rport=1;x="a;b";branch=z9hG4bKx',
         b'SIP/2.0/UDP 192.0.2.1:5062;rport=1;x="a;b";branch=z9hG4bKx', 5062),
        (b"SIP/2.0/UDP 192.0.2.1:99999;branch=z9hG4bKx", None, 0),  # port out of range
        (b"SIP/2.0/UDP;branch=z9hG4bKx", None, 0),  # no sent-by
        (b"garbage", None, 0),
    ],
)  # fmt: skip
def test_answer_via(via: bytes, expected: bytes | None, reply_port: int) -> None:
    got = answer_via(via, "192.0.2.1", 9988)
    if expected is None:
        assert got is None
    else:
        assert got == (expected, reply_port)


def test_answer_via_wrong_branch() -> None:
    got = answer_via(
        b"SIP/2.0/UDP 1.2.3.4:5;branch=z9hG4bKa;rport", "1.2.3.4", 5, branch=b"z9hG4bKb"
    )
    assert got == (b"SIP/2.0/UDP 1.2.3.4:5;branch=z9hG4bKb;rport=5;received=1.2.3.4", 5)


@pytest.mark.parametrize(
    ("value", "tagged"),
    [
        (b"<sip:a@b>;tag=1", True),
        (b"<sip:a@b> ; TAG = 1", True),
        (b"sip:a@b;tag=1", True),
        (b"<sip:a@b;tag=1>", False),  # a URI parameter, not the header's tag
        (b'"x;tag=y" <sip:a@b>', False),
        (b"<sip:a@b>;tagx=1", False),
    ],
)
def test_has_tag(value: bytes, tagged: bool) -> None:
    assert has_tag(value) is tagged


@pytest.mark.parametrize(
    "size", [66, 200, 1_001, 1_002, 1_012, 1_016, 1_050, 5_000, OVERSIZED_UDP_BYTES]
)
def test_pad_reaches_the_exact_size_with_valid_lines(size: int) -> None:
    # Sizes around the 1,000-byte line length probe the "remainder too small" rule.
    base = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"
    padded = pad(base, size)
    assert len(padded) == size
    assert padded.startswith(base[:-2] + b"X-Padding-0: x")
    assert padded.endswith(b"x\r\n\r\n")
    assert max(map(len, padded.split(b"\r\n"))) < MAX_HEADER_LINE
    assert re.sub(rb"X-Padding-\d+: x+\r\n", b"", padded) == base


def test_pad_refuses_less_than_a_line() -> None:
    with pytest.raises(ValueError, match="less than one header line"):
        pad(b"SIP/2.0 200 OK\r\n\r\n", 25)


def test_truncate_and_garbage_never_look_complete() -> None:
    rng = random.Random(1)
    reply = SipResponder().respond(request(5062).data, HOST, 5062, stream=False)
    assert reply is not None
    cut = truncate(reply.payload)
    assert reply.payload.startswith(cut) and 0 < len(cut) < len(reply.payload) // 2 + 1
    assert not cut.endswith((b"\r", b"\n"))
    for _ in range(50):
        junk = garbage(rng)
        with pytest.raises(SipParseError):
            parse_message(junk)
