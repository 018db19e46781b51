"""What a packet capture of our own RTP needs, without I/O: the kernel filter and the parser.

The pjsua2 worker sends and receives RTP inside pjmedia, where Python cannot see packets; a
Linux packet socket (AF_PACKET, SOCK_DGRAM: the link header stripped, so data starts at the IP
header) sees both directions with kernel timestamps. `port_filter` is the classic BPF program
that keeps only IPv4 UDP to or from the worker's RTP ports (everything else on the host never
reaches Python); `parse_rtp` reads one captured datagram.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Linux <linux/if_packet.h>: sll_pkttype of a packet we sent (taps see it on its way out).
PACKET_OUTGOING = 4
# Bytes of each packet the kernel copies to us: IPv4 header (20, <= 60) + UDP (8) + RTP fixed
# (12) + the head of the payload that tells an echo of our packet from the far end's own.
SNAP_BYTES = 96
# Payload bytes kept per packet: 16 G.711 samples (2 ms of our tone) are unique enough.
PAYLOAD_HEAD_BYTES = 16
# RFC 3550 §5.1: version 2; RFC 5761 §4: payload-type byte 200..204 (with marker) is RTCP.
RTP_VERSION = 2
RTCP_TYPES = range(200, 205)
IPPROTO_UDP = 17
_UDP_PORTS = struct.Struct("!HH")
_RTP_FIXED = struct.Struct("!BBHII")

# Classic BPF opcodes (<linux/bpf_common.h>), only those the filter uses.
_LD_B_ABS = 0x30
_LD_H_ABS = 0x28
_LD_H_IND = 0x48
_LDX_B_MSH = 0xB1
_JEQ_K = 0x15
_JGE_K = 0x35
_JGT_K = 0x25
_JSET_K = 0x45
_AND_K = 0x54
_RET_K = 0x06
_LD_W_ABS = 0x20
# <linux/filter.h>: SKF_AD_OFF + SKF_AD_PKTTYPE, the ancillary load of skb->pkt_type.
SKF_AD_PKTTYPE = (-0x1000 + 4) & 0xFFFFFFFF
_SOCK_FILTER = struct.Struct("HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}


@dataclass(slots=True, frozen=True)
class RtpPacket:
    """One captured RTP packet: its IPv4 addresses (4 bytes), UDP ports and fixed header fields."""

    src_ip: bytes
    dst_ip: bytes
    src_port: int
    dst_port: int
    ssrc: int
    seq: int
    timestamp: int
    payload_type: int
    payload_head: bytes  # the first PAYLOAD_HEAD_BYTES of the payload (fewer if cut short)


def port_filter(
    low: int, high: int, local_ip: bytes | None = None
) -> list[tuple[int, int, int, int]]:
    """BPF: IPv4 UDP (unfragmented or first fragment) that we sent from a port in low..high,
    or that arrived for one (the kernel's packet type says which way: on loopback each packet
    passes a tap twice, leaving and arriving, and only the copy on our side is kept). With
    `local_ip` (4 bytes), our side's address must be it too."""
    if not 0 < low <= high <= 0xFFFF:
        raise ValueError(f"bad port range {low}..{high}")
    if local_ip is not None and len(local_ip) != 4:
        raise ValueError("local_ip must be 4 bytes (IPv4)")
    Insn = tuple[str | None, int, str | None, str | None, int]  # label, code, jt, jf, k

    def side(name: str, ip_offset: int, port_offset: int) -> list[Insn]:
        out: list[Insn] = []
        if local_ip is not None:
            out.append((name, _LD_W_ABS, None, None, ip_offset))
            out.append((None, _JEQ_K, None, "drop", int.from_bytes(local_ip, "big")))
        out.append((name if local_ip is None else None, _LD_H_IND, None, None, port_offset))
        out.append((None, _JGE_K, None, "drop", low))
        out.append((None, _JGT_K, "drop", "accept", high))
        return out

    asm: list[Insn] = [
        (None, _LD_B_ABS, None, None, 0),  # A = first byte
        (None, _AND_K, None, None, 0xF0),  # its version nibble
        (None, _JEQ_K, None, "drop", 0x40),  # IPv4
        (None, _LD_B_ABS, None, None, 9),  # A = IP protocol
        (None, _JEQ_K, None, "drop", IPPROTO_UDP),  # UDP
        (None, _LD_H_ABS, None, None, 6),  # flags + fragment offset
        (None, _JSET_K, "drop", None, 0x1FFF),  # a later fragment has no UDP header
        (None, _LDX_B_MSH, None, None, 0),  # X = IP header length
        (None, _LD_W_ABS, None, None, SKF_AD_PKTTYPE),  # A = the packet's type
        (None, _JEQ_K, None, "in", PACKET_OUTGOING),
        *side("out", 12, 0),  # leaving: from our address and port
        *side("in", 16, 2),  # arriving: for our address and port
        ("accept", _RET_K, None, None, SNAP_BYTES),
        ("drop", _RET_K, None, None, 0),
    ]
    where = {label: i for i, (label, *_) in enumerate(asm) if label is not None}

    def jump(i: int, label: str | None) -> int:
        return 0 if label is None else where[label] - (i + 1)

    return [(code, jump(i, jt), jump(i, jf), k) for i, (_, code, jt, jf, k) in enumerate(asm)]


