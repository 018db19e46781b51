"""ICMP and ICMPv6 echo messages (RFC 792, RFC 4443 §4) and a round of echoes' summary.
Sans-I/O: bytes and nanoseconds in, values out.

On a Linux datagram ICMP socket ("ping socket") the kernel owns the identifier (it is the
socket's local port) and delivers only replies carrying it, without the IP header: what
arrives here starts at the ICMP type byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

ECHO_REQUEST_V4: Final = 8
ECHO_REPLY_V4: Final = 0
ECHO_REQUEST_V6: Final = 128
ECHO_REPLY_V6: Final = 129
_HEADER: Final = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
# Payload: a per-probe token, so a late reply to an earlier round is not counted in this one.
_TOKEN: Final = struct.Struct("!Q")
SEQ_MODULO: Final = 1 << 16


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (ones' complement sum of 16-bit words)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(*, v6: bool, seq: int, token: int) -> bytes:
    """An echo request. The identifier is 0 (the kernel sets it); the ICMPv4 checksum is
    computed (the kernel recomputes it); ICMPv6's covers a pseudo-header the kernel fills."""
    payload = _TOKEN.pack(token)
    kind = ECHO_REQUEST_V6 if v6 else ECHO_REQUEST_V4
    unsummed = _HEADER.pack(kind, 0, 0, 0, seq % SEQ_MODULO) + payload
    if v6:
        return unsummed
    return _HEADER.pack(kind, 0, checksum(unsummed), 0, seq % SEQ_MODULO) + payload


@dataclass(frozen=True, slots=True)
class EchoReply:
    seq: int
    token: int


def parse_echo_reply(data: bytes, *, v6: bool) -> EchoReply | None:
    """The reply's sequence and token; None for anything else (other types, short, foreign)."""
    if len(data) < _HEADER.size + _TOKEN.size:
        return None
    kind, code, _sum, _ident, seq = _HEADER.unpack_from(data)
    if kind != (ECHO_REPLY_V6 if v6 else ECHO_REPLY_V4) or code != 0:
        return None
    (token,) = _TOKEN.unpack_from(data, _HEADER.size)
    return EchoReply(seq, token)


@dataclass(frozen=True, slots=True)
class EchoSummary:
    sent: int
    received: int
    loss_ratio: float
    rtt_min_s: float | None
    rtt_avg_s: float | None
    rtt_max_s: float | None


def summarize(sent: int, rtts_ns: Sequence[int]) -> EchoSummary:
    """Loss and round-trip figures of one round: `rtts_ns` has one entry per reply."""
    if sent <= 0:
        raise ValueError("a round sends at least one echo")
    received = min(len(rtts_ns), sent)
    seconds = [r / 1e9 for r in rtts_ns[:received]]
    return EchoSummary(
        sent=sent,
        received=received,
        loss_ratio=1.0 - received / sent,
        rtt_min_s=min(seconds) if seconds else None,
        rtt_avg_s=sum(seconds) / len(seconds) if seconds else None,
        rtt_max_s=max(seconds) if seconds else None,
    )
