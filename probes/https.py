"""HTTPS endpoint probe: connect, TLS handshake (chain and name verified), one GET; the
status code against the endpoint's alive rule, time to first byte and total time."""

from __future__ import annotations

import ssl
from collections.abc import Collection
from typing import Final

from probes.clock import SYSTEM_CLOCK, Clock
from probes.http_status import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    HttpParseError,
    build_request,
    parse_status_line,
)
from probes.result import EndpointMeasurements, Outcome, ProbeResult
from probes.task_probe import NS_PER_S, ProbeFailure, TaskProbe, close_quietly, connect

PROBE_KIND: Final = "https"
# 2xx and 3xx: the service answered on purpose (a redirect to a login page is alive).
DEFAULT_ALIVE_STATUS: Final = frozenset(range(200, 400))
_READ_CHUNK: Final = 64 * 1024


class HttpsProbe(TaskProbe):
    """GET https://host:port/path; `tls` None means plain HTTP (tests, internal checks)."""

    kind = PROBE_KIND

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        path: str = "/",
        sni: str | None = None,
        tls: ssl.SSLContext | None,
        alive_status: Collection[int] = DEFAULT_ALIVE_STATUS,
        timeout: float,
        user_agent: str = "trunkwatch",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(name, timeout, clock)
        self.where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.host, self.port, self.sni, self.tls = host, port, sni, tls
        self.alive_status = frozenset(alive_status)
        self.request = build_request(sni or host, port, path, user_agent)

    async def check(self, sent_wall_ns: int) -> ProbeResult:
        mono = self.clock.monotonic_ns
        t0 = mono()
        conn = await connect(self.host, self.port, tls=self.tls, sni=self.sni, clock=self.clock)
        try:
            conn.writer.write(self.request)
            await conn.writer.drain()
            t_sent = mono()
            first = await conn.reader.read(1)
            if not first:
                raise ProbeFailure(Outcome.PARSE_ERROR, f"{self.where}: closed without answering")
            t_first = mono()
            head = first + await conn.reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEAD_BYTES:
                raise ProbeFailure(Outcome.PARSE_ERROR, f"{self.where}: response head too long")
            line, _, _ = head.partition(b"\n")
            status = parse_status_line(line + b"\n")
            read = 0
            while read < MAX_BODY_BYTES and (chunk := await conn.reader.read(_READ_CHUNK)):
                read += len(chunk)
            t_end = mono()
        except HttpParseError as exc:
            raise ProbeFailure(Outcome.PARSE_ERROR, f"{self.where}: {exc.reason}") from None
        finally:
            await close_quietly(conn.writer)
        alive = status.code in self.alive_status
        return ProbeResult(
            self.trunk,
            self.kind,
            Outcome.OK if alive else Outcome.HTTP_ERROR,
            sent_wall_ns,
            rtt_ns=t_first - t_sent,
            duration_ns=t_end - t0,
            status_code=status.code,
            reason=status.reason,
            detail=None if alive else f"HTTP {status.code} is not an alive status",
            endpoint=EndpointMeasurements(
                connect_s=conn.connect_s,
                tls_s=conn.tls_s,
                ttfb_s=(t_first - t_sent) / NS_PER_S,
                total_s=(t_end - t0) / NS_PER_S,
            ),
        )
