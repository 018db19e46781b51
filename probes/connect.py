"""A TCP connect probe: does anything accept a connection at HOST:PORT (a control target:
the other site's agent, a resolver's TCP port)? Opens and closes one connection."""

from __future__ import annotations

import asyncio
import socket

from probes.clock import SYSTEM_CLOCK, Clock
from probes.result import Outcome, ProbeResult

PROBE_KIND = "connect"


async def connect_once(
    name: str, host: str, port: int, timeout_s: float, *, probe: str = PROBE_KIND,
    clock: Clock = SYSTEM_CLOCK,
) -> ProbeResult:  # fmt: skip
    """One connection attempt within `timeout_s` seconds, as a result named `name`."""
    sent_wall_ns, started = clock.wall_ns(), clock.monotonic_ns()
    outcome, detail = Outcome.OK, None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        outcome, detail = Outcome.TIMEOUT, f"no connection within {timeout_s} s"
    except ConnectionRefusedError:
        outcome, detail = Outcome.REFUSED, "connection refused"
    except socket.gaierror as exc:
        outcome, detail = Outcome.DNS, f"cannot resolve {host}: {exc.strerror}"[:200]
    except OSError as exc:
        outcome, detail = Outcome.NETWORK, (exc.strerror or repr(exc))[:200]
    else:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass  # it accepted: that was the question
    return ProbeResult(
        trunk=name,
        probe=probe,
        outcome=outcome,
        sent_wall_ns=sent_wall_ns,
        duration_ns=clock.monotonic_ns() - started,
        detail=detail,
    )
