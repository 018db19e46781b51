"""TCP (and TLS) endpoint probe: can a connection be opened, and how long did it take."""

from __future__ import annotations

import ssl
from typing import Final

from probes.clock import SYSTEM_CLOCK, Clock
from probes.result import EndpointMeasurements, Outcome, ProbeResult
from probes.task_probe import NS_PER_S, TaskProbe, close_quietly, connect

TCP_KIND: Final = "tcp"
TLS_KIND: Final = "tls"


class ConnectProbe(TaskProbe):
    """Connects to host:port (then handshakes, verified, when `tls` is given) and closes."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        sni: str | None = None,
        timeout: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(name, timeout, clock)
        self.where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.kind = TLS_KIND if tls is not None else TCP_KIND
        self.host, self.port, self.tls, self.sni = host, port, tls, sni

    async def check(self, sent_wall_ns: int) -> ProbeResult:
        t0 = self.clock.monotonic_ns()
        conn = await connect(self.host, self.port, tls=self.tls, sni=self.sni, clock=self.clock)
        total = self.clock.monotonic_ns() - t0
        await close_quietly(conn.writer)
        return ProbeResult(
            self.trunk,
            self.kind,
            Outcome.OK,
            sent_wall_ns,
            rtt_ns=round(conn.connect_s * NS_PER_S),
            duration_ns=total,
            endpoint=EndpointMeasurements(
                connect_s=conn.connect_s, tls_s=conn.tls_s, total_s=total / NS_PER_S
            ),
        )
