"""ICMP echo probe over an unprivileged datagram socket (IPv4 and IPv6): N echoes per
check, their round-trip times and loss. Needs the process's group inside the
net.ipv4.ping_group_range sysctl (it governs IPv6 too); where it is not, every check ends
with outcome not_permitted and a detail naming that sysctl, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from pathlib import Path
from typing import Final

from probes.clock import SYSTEM_CLOCK, Clock
from probes.icmp.echo import echo_request, parse_echo_reply, summarize
from probes.result import EndpointMeasurements, Outcome, ProbeResult
from probes.task_probe import NS_PER_S, ProbeFailure, TaskProbe

PROBE_KIND: Final = "icmp"
PING_GROUP_RANGE: Final = Path("/proc/sys/net/ipv4/ping_group_range")
_RECV_MAX: Final = 2048


def ping_permission_detail(path: Path = PING_GROUP_RANGE) -> str:
    """Why the kernel refused an ICMP socket, with the sysctl to change."""
    gid = os.getgid()
    try:
        current = " ".join(path.read_text().split())
    except OSError:
        current = "unreadable"
    return (
        f"the kernel refuses unprivileged ICMP sockets to gid {gid}: "
        f"net.ipv4.ping_group_range is '{current}'; include {gid}, e.g. "
        "sysctl -w net.ipv4.ping_group_range='0 2147483647'"
    )


def open_ping_socket(family: socket.AddressFamily) -> socket.socket:
    """A non-blocking ping socket; ProbeFailure(not_permitted) where the kernel refuses."""
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    except PermissionError:
        raise ProbeFailure(Outcome.NOT_PERMITTED, ping_permission_detail()) from None
    sock.setblocking(False)
    return sock


class IcmpProbe(TaskProbe):
    """`count` echoes `spacing` seconds apart; replies awaited until the timeout."""

    kind = PROBE_KIND

    def __init__(
        self,
        name: str,
        host: str,
        *,
        count: int = 5,
        spacing: float = 0.2,
        timeout: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(name, timeout, clock)
        if count < 1:
            raise ValueError("count must be at least 1")
        self.host, self.count, self.spacing = host, count, spacing
        self.where = host
        self._seq = random.randrange(1 << 16)

    async def check(self, sent_wall_ns: int) -> ProbeResult:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, None, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        sock = open_ping_socket(family)
        v6 = family == socket.AF_INET6
        token = random.getrandbits(64)
        sent_at: dict[int, int] = {}
        rtts: list[int] = []
        mono = self.clock.monotonic_ns
        t0 = mono()
        try:
            sock.connect(address)  # replies from elsewhere are not ours
            receiver = loop.create_task(self._receive(sock, v6, token, sent_at, rtts))
            try:
                for i in range(self.count):
                    if i:
                        await asyncio.sleep(self.spacing)
                    seq = (self._seq + i) % (1 << 16)
                    sent_at[seq] = mono()
                    await loop.sock_sendall(sock, echo_request(v6=v6, seq=seq, token=token))
                self._seq = (self._seq + self.count) % (1 << 16)
                # Replies are awaited until all are in or the check's timeout ends it.
                remaining = self.timeout - (mono() - t0) / NS_PER_S - 0.05
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(receiver), max(remaining, 0.0))
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
        finally:
            sock.close()
        summary = summarize(self.count, rtts)
        measured = EndpointMeasurements(
            total_s=(mono() - t0) / NS_PER_S,
            echo_sent=summary.sent,
            echo_received=summary.received,
            loss_ratio=summary.loss_ratio,
            rtt_min_s=summary.rtt_min_s,
            rtt_avg_s=summary.rtt_avg_s,
            rtt_max_s=summary.rtt_max_s,
        )
        ok = summary.received > 0
        return ProbeResult(
            self.trunk,
            self.kind,
            Outcome.OK if ok else Outcome.TIMEOUT,
            sent_wall_ns,
            rtt_ns=None if summary.rtt_avg_s is None else round(summary.rtt_avg_s * NS_PER_S),
            duration_ns=mono() - t0,
            detail=None if ok else f"{self.where}: no echo reply of {summary.sent}",
            endpoint=measured,
        )

    async def _receive(
        self, sock: socket.socket, v6: bool, token: int, sent_at: dict[int, int], rtts: list[int]
    ) -> None:
        loop = asyncio.get_running_loop()
        while len(rtts) < self.count:
            data = await loop.sock_recv(sock, _RECV_MAX)
            now = self.clock.monotonic_ns()
            reply = parse_echo_reply(data, v6=v6)
            if reply is None or reply.token != token:
                continue
            start = sent_at.pop(reply.seq, None)
            if start is not None:  # a duplicate reply is counted once
                rtts.append(now - start)
