"""ICMP echo messages (RFC 792, RFC 4443 §4), the RFC 1071 checksum and a round's summary."""

from __future__ import annotations

import struct

import pytest

from probes.icmp.echo import (
    EchoReply,
    checksum,
    echo_request,
    parse_echo_reply,
    summarize,
)


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum (end-around carry) to ddf2.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == ~0xDDF2 & 0xFFFF
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF  # odd length: padded with a zero byte


def test_v4_request_checksums_to_zero() -> None:
    msg = echo_request(v6=False, seq=70000, token=0xDEADBEEF)
    kind, code, _, ident, seq = struct.unpack_from("!BBHHH", msg)
    assert (kind, code, ident, seq) == (8, 0, 0, 70000 % 65536)
    assert checksum(msg) == 0  # a correct checksum makes the whole message sum to 0


def test_v6_request_leaves_the_checksum_to_the_kernel() -> None:
    msg = echo_request(v6=True, seq=1, token=7)
    assert msg[:4] == bytes([128, 0, 0, 0]) and msg[6:8] == b"\x00\x01"


@pytest.mark.parametrize("v6", [False, True])
def test_reply_round_trip(v6: bool) -> None:
    request = bytearray(echo_request(v6=v6, seq=5, token=99))
    request[0] = 129 if v6 else 0  # the peer turns the request into a reply
    assert parse_echo_reply(bytes(request), v6=v6) == EchoReply(5, 99)
    assert parse_echo_reply(bytes(request), v6=not v6) is None  # wrong family's type
    assert parse_echo_reply(bytes(request[:10]), v6=v6) is None  # short
    request[1] = 1
    assert parse_echo_reply(bytes(request), v6=v6) is None  # non-zero code


def test_summary() -> None:
    s = summarize(4, [1_000_000, 3_000_000])
    assert (s.sent, s.received, s.loss_ratio) == (4, 2, 0.5)
    assert (s.rtt_min_s, s.rtt_avg_s, s.rtt_max_s) == (0.001, 0.002, 0.003)
    lost = summarize(3, [])
    assert lost.loss_ratio == 1.0 and lost.rtt_avg_s is None
    with pytest.raises(ValueError):
        summarize(0, [])