def filter_bytes(program: list[tuple[int, int, int, int]]) -> bytes:
    """The program as the kernel's array of struct sock_filter (native byte order)."""
    return b"".join(_SOCK_FILTER.pack(*insn) for insn in program)


def run_filter(program: list[tuple[int, int, int, int]], packet: bytes, pkttype: int = 0) -> int:
    """Interpret the program on one packet the way the kernel does (for tests): bytes kept."""
    a = x = 0
    pc = 0
    while pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        if code == _RET_K:
            return min(k, len(packet))
        if code == _LD_W_ABS and k == SKF_AD_PKTTYPE:
            a = pkttype
        elif code in (_LD_B_ABS, _LD_H_ABS, _LD_H_IND, _LD_W_ABS):
            offset = k + (x if code == _LD_H_IND else 0)
            size = {_LD_B_ABS: 1, _LD_W_ABS: 4}.get(code, 2)
            if offset + size > len(packet):
                return 0  # the kernel drops a packet a load runs off
            a = int.from_bytes(packet[offset : offset + size], "big")
        elif code == _LDX_B_MSH:
            if k >= len(packet):
                return 0
            x = (packet[k] & 0x0F) * 4
        elif code == _AND_K:
            a &= k
        elif code in (_JEQ_K, _JGE_K, _JGT_K, _JSET_K):
            taken = {
                _JEQ_K: a == k,
                _JGE_K: a >= k,
                _JGT_K: a > k,
                _JSET_K: bool(a & k),
            }[code]
            pc += jt if taken else jf
        else:
            raise ValueError(f"opcode {code:#x} not interpreted")
    return 0


def parse_rtp(datagram: bytes) -> RtpPacket | None:
    """An IPv4/UDP/RTP packet from the IP header on; None for anything else (RTCP included)."""
    if len(datagram) < 20 or datagram[0] >> 4 != 4 or datagram[9] != IPPROTO_UDP:
        return None
    ihl = (datagram[0] & 0x0F) * 4
    if ihl < 20 or len(datagram) < ihl + 8 + _RTP_FIXED.size:
        return None
    src_port, dst_port = _UDP_PORTS.unpack_from(datagram, ihl)
    first, second, seq, timestamp, ssrc = _RTP_FIXED.unpack_from(datagram, ihl + 8)
    if first >> 6 != RTP_VERSION or second in RTCP_TYPES:
        return None
    payload = ihl + 8 + _RTP_FIXED.size + 4 * (first & 0x0F)  # after the CSRC list (§5.1)
    return RtpPacket(
        src_ip=datagram[12:16],
        dst_ip=datagram[16:20],
        src_port=src_port,
        dst_port=dst_port,
        ssrc=ssrc,
        seq=seq,
        timestamp=timestamp,
        payload_type=second & 0x7F,
        payload_head=datagram[payload : payload + PAYLOAD_HEAD_BYTES],
    )
