"""The https, tcp/tls and icmp endpoint probes against real peers: an aiohttp HTTPS server
with certificates made by the test, plain TCP listeners, a closed port, and ICMP echo to
127.0.0.1/::1 inside a network namespace the test creates (its own ping_group_range)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from http_peer import Pki, https_server, make_pki
from peers import free_port, missing_peer, require_binary

from probes.https import HttpsProbe
from probes.probe import run_once
from probes.result import Outcome
from probes.task_probe import client_context
from probes.tcp_connect import ConnectProbe

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def https(port: int, path: str, pki: Pki, **kw: object) -> HttpsProbe:
    options: dict[str, object] = {"sni": "localhost", "timeout": 2.0}
    options.update(kw)
    tls = options.pop("tls", client_context(pki.ca_file))
    return HttpsProbe("edge", "127.0.0.1", port, path=path, tls=tls, **options)  # type: ignore[arg-type]


async def test_https_ok_with_status_and_timings(tmp_path: Path, pki: Pki) -> None:
    async with https_server(tmp_path / "srv", pki.leaf, [pki.inter]) as srv:
        result = await run_once(https(srv.port, "/slow?s=0.2", pki))
    assert result.outcome is Outcome.OK, result.detail
    assert result.probe == "https" and result.trunk == "edge"
    assert result.status_code == 200 and result.reason == "OK"
    assert srv.paths == ["/slow?s=0.2"]
    m = result.endpoint
    assert m is not None and m.connect_s is not None and m.tls_s is not None
    assert m.ttfb_s is not None and 0.2 <= m.ttfb_s < 1.5  # the server's sleep is in it
    assert m.total_s is not None and m.total_s >= m.ttfb_s + m.connect_s + m.tls_s
    assert result.rtt_ns == pytest.approx(m.ttfb_s * 1e9, rel=1e-6)


async def test_https_status_rule(tmp_path: Path, pki: Pki) -> None:
    async with https_server(tmp_path / "srv", pki.leaf, [pki.inter]) as srv:
        down = await run_once(https(srv.port, "/down", pki))
        moved = await run_once(https(srv.port, "/moved", pki))
        strict = await run_once(https(srv.port, "/moved", pki, alive_status={200}))
        missing = await run_once(https(srv.port, "/nowhere", pki))
    assert (down.outcome, down.status_code) == (Outcome.HTTP_ERROR, 503)
    assert down.detail == "HTTP 503 is not an alive status"
    assert (moved.outcome, moved.status_code) == (Outcome.OK, 302)  # not followed
    assert (strict.outcome, strict.status_code) == (Outcome.HTTP_ERROR, 302)
    assert (missing.outcome, missing.status_code) == (Outcome.HTTP_ERROR, 404)


async def test_https_tls_is_verified(tmp_path: Path, pki: Pki) -> None:
    async with https_server(tmp_path / "srv", pki.leaf, [pki.inter]) as srv:
        untrusted = await run_once(https(srv.port, "/ok", pki, tls=client_context(None)))
        wrong_name = await run_once(https(srv.port, "/ok", pki, sni="other.test"))
        by_ip = await run_once(https(srv.port, "/ok", pki, sni=None))  # IP SAN 127.0.0.1
        unverified = await run_once(
            https(srv.port, "/ok", pki, tls=client_context(None, verify=False), sni="x.test")
        )
    assert untrusted.outcome is Outcome.TLS and "unable to get local issuer" in (
        untrusted.detail or ""
    )
    assert wrong_name.outcome is Outcome.TLS and "other.test" in (wrong_name.detail or "")
    assert by_ip.outcome is Outcome.OK, by_ip.detail
    assert unverified.outcome is Outcome.OK
    assert srv.paths == ["/ok", "/ok"]  # the refused handshakes sent no request


async def test_https_failures_are_outcomes(tmp_path: Path, pki: Pki) -> None:
    closed = free_port("tcp")
    refused = await run_once(https(closed, "/ok", pki))
    assert (
        refused.outcome is Outcome.REFUSED
        and refused.detail == f"127.0.0.1:{closed}: connection refused"
    )
    async with https_server(tmp_path / "srv", pki.leaf, [pki.inter]) as srv:
        late = await run_once(https(srv.port, "/slow?s=1", pki, timeout=0.3))
    assert late.outcome is Outcome.TIMEOUT

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_http, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        garbage = await run_once(https(port, "/", pki, tls=None))
    assert garbage.outcome is Outcome.PARSE_ERROR
    assert garbage.detail == f"127.0.0.1:{port}: not an HTTP/1.x status line"


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], accepted


async def test_tcp_connect(listener: tuple[int, list[int]]) -> None:
    port, accepted = listener
    ok = await run_once(ConnectProbe("vpn", "127.0.0.1", port, timeout=2))
    closed = free_port("tcp")
    refused = await run_once(ConnectProbe("vpn", "127.0.0.1", closed, timeout=2))
    await asyncio.sleep(0.05)
    assert ok.outcome is Outcome.OK and ok.probe == "tcp"
    assert ok.endpoint is not None and ok.endpoint.connect_s is not None
    assert 0 < ok.endpoint.connect_s < 1 and ok.endpoint.tls_s is None
    assert accepted == [1]
    assert refused.outcome is Outcome.REFUSED


async def test_tls_connect(tmp_path: Path, pki: Pki) -> None:
    async with https_server(tmp_path / "srv", pki.leaf, [pki.inter]) as srv:
        tls = client_context(pki.ca_file)
        ok = await run_once(
            ConnectProbe("edge", "127.0.0.1", srv.port, tls=tls, sni="localhost", timeout=2)
        )
        bad = await run_once(
            ConnectProbe("edge", "127.0.0.1", srv.port, tls=client_context(None), timeout=2)
        )
    assert ok.outcome is Outcome.OK and ok.probe == "tls"
    assert ok.endpoint is not None and ok.endpoint.tls_s is not None and ok.endpoint.tls_s > 0
    assert bad.outcome is Outcome.TLS


# --- ICMP, in a network namespace of the test's own ----------------------------------------

NETNS_SCRIPT = """
import asyncio, json, subprocess, sys
sys.path.insert(0, {repo!r})
subprocess.run([{ip!r}, "link", "set", "lo", "up"], check=True)
subprocess.run([{ip!r}, "route", "add", "192.0.2.0/24", "dev", "lo"], check=True)
with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
    f.write({group_range!r})
