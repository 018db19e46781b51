"""RFC 3263 location against a real DNS server: dnsmasq on 127.0.0.1 (tests/dns_peer.py)
serving NAPTR, SRV and A/AAAA records, through SipResolver and `trunkwatch probe dns`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from dns_peer import Dnsmasq, host, naptr, running_dnsmasq, silent_udp_port, srv
from typer.testing import CliRunner

from monitor.cli import probe_app
from probes.dns.resolver import ResolvedTargets, SipResolver
from probes.dns.rfc3263 import DnsFailure
from probes.dns.settings import ResolverSettings
from probes.dns.srv_order import RandInt

pytestmark = pytest.mark.peers

Z = "carrier.test"
ZONE = [
    # NAPTR: TCP before UDP (order 10 < 20); an SCTP record the client must skip.
    naptr(Z, 10, 10, "SIP+D2T", f"_sip._tcp.{Z}"),
    naptr(Z, 20, 10, "SIP+D2U", f"_sip._udp.{Z}"),
    naptr(Z, 5, 10, "SIP+D2S", f"_sip._sctp.{Z}"),
    srv(f"_sip._tcp.{Z}", f"sbc1.{Z}", 5060, 10, 60),
    srv(f"_sip._tcp.{Z}", f"sbc2.{Z}", 5062, 10, 40),
    srv(f"_sip._tcp.{Z}", f"backup.{Z}", 5070, 20, 0),
    srv(f"_sip._udp.{Z}", f"sbc1.{Z}", 5060, 0, 0),
    host(f"sbc1.{Z}", "192.0.2.1", "2001:db8::1", ttl=30),
    host(f"sbc2.{Z}", "192.0.2.2"),
    host(f"backup.{Z}", "198.51.100.9"),
    # SRV only (no NAPTR): UDP and TLS.
    srv(f"_sip._udp.srvonly.{Z}", f"edge.srvonly.{Z}", 5080, 0, 0),
    srv(f"_sips._tcp.srvonly.{Z}", f"edge.srvonly.{Z}", 5081, 0, 0),
    host(f"edge.srvonly.{Z}", "192.0.2.30"),
    # No NAPTR, no SRV: A (and AAAA) of the domain itself, default ports.
    host(f"aonly.{Z}", "192.0.2.40"),
    host(f"v6only.{Z}", "2001:db8::50"),
    # Names that exist without any address: no_records, not nxdomain.
    srv(f"_sip._udp.noaddr.{Z}", f"ghost.noaddr.{Z}", 5060, 0, 0),
    host(f"noaddr.{Z}", "192.0.2.60"),  # the domain exists; ghost.noaddr does not
]


def first(a: int, b: int) -> int:
    return a


def last(a: int, b: int) -> int:
    return b


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dnsmasq]:
    with running_dnsmasq(tmp_path_factory.mktemp("dnsmasq"), ZONE, local_domains=[Z]) as server:
        yield server


def resolver(server: Dnsmasq, randint: RandInt = first, timeout: float = 2.0) -> SipResolver:
    settings = ResolverSettings(nameserver=server.host, port=server.port, timeout=timeout)
    return SipResolver(settings, randint=randint)


def brief(resolved: ResolvedTargets) -> list[tuple[str, str, int, str]]:
    return [(t.transport, t.host, t.port, t.address) for t in resolved.targets]


async def test_naptr_srv_address(dnsmasq: Dnsmasq) -> None:
    resolved = await resolver(dnsmasq).resolve(f"sip:{Z}")
    assert brief(resolved) == [
        ("tcp", f"sbc1.{Z}", 5060, "192.0.2.1"),  # priority 10, weight 60 (the low draw)
        ("tcp", f"sbc1.{Z}", 5060, "2001:db8::1"),
        ("tcp", f"sbc2.{Z}", 5062, "192.0.2.2"),  # priority 10, weight 40
        ("tcp", f"backup.{Z}", 5070, "198.51.100.9"),  # priority 20
        ("udp", f"sbc1.{Z}", 5060, "192.0.2.1"),  # NAPTR order 20
        ("udp", f"sbc1.{Z}", 5060, "2001:db8::1"),
    ]
    assert resolved.targets[1].family == "ipv6"
    # --host-record's TTL (30) under dnsmasq's --local-ttl (60) for NAPTR/SRV/other hosts.
    assert [t.ttl for t in resolved.targets[:4]] == [30, 30, 60, 60]
    assert resolved.ttl == 30


async def test_weight_with_the_high_draw(dnsmasq: Dnsmasq) -> None:
    resolved = await resolver(dnsmasq, randint=last).resolve(f"sip:{Z}")
    assert [t.host for t in resolved.targets[:3]] == [f"sbc2.{Z}", f"sbc1.{Z}", f"sbc1.{Z}"]


async def test_weights_spread_over_many_draws(dnsmasq: Dnsmasq) -> None:
    # The real random source: either of one priority's records may lead (weights 60 and 40).
    sip = SipResolver(ResolverSettings(nameserver=dnsmasq.host, port=dnsmasq.port))
    leads = [(await sip.resolve(f"sip:{Z};transport=tcp")).targets[0].host for _ in range(60)]
    assert {f"sbc1.{Z}", f"sbc2.{Z}"} == set(leads)


async def test_sips_uses_only_sips_records(dnsmasq: Dnsmasq) -> None:
    resolved = await resolver(dnsmasq).resolve(f"sips:srvonly.{Z}")
    assert brief(resolved) == [("tls", f"edge.srvonly.{Z}", 5081, "192.0.2.30")]


async def test_srv_only(dnsmasq: Dnsmasq) -> None:
    resolved = await resolver(dnsmasq).resolve(f"sip:srvonly.{Z}")
    assert brief(resolved) == [
        ("udp", f"edge.srvonly.{Z}", 5080, "192.0.2.30"),
        ("tls", f"edge.srvonly.{Z}", 5081, "192.0.2.30"),
    ]


async def test_address_fallback(dnsmasq: Dnsmasq) -> None:
    sip = resolver(dnsmasq)
    assert brief(await sip.resolve(f"sip:aonly.{Z}")) == [("udp", f"aonly.{Z}", 5060, "192.0.2.40")]
    assert brief(await sip.resolve(f"sips:aonly.{Z}")) == [
        ("tls", f"aonly.{Z}", 5061, "192.0.2.40")
    ]
    explicit = await sip.resolve(f"sip:aonly.{Z}:5099;transport=tcp")
    assert brief(explicit) == [("tcp", f"aonly.{Z}", 5099, "192.0.2.40")]


async def test_aaaa_only(dnsmasq: Dnsmasq) -> None:
    resolved = await resolver(dnsmasq).resolve(f"sip:v6only.{Z}")
    assert brief(resolved) == [("udp", f"v6only.{Z}", 5060, "2001:db8::50")]
    assert resolved.targets[0].family == "ipv6"


async def test_nxdomain(dnsmasq: Dnsmasq) -> None:
    with pytest.raises(DnsFailure) as caught:
        await resolver(dnsmasq).resolve(f"sip:nope.{Z}")
    assert caught.value.kind == "nxdomain" and f"nope.{Z}" in caught.value.detail


async def test_no_records(dnsmasq: Dnsmasq) -> None:
    with pytest.raises(DnsFailure) as caught:
        await resolver(dnsmasq).resolve(f"sip:noaddr.{Z}")
    assert caught.value.kind == "no_records"


async def test_refused_is_a_server_failure(dnsmasq: Dnsmasq) -> None:
    # dnsmasq answers REFUSED outside its local domains (it has no upstream).
    with pytest.raises(DnsFailure) as caught:
        await resolver(dnsmasq).resolve("sip:elsewhere.example")
    assert caught.value.kind == "servfail" and "REFUSED" in caught.value.detail


async def test_timeout_where_nothing_answers() -> None:
    with silent_udp_port() as port:
        settings = ResolverSettings(nameserver="127.0.0.1", port=port, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(DnsFailure) as caught:
            await SipResolver(settings).resolve(f"sip:{Z}")
        elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert elapsed < 3.0  # one round of queries, not every stage's


async def test_record_change_after_ttl(tmp_path: Path) -> None:
    before = [srv(f"_sip._udp.{Z}", f"a.{Z}", 5060, 0, 0), host(f"a.{Z}", "192.0.2.1", ttl=1)]
    after = [srv(f"_sip._udp.{Z}", f"b.{Z}", 5090, 0, 0), host(f"b.{Z}", "192.0.2.99", ttl=1)]
    with running_dnsmasq(tmp_path / "dnsmasq", before, local_domains=[Z], local_ttl=1) as server:
        sip = resolver(server)
        first_run = await sip.resolve(f"sip:{Z}")
        assert brief(first_run) == [("udp", f"a.{Z}", 5060, "192.0.2.1")]
        assert first_run.ttl == 1 and first_run.expires_at is not None
        server.serve(after)
        # What a caller does: keep the targets until they expire, then ask again.
        await asyncio.sleep(max(0.0, first_run.expires_at - time.monotonic()))
        second_run = await sip.resolve(f"sip:{Z}")
        assert brief(second_run) == [("udp", f"b.{Z}", 5090, "192.0.2.99")]
        assert second_run.expires_at is not None
        assert second_run.expires_at > first_run.expires_at


async def test_numeric_host_asks_nobody() -> None:
    with silent_udp_port() as port:
        settings = ResolverSettings(nameserver="127.0.0.1", port=port, timeout=0.2)
        resolved = await SipResolver(settings).resolve("sips:192.0.2.7")
    assert brief(resolved) == [("tls", "192.0.2.7", 5061, "192.0.2.7")]
    assert resolved.ttl is None and resolved.expires_at is None


# --- the command line ----------------------------------------------------------------------


def dns_cli(*args: str) -> Result:
    return CliRunner().invoke(probe_app, ["dns", *args])


def test_cli_lists_targets(dnsmasq: Dnsmasq) -> None:
    result = dns_cli(f"sip:{Z}", "--nameserver", f"{dnsmasq.host}:{dnsmasq.port}")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ttl: 30"
    # The CLI draws real random numbers: sbc1 and sbc2 (one priority) come in either order.
    assert sorted(line.partition(" ")[2] for line in lines[1:4]) == [
        f"tcp sbc1.{Z}:5060 192.0.2.1 ttl=30",
        f"tcp sbc1.{Z}:5060 2001:db8::1 ttl=30",
        f"tcp sbc2.{Z}:5062 192.0.2.2 ttl=60",
    ]
    assert lines[4:] == [
        f"4. tcp backup.{Z}:5070 198.51.100.9 ttl=60",
        f"5. udp sbc1.{Z}:5060 192.0.2.1 ttl=30",
        f"6. udp sbc1.{Z}:5060 2001:db8::1 ttl=30",
    ]


def test_cli_json(dnsmasq: Dnsmasq) -> None:
    result = dns_cli(f"sips:srvonly.{Z}", "--nameserver", f"127.0.0.1:{dnsmasq.port}", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "uri": f"sips:srvonly.{Z}",
        "ok": True,
        "ttl": 60,
        "targets": [
            {"host": f"edge.srvonly.{Z}", "port": 5081, "transport": "tls",
             "address": "192.0.2.30", "family": "ipv4", "ttl": 60},
        ],
    }  # fmt: skip


def test_cli_dns_failure_exits_1(dnsmasq: Dnsmasq) -> None:
    result = dns_cli(f"sip:nope.{Z}", "--nameserver", f"127.0.0.1:{dnsmasq.port}", "--json")
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["ok"] is False and body["kind"] == "nxdomain"
    text = dns_cli(f"sip:nope.{Z}", "--nameserver", f"127.0.0.1:{dnsmasq.port}")
    assert text.exit_code == 1 and "nxdomain" in text.stderr and text.stdout == ""


def test_cli_timeout_exits_1() -> None:
    with silent_udp_port() as port:
        result = dns_cli(f"sip:{Z}", "--nameserver", f"127.0.0.1:{port}", "--timeout", "0.2")
    assert result.exit_code == 1 and "timeout" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["http://carrier.test"],
        [f"sip:{Z};transport=sctp"],
        [f"sip:{Z}", "--nameserver", "127.0.0.1:99999"],
        [f"sip:{Z}", "--timeout", "0"],
    ],
)
def test_cli_usage_errors_exit_2(args: list[str]) -> None:
    result = dns_cli(*args)
    assert result.exit_code == 2 and "error" in result.stderr
