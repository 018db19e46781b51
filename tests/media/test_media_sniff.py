"""The capture's kernel filter and packet parser (probes/media/sniff.py), on literal bytes."""

from __future__ import annotations

import struct

import pytest

from probes.media.sniff import SNAP_BYTES, filter_bytes, parse_rtp, port_filter, run_filter


def ipv4_udp(src_port: int, dst_port: int, payload: bytes, *, frag: int = 0, ihl: int = 5) -> bytes:
    options = bytes(4 * (ihl - 5))
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        4 * ihl + 8 + len(payload),
        1,
        frag,
        64,
        17,
        0,
        bytes([127, 0, 0, 1]),
        bytes([127, 0, 0, 9]),
    )
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0)
    return header + options + udp + payload


RTP = struct.pack("!BBHII", 0x80, 0, 65535, 0xFFFFFF60, 0xCAFE) + bytes(160)
RTCP_RR = bytes([0x81, 201, 0, 7]) + bytes(28)


def test_parse_rtp_reads_addresses_ports_and_header() -> None:
    p = parse_rtp(ipv4_udp(40000, 50000, RTP))
    assert p is not None
    assert (p.src_ip, p.dst_ip) == (bytes([127, 0, 0, 1]), bytes([127, 0, 0, 9]))
    assert (p.src_port, p.dst_port, p.seq, p.timestamp, p.ssrc, p.payload_type) == (
        40000,
        50000,
        65535,
        0xFFFFFF60,
        0xCAFE,
        0,
    )
    with_options = parse_rtp(ipv4_udp(40000, 50000, RTP, ihl=7))
    assert with_options is not None and with_options.seq == 65535


@pytest.mark.parametrize(
    "packet",
    [
        ipv4_udp(40000, 50000, RTCP_RR),  # RTCP on the RTP port (RFC 5761 mux) is not RTP
        ipv4_udp(40000, 50000, b"\x00" * 20),  # version 0
        ipv4_udp(40000, 50000, RTP[:11]),  # shorter than the fixed header
        b"\x60" + bytes(60),  # IPv6
        b"",
    ],
)
def test_parse_rtp_rejects_what_is_not_rtp(packet: bytes) -> None:
    assert parse_rtp(packet) is None


def test_filter_keeps_our_ports_either_way_and_drops_the_rest() -> None:
    prog = port_filter(16384, 16399)
    assert run_filter(prog, ipv4_udp(16384, 30000, RTP)) == SNAP_BYTES  # from us, cut to snap
    assert run_filter(prog, ipv4_udp(30000, 16399, RTP)) == SNAP_BYTES  # to us
    assert run_filter(prog, ipv4_udp(16383, 16400, RTP)) == 0  # both just outside
    assert run_filter(prog, ipv4_udp(5060, 5060, RTP)) == 0
    short = ipv4_udp(16390, 1, b"x")
    assert run_filter(prog, short) == len(short)  # shorter than the snap: whole
    assert run_filter(prog, ipv4_udp(16390, 1, RTP, frag=0x0010)) == 0  # later fragment
    assert run_filter(prog, ipv4_udp(16390, 1, RTP, frag=0x2000)) == SNAP_BYTES  # first one
    tcp = bytearray(ipv4_udp(16390, 1, RTP))
    tcp[9] = 6
    assert run_filter(prog, bytes(tcp)) == 0
    assert run_filter(prog, b"\x60" + bytes(60)) == 0  # IPv6


def test_filter_bytes_is_the_kernel_struct_array() -> None:
    prog = port_filter(1000, 2000)
    raw = filter_bytes(prog)
    assert len(raw) == 8 * len(prog)
    assert struct.unpack_from("HBBI", raw, 8 * 9) == prog[9]
    with pytest.raises(ValueError):
        port_filter(2000, 1000)


def test_parse_rtp_keeps_the_payload_head_after_the_csrc_list() -> None:
    payload = bytes(range(40))
    plain = struct.pack("!BBHII", 0x80, 0, 1, 160, 7) + payload
    p = parse_rtp(ipv4_udp(1, 2, plain))
    assert p is not None and p.payload_head == payload[:16]
    two_csrcs = struct.pack("!BBHII", 0x82, 0, 1, 160, 7) + bytes(8) + payload
    q = parse_rtp(ipv4_udp(1, 2, two_csrcs))
    assert q is not None and q.payload_head == payload[:16]
    cut = parse_rtp(ipv4_udp(1, 2, plain)[:SNAP_BYTES])  # as the kernel hands it over
    assert cut is not None and cut.payload_head == payload[:16]
