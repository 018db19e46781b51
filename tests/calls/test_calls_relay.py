"""The test relay itself (tests/calls/relay.py): it must do what it claims before it judges."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from callpeers import LOOPBACK, alias, port_block
from relay import Burst, Impairment, Relay

PACKET_INTERVAL_S = 0.02
RTP = struct.Struct("!BBHII")


def rtp_packet(seq: int, ts: int, ssrc: int = 0x1234) -> bytes:
    return RTP.pack(0x80, 0, seq, ts, ssrc) + bytes(160)


def rtcp_packet() -> bytes:
    return bytes([0x81, 201, 0, 7]) + bytes(28)  # an RR (RFC 3550 §6.4.2)


class Ends:
    """A caller socket on 127.0.0.1:q and a callee socket on 127.0.0.1:p, relay in between."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.caller.bind((LOOPBACK, relay.caller_ports.start))
        self.callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.callee.bind((LOOPBACK, relay.callee_ports.start))
        for s in (self.caller, self.callee):
            s.settimeout(0.5)

    def send_to_callee(self, data: bytes) -> None:
        self.caller.sendto(data, (self.relay.callee_alias, self.relay.callee_ports.start))

    def close(self) -> None:
        self.caller.close()
        self.callee.close()


@pytest.fixture
def ends(request: pytest.FixtureRequest) -> Iterator[Ends]:
    a2b = getattr(request, "param", Impairment())
    caller_alias, callee_alias = alias(60), alias(61)
    hosts = (LOOPBACK, caller_alias, callee_alias)
    relay = Relay(
        caller_alias=caller_alias,
        callee_alias=callee_alias,
        caller_ports=port_block(2, hosts=hosts),
        callee_ports=port_block(2, hosts=hosts),
        a2b=a2b,
        seed=7,
    )
    with relay:
        pair = Ends(relay)
        try:
            yield pair
        finally:
            pair.close()


def test_packets_arrive_from_the_address_each_end_expects(ends: Ends) -> None:
    relay = ends.relay
    ends.send_to_callee(rtp_packet(1, 160))
    data, src = ends.callee.recvfrom(2048)
    assert data == rtp_packet(1, 160)
    assert src == (relay.caller_alias, relay.caller_ports.start)  # the caller's SDP address
    ends.callee.sendto(b"\x80\x00back", (relay.caller_alias, relay.caller_ports.start))
    data, src = ends.caller.recvfrom(2048)
    assert data == b"\x80\x00back"
    assert src == (relay.callee_alias, relay.callee_ports.start)  # the callee's SDP address


@pytest.mark.parametrize("ends", [Impairment(delay_s=0.03)], indirect=True)
def test_fixed_delay_is_applied_to_rtp_and_rtcp(ends: Ends) -> None:
    spans = []
    for data in (rtp_packet(1, 160), rtcp_packet()):
        sent = time.monotonic_ns()
        ends.send_to_callee(data)
        assert ends.callee.recv(2048) == data
        received = time.monotonic_ns()
        assert 29_000_000 <= received - sent < 40_000_000
        spans.append((sent, received))
    time.sleep(0.01)  # the relay logs the send right after it: let it
    kinds = [e.kind for e in ends.relay.log]
    assert kinds == ["rtp", "rtcp"]
    for entry, (sent, received) in zip(ends.relay.log, spans, strict=True):
        [delivered] = entry.deliver_ns
        # The relay's own clock: the delay in full, and both instants inside what the test saw
        # (give or take the realtime-to-monotonic offset it reads once for kernel timestamps).
        assert delivered - entry.arrival_ns >= 30_000_000
        assert sent - 500_000 <= entry.arrival_ns and delivered <= received + 500_000


def sender_report(ntp_msw: int, ntp_lsw: int) -> bytes:
    """An SR with no report block (RFC 3550 §6.4.1): header, SSRC, sender info."""
    return bytes([0x80, 200, 0, 6]) + struct.pack("!IIIIII", 0xA, ntp_msw, ntp_lsw, 0, 0, 0)


