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


OUTGOING, HOST = 4, 0  # sll_pkttype


def test_filter_keeps_what_we_send_and_what_arrives_for_us() -> None:
    prog = port_filter(16384, 16399)
    assert run_filter(prog, ipv4_udp(16384, 30000, RTP), OUTGOING) == SNAP_BYTES  # cut to snap
    assert run_filter(prog, ipv4_udp(30000, 16399, RTP), HOST) == SNAP_BYTES
    # The other copy of each on loopback: ours arriving at the far end, theirs leaving it.
    assert run_filter(prog, ipv4_udp(16384, 30000, RTP), HOST) == 0
    assert run_filter(prog, ipv4_udp(30000, 16399, RTP), OUTGOING) == 0
    assert run_filter(prog, ipv4_udp(16383, 16400, RTP), OUTGOING) == 0  # just outside
    assert run_filter(prog, ipv4_udp(16400, 16383, RTP), HOST) == 0
    assert run_filter(prog, ipv4_udp(5060, 5060, RTP), HOST) == 0
    short = ipv4_udp(1, 16390, b"x")
    assert run_filter(prog, short, HOST) == len(short)  # shorter than the snap: whole
    assert run_filter(prog, ipv4_udp(1, 16390, RTP, frag=0x0010), HOST) == 0  # later fragment
    assert run_filter(prog, ipv4_udp(1, 16390, RTP, frag=0x2000), HOST) == SNAP_BYTES  # first
    tcp = bytearray(ipv4_udp(1, 16390, RTP))
    tcp[9] = 6
    assert run_filter(prog, bytes(tcp), HOST) == 0
    assert run_filter(prog, b"\x60" + bytes(60), HOST) == 0  # IPv6


def test_filter_with_our_address_ignores_our_port_numbers_elsewhere() -> None:
    # ipv4_udp sends from 127.0.0.1 to 127.0.0.9.
    ours = port_filter(16384, 16399, bytes([127, 0, 0, 1]))
    assert run_filter(ours, ipv4_udp(16384, 30000, RTP), OUTGOING) == SNAP_BYTES
    assert run_filter(ours, ipv4_udp(30000, 16384, RTP), HOST) == 0  # for 127.0.0.9
    theirs = port_filter(16384, 16399, bytes([127, 0, 0, 9]))
    assert run_filter(theirs, ipv4_udp(30000, 16384, RTP), HOST) == SNAP_BYTES
    assert run_filter(theirs, ipv4_udp(16384, 30000, RTP), OUTGOING) == 0  # from 127.0.0.1
    with pytest.raises(ValueError):
        port_filter(1, 2, b"\x7f\x00\x00")


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