from probes.icmp.probe import IcmpProbe
from probes.probe import run_once

async def main():
    out = {{}}
    for host in {hosts!r}:
        r = await run_once(IcmpProbe("vpn", host, count=4, spacing=0.02, timeout=0.6))
        m = r.endpoint
        out[host] = {{
            "outcome": r.outcome.value, "detail": r.detail, "rtt_ns": r.rtt_ns,
            "sent": m and m.echo_sent, "received": m and m.echo_received,
            "loss": m and m.loss_ratio, "rtt_max": m and m.rtt_max_s,
        }}
    print(json.dumps(out))

asyncio.run(main())
"""


def in_netns(group_range: str, hosts: list[str]) -> dict[str, dict[str, object]]:
    """Run the probe in a fresh network namespace (root's: `unshare --net`)."""
    unshare = require_binary("unshare")
    ip = require_binary("ip")
    script = NETNS_SCRIPT.format(repo=str(REPO), ip=ip, group_range=group_range, hosts=hosts)
    proc = subprocess.run(
        [unshare, "--net", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0 and "unshare failed" in proc.stderr:
        missing_peer(f"cannot create a network namespace: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_icmp_echo_v4_v6_and_loss() -> None:
    out = in_netns("0 2147483647", ["127.0.0.1", "::1", "192.0.2.1"])
    for host in ("127.0.0.1", "::1"):
        r = out[host]
        assert r["outcome"] == "ok", r
        assert (r["sent"], r["received"], r["loss"]) == (4, 4, 0.0)
        assert isinstance(r["rtt_ns"], int) and 0 < r["rtt_ns"] < 50_000_000
    # Routed to lo but no address answers: every echo lost.
    lost = out["192.0.2.1"]
    assert lost["outcome"] == "timeout" and (lost["sent"], lost["received"]) == (4, 0)
    assert lost["loss"] == 1.0 and lost["detail"] == "192.0.2.1: no echo reply of 4"


def test_icmp_refused_by_the_kernel_is_a_clear_outcome() -> None:
    out = in_netns("1 0", ["127.0.0.1", "::1"])
    for r in out.values():
        assert r["outcome"] == "not_permitted"
        detail = str(r["detail"])
        assert "net.ipv4.ping_group_range is '1 0'" in detail and "gid 0" in detail