def receiver_report(lsr: int, dlsr: int) -> bytes:
    """An RR with one report block about SSRC 0xA carrying LSR and DLSR."""
    return bytes([0x81, 201, 0, 7]) + struct.pack("!II4xIIII", 0xB, 0xA, 0, 0, lsr, dlsr)


@pytest.mark.parametrize("ends", [Impairment(delay_s=0.02)], indirect=True)
def test_an_rtcp_exchange_is_timed_on_the_wire_less_the_callees_hold(ends: Ends) -> None:
    relay = ends.relay
    relay.impairment["b2a"] = Impairment(delay_s=0.01)
    ends.send_to_callee(sender_report(0x1234_5678, 0x9ABC_DEF0))
    ends.callee.recv(2048)
    received = time.monotonic_ns()
    time.sleep(0.05)  # the callee holds the SR 50 ms and says so in DLSR (1/65536 s units)
    rr = receiver_report(0x5678_9ABC, round(0.05 * 65536))
    replied = time.monotonic_ns()
    ends.callee.sendto(rr, (relay.caller_alias, relay.caller_ports.start))
    assert ends.caller.recv(2048) == rr
    time.sleep(0.01)
    [trip] = relay.rtcp_round_trips_ns()
    # 30 ms of relay delay, plus the callee's reply coming later than the DLSR it declared: the
    # sleep overshoots (by 24 ms once, on the loaded machine), and the hold as timed here is
    # the least it can have been.
    overshoot = replied - received - 50_000_000
    assert 30_000_000 <= trip - overshoot < 36_000_000, (trip, overshoot)


BURST = Impairment(bursts=(Burst(start_s=0.2, duration_s=0.2, loss=0.3),))


@pytest.mark.parametrize("ends", [BURST], indirect=True)
def test_a_burst_drops_exactly_its_share_and_truth_sees_it(ends: Ends) -> None:
    for seq in range(30):
        ends.send_to_callee(rtp_packet(seq, seq * 160))
        time.sleep(PACKET_INTERVAL_S)
    time.sleep(0.05)
    truth = ends.relay.truth("a2b")
    assert truth.offered == 30
    assert truth.dropped == 3  # 30 % of the ~10 packets inside the 200 ms burst
    burst_entries = [e for e in ends.relay.log if e.fate == "burst"]
    assert len(burst_entries) == 3
    assert truth.quality.lost == 3
    assert truth.quality.worst_burst_loss_ratio == pytest.approx(0.3)


RANDOM = Impairment(loss=0.2, jitter_s=0.03, duplicate=0.1)


@pytest.mark.parametrize("ends", [RANDOM], indirect=True)
def test_random_impairments_are_logged_and_truth_is_rfc3550(ends: Ends) -> None:
    for seq in range(60):
        ends.send_to_callee(rtp_packet(seq, seq * 160))
        time.sleep(PACKET_INTERVAL_S / 4)  # faster than real time: jitter reorders
    time.sleep(0.1)
    truth = ends.relay.truth("a2b")
    log = [e for e in ends.relay.log if e.kind == "rtp"]
    delivered = [e for e in log if e.fate == "delivered"]
    assert truth.dropped == sum(e.fate == "dropped" for e in log) > 0
    assert len(delivered) + truth.dropped == 60
    # RFC 3550 A.1 does not count the first packet (probation), a copy of it included.
    first = min(delivered, key=lambda e: e.deliver_ns[0])
    doubled = sum(len(e.deliver_ns) == 2 for e in delivered if e is not first)
    assert truth.quality.duplicates == doubled > 0
    # What the relay delivered arrived at the callee, duplicates included.
    got = []
    ends.callee.settimeout(0.05)
    try:
        while True:
            got.append(RTP.unpack_from(ends.callee.recv(2048))[2])
    except TimeoutError:
        pass
    assert sorted(got) == sorted(e.seq or 0 for e in delivered for _ in e.deliver_ns)
    assert got != sorted(got)  # the jitter reordered some
    assert truth.quality.reorder_ratio is not None and truth.quality.reorder_ratio > 0
    assert truth.jitter_final_s > 0
