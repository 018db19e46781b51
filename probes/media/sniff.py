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


def port_filter(low: int, high: int) -> list[tuple[int, int, int, int]]:
    """BPF: accept IPv4 UDP (unfragmented or first fragment) with either port in low..high."""
    if not 0 < low <= high <= 0xFFFF:
        raise ValueError(f"bad port range {low}..{high}")
    snap, drop = SNAP_BYTES, 0
    # Each tuple: (code, jump-if-true, jump-if-false, k); jumps are relative to the next one.
    return [
        (_LD_B_ABS, 0, 0, 0),  # 0: A = first byte
        (_AND_K, 0, 0, 0xF0),  # 1: the version nibble
        (_JEQ_K, 0, 12, 0x40),  # 2: IPv4, else drop
        (_LD_B_ABS, 0, 0, 9),  # 3: A = IP protocol
        (_JEQ_K, 0, 10, IPPROTO_UDP),  # 4: UDP, else drop
        (_LD_H_ABS, 0, 0, 6),  # 5: flags + fragment offset
        (_JSET_K, 8, 0, 0x1FFF),  # 6: a later fragment has no UDP header: drop
        (_LDX_B_MSH, 0, 0, 0),  # 7: X = IP header length
        (_LD_H_IND, 0, 0, 0),  # 8: A = source port
        (_JGE_K, 0, 1, low),  # 9: below low: try the destination
        (_JGT_K, 0, 3, high),  # 10: low <= source <= high: accept
        (_LD_H_IND, 0, 0, 2),  # 11: A = destination port
        (_JGE_K, 0, 2, low),  # 12: below low: drop
        (_JGT_K, 1, 0, high),  # 13: above high: drop
        (_RET_K, 0, 0, snap),  # 14: accept
        (_RET_K, 0, 0, drop),  # 15: drop
    ]


def filter_bytes(program: list[tuple[int, int, int, int]]) -> bytes:
    """The program as the kernel's array of struct sock_filter (native byte order)."""
    return b"".join(_SOCK_FILTER.pack(*insn) for insn in program)


def run_filter(program: list[tuple[int, int, int, int]], packet: bytes) -> int:
    """Interpret the program on one packet the way the kernel does (for tests): bytes kept."""
    a = x = 0
    pc = 0
    while pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        if code == _RET_K:
            return min(k, len(packet))
        if code in (_LD_B_ABS, _LD_H_ABS, _LD_H_IND):
            offset = k + (x if code == _LD_H_IND else 0)
            size = 1 if code == _LD_B_ABS else 2
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
