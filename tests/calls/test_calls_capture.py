"""The worker's RTP capture (probes/pjsua/capture.py) on real loopback sockets, as root."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from callpeers import LOOPBACK, alias, port_block
from peers import missing_peer

from probes.media.echo import own_rtp
from probes.pjsua.capture import RtpCapture, open_capture

RTP = struct.Struct("!BBHII")
ECHO_DELAY_S = 0.02


def rtp(seq: int, ts: int, ssrc: int = 0xBEEF) -> bytes:
    return RTP.pack(0x80, 0, seq, ts, ssrc) + bytes(160)


@pytest.fixture
def capture_ports() -> Iterator[tuple[RtpCapture, range]]:
    if os.geteuid() != 0:
        missing_peer("capturing RTP needs CAP_NET_RAW (root here)")
    other = alias(90)
    ports = port_block(2, hosts=(LOOPBACK, other))
    capture, why = open_capture(ports.start, ports.stop - 1, LOOPBACK)
    assert capture is not None, why
    try:
        yield capture, ports
    finally:
        capture.close()


def test_capture_sees_our_packets_and_their_echoes_only(
    capture_ports: tuple[RtpCapture, range],
) -> None:
    capture, ports = capture_ports
    port = ports.start
    capture.watch(port)
    far_port = port_block(1).start
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as far,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as impostor,
    ):
        ours.bind((LOOPBACK, port))
        far.bind((LOOPBACK, far_port))
        # A relay on another address with our port number: its traffic is not ours.
        impostor.bind((alias(90), port))
        for i in range(12):
            ours.sendto(rtp(65530 + i & 0xFFFF, 160 * i), (LOOPBACK, far_port))
            data, src = far.recvfrom(2048)
            time.sleep(ECHO_DELAY_S)
            far.sendto(data, src)  # the echo, SIPp-style: back to the source
            ours.recv(2048)
            impostor.sendto(rtp(i, 999), (LOOPBACK, far_port))
            far.recv(2048)
            far.sendto(rtp(i, 777), (alias(90), port))  # to our port number, not our address
            impostor.recv(2048)
        ours.sendto(bytes([0x81, 201, 0, 7]) + bytes(28), (LOOPBACK, far_port))  # RTCP: skipped
        far.recv(2048)
        time.sleep(0.3)  # the capture thread drains the socket
    packets = capture.take(port)
    assert packets is not None
    assert capture.take(port) is None  # taken once
    assert sum(p.outgoing for p in packets) == 12
    assert sum(not p.outgoing for p in packets) == 12
    assert all(p.ssrc == 0xBEEF for p in packets)
    result = own_rtp(packets)
    assert result.echo is not None and result.echo.samples == 12
    # Kernel timestamps: at least the sleep, and not much more on an idle loopback.
    assert ECHO_DELAY_S <= result.echo.min_s
    assert result.echo.p50_s < ECHO_DELAY_S + 0.015


def test_without_the_capability_there_is_a_reason_not_a_crash() -> None:
    def refuse(*_: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    capture, why = open_capture(16384, 16399, LOOPBACK, opener=refuse)
    assert capture is None and why == "packet socket: Operation not permitted"
    capture, why = open_capture(16384, 16399, "not-an-address")
    assert capture is None and why is not None and "IPv4" in why
