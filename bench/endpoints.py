"""Endpoint probes on loopback: what one https (TLS), tcp and icmp check costs here.

Usage: python bench/endpoints.py [N]   (icmp needs net.ipv4.ping_group_range to include
our group: run it inside `unshare --net` after setting the range, see docs/benchmarks.md)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "tests"),
]

from http_peer import https_server, make_pki  # noqa: E402

from probes.https import HttpsProbe  # noqa: E402
from probes.icmp.probe import IcmpProbe  # noqa: E402
from probes.probe import Probe, run_once  # noqa: E402
from probes.task_probe import client_context  # noqa: E402
from probes.tcp_connect import ConnectProbe  # noqa: E402


async def measure(name: str, probe: Probe, n: int, figure: str) -> None:
    values: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        result = await run_once(probe)
        m = result.endpoint
        assert result.ok and m is not None, result
        value = getattr(m, figure)
        assert value is not None
        values.append(value)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    values.sort()
    p50 = statistics.median(values) * 1e3
    p99 = values[int(0.99 * (len(values) - 1))] * 1e3
    print(
        f"{name:6} n={n} {figure} p50 {p50:.3f} ms p99 {p99:.3f} ms; "
        f"wall {wall / n * 1e3:.3f} ms/check, CPU {cpu / n * 1e3:.3f} ms/check (client+server)"
    )


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp) / "pki")
        async with https_server(Path(tmp) / "srv", pki.leaf, [pki.inter]) as srv:
            tls = client_context(pki.ca_file)
            https = HttpsProbe(
                "b", "127.0.0.1", srv.port, path="/ok", sni="localhost", tls=tls, timeout=5
            )
            await measure("https", https, n, "ttfb_s")
            await measure("https", https, n, "total_s")
            await measure(
                "tcp", ConnectProbe("b", "127.0.0.1", srv.port, timeout=5), n, "connect_s"
            )
    try:
        icmp = IcmpProbe("b", "127.0.0.1", count=10, spacing=0.001, timeout=2)
        await measure("icmp", icmp, max(n // 10, 1), "rtt_avg_s")
    except AssertionError as exc:
        print(f"icmp   not measured: {exc}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
