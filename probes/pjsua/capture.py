"""A packet capture of the worker's own RTP (a Linux packet socket in a thread of the worker).

pjmedia sends and receives RTP in C; Python never sees the packets, and pjmedia's receive
statistics time a packet when its media thread gets to it. A packet socket (AF_PACKET) sees
both directions with the kernel's timestamp of each packet (SO_TIMESTAMPNS), whatever the
worker's threads are doing, so echo round trips and RFC 3550 jitter come from the instants the
packets crossed the host's network stack. It needs CAP_NET_RAW; without it `open_capture`
returns None with the reason, and RTT falls back to RTCP. The kernel filter
(probes/media/sniff.py) passes only UDP to or from the worker's RTP ports.

Kernel packet timestamps are CLOCK_REALTIME: only their differences are used (a round trip, an
inter-arrival time), and a clock step inside one call shows as one absurd sample at most.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
from collections.abc import Callable

from probes.media.echo import CapturedPacket
from probes.media.sniff import PACKET_OUTGOING, SNAP_BYTES, filter_bytes, parse_rtp, port_filter

# <linux/if_ether.h>: every protocol, so a tap also sees the packets we send.
ETH_P_ALL = 0x0003
# <asm-generic/socket.h>: SO_ATTACH_FILTER, SO_TIMESTAMPNS (SCM_TIMESTAMPNS is the same value).
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
# struct sock_fprog {unsigned short len; struct sock_filter *filter;}: padding to the pointer.
_SOCK_FPROG = struct.Struct("@HL")
# The thread drains the socket this often: every packet carries its own kernel timestamp, so
# reading them in batches costs no precision, and one wake-up per 50 ms instead of one per
# packet (200 a second per call on loopback) cut the capture's CPU (docs/benchmarks.md).
DRAIN_INTERVAL_S = 0.05
# 2 MB of receive buffer: a second of 4 calls' RTP both ways (and on loopback each packet
# twice) even if the thread stalls; the worker has at most 4 calls.
RCVBUF_BYTES = 2 << 20
# Packets kept per call: 30 minutes of 20 ms packets both ways; beyond that a call stops
# recording (a test call lasts seconds) rather than grow without bound.
MAX_PACKETS_PER_CALL = 180_000


class RtpCapture:
    """Captures RTP of the ports being watched; `watch(port)` starts a call's log."""

    def __init__(self, sock: socket.socket, local_ip: bytes | None = None) -> None:
        self._sock = sock
        # Our media address: a packet counts only if it leaves from it or arrives at it (a
        # relay on the same host may use our port numbers on other addresses). None: any.
        self._local_ip = local_ip
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._logs: dict[int, list[CapturedPacket]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-capture", daemon=True)
        self._thread.start()

    def watch(self, port: int) -> None:
        """Start recording the RTP of the call whose local RTP port this is."""
        with self._lock:
            self._logs.setdefault(port, [])

    def take(self, port: int) -> list[CapturedPacket] | None:
        """Stop recording a port and return what it saw (None if it was not watched)."""
        self._drain()  # the packets of the last DRAIN_INTERVAL_S are still in the socket
        with self._lock:
            return self._logs.pop(port, None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.wait(DRAIN_INTERVAL_S):
            if not self._drain():
                return

    def _drain(self) -> bool:
        """Record every packet queued in the socket; False once it is closed."""
        space = socket.CMSG_SPACE(_TIMESPEC.size)
        with self._drain_lock:  # one reader at a time: packets are logged in arrival order
            while True:
                try:
                    data, ancdata, _, address = self._sock.recvmsg(
                        SNAP_BYTES, space, socket.MSG_DONTWAIT
                    )
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError:
                    return False  # closed
                self._record(data, ancdata, address[2])

    def _record(self, data: bytes, ancdata: list[tuple[int, int, bytes]], pkttype: int) -> None:
        packet = parse_rtp(data)
        if packet is None:
            return
        t_ns = None
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack(value[: _TIMESPEC.size])
                t_ns = sec * 1_000_000_000 + nsec
        if t_ns is None:
            return
        # Ours on its way out (on lo the same packet is seen again arriving: skipped), or the
        # far end's arriving (on lo also seen leaving the sender: skipped).
        outgoing = pkttype == PACKET_OUTGOING
        port = packet.src_port if outgoing else packet.dst_port
        if self._local_ip is not None and self._local_ip != (
            packet.src_ip if outgoing else packet.dst_ip
        ):
            return
        with self._lock:
            log = self._logs.get(port)
            if log is None or len(log) >= MAX_PACKETS_PER_CALL:
                return
            log.append(
                CapturedPacket(
                    outgoing=outgoing,
                    ssrc=packet.ssrc,
                    seq=packet.seq,
                    timestamp=packet.timestamp,
                    t_ns=t_ns,
                    payload_head=packet.payload_head,
                )
            )


def open_capture(
    low_port: int,
    high_port: int,
    local_address: str | None = None,
    *,
    opener: Callable[..., socket.socket] = socket.socket,
) -> tuple[RtpCapture | None, str | None]:
    """A capture of UDP on ports low..high at our IPv4 media address (None or 0.0.0.0: any),
    or (None, why not)."""
    local_ip = None
    if local_address and local_address != "0.0.0.0":
        try:
            local_ip = socket.inet_aton(local_address)
        except OSError:
            return None, f"not an IPv4 media address: {local_address!r}"
    try:
        sock = opener(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    except OSError as exc:  # PermissionError without CAP_NET_RAW
        return None, f"packet socket: {exc.strerror or exc}"
    try:
        program = filter_bytes(port_filter(low_port, high_port, local_ip))
        # The kernel reads the program through a pointer: a ctypes buffer gives it an address.
        array = ctypes.create_string_buffer(program)
        fprog = _SOCK_FPROG.pack(len(program) // 8, ctypes.addressof(array))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        # Packets queued before the filter was attached passed no filter: drain them.
        while True:
            try:
                sock.recv(1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
    except OSError as exc:
        sock.close()
        return None, f"packet filter: {exc.strerror or exc}"
    return RtpCapture(sock, local_ip), None
