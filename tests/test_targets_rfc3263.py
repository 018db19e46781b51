"""Every RFC 3263 target of a trunk probed on its own (issue 14): dnsmasq on loopback serves
the carrier's NAPTR/SRV/A records, Kamailio answers at one target and nothing at the other;
the trunk's state follows its `targets:` rule and the targets follow a record change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dns_peer import host, naptr, running_dnsmasq, srv
from peers import Kamailio, free_port
from test_monitor_e2e import scrape, wait_for

from monitor.app import Monitor
from monitor.config import ConfigError, config_from_text
from monitor.health import TrunkState
from probes.dns.rfc3263 import Target
from probes.dns.settings import ResolverSettings
from probes.options import MalformedCounter, OptionsSettings, SharedUdp
from probes.probe import run_once
from probes.result import Outcome
from probes.targets import TargetsProbe, target_labels

Z = "carrier.test"


def zone(*ports: int, ttl: int = 60) -> list[str]:
    # NAPTR: UDP over TCP; UDP SRV: one target per port, sbc1 the most preferred.
    lines = [
        naptr(Z, 10, 10, "SIP+D2U", f"_sip._udp.{Z}"),
        naptr(Z, 20, 10, "SIP+D2T", f"_sip._tcp.{Z}"),
    ]
    for i, port in enumerate(ports, start=1):
        lines.append(srv(f"_sip._udp.{Z}", f"sbc{i}.{Z}", port, 10 * i, 0))
        lines.append(host(f"sbc{i}.{Z}", "127.0.0.1", ttl=ttl))
    return lines


def config(tmp_path: Path, dns_port: int, rule: str) -> str:
    return f"""
agent: targets
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
dns: {{rfc3263: true, nameserver: 127.0.0.1, port: {dns_port}, timeout: 1s}}
defaults: {{interval: 0.3, timeout: 0.2, down_after: 2, up_after: 2}}
trunks: [{{name: carrier, carrier: c, uri: "sip:{Z}", targets: {rule}}}]
"""


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """One sample's value from a text exposition (labels in any order), None if absent."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


async def test_any_target_up_keeps_the_trunk_up_and_shows_the_dead_one(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    dead = free_port("udp")
    with running_dnsmasq(tmp_path / "dns", zone(kamailio.udp_port, dead), local_domains=[Z]) as d:
        monitor = Monitor(config_from_text(config(tmp_path, d.port, "any")))
        await monitor.start()
        try:
            sbc2 = f"sbc2.{Z}:{dead}/udp"
            probe = next(i.probe for i in monitor.scheduler.items)  # type: ignore[union-attr]
            assert isinstance(probe, TargetsProbe)
            await wait_for(
                lambda: (
                    monitor.health["carrier"].state is TrunkState.UP
                    and sbc2 in probe.last
                    and probe.last[sbc2].outcome is Outcome.TIMEOUT
                ),
                10,
                "up, with the dead target probed",
            )
            metrics = await scrape(monitor)
        finally:
            await monitor.stop()
    sbc1 = f"sbc1.{Z}:{kamailio.udp_port}/udp"
    assert (
        sample(metrics, "trunkwatch_target_up", agent="targets", trunk="carrier", target=sbc1)
        == 1.0
    )
    assert (
        sample(metrics, "trunkwatch_target_up", agent="targets", trunk="carrier", target=sbc2)
        == 0.0
    )
    rtt = sample(
        metrics, "trunkwatch_target_rtt_seconds", agent="targets", trunk="carrier", target=sbc1
    )
    assert rtt is not None and 0 < rtt < 0.2
    assert (
        sample(
            metrics, "trunkwatch_target_rtt_seconds", agent="targets", trunk="carrier", target=sbc2
        )
        is None
    )
    assert sample(metrics, "trunkwatch_targets", agent="targets", trunk="carrier") == 2.0
    assert sample(metrics, "trunkwatch_targets_ignored", agent="targets", trunk="carrier") == 0.0
    assert sample(metrics, "trunkwatch_outage_open", trunk="carrier") == 0.0


async def test_all_targets_rule_opens_an_outage_and_follows_a_record_change(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    dead = free_port("udp")
    records = zone(kamailio.udp_port, dead, ttl=1)
    with running_dnsmasq(tmp_path / "dns", records, local_domains=[Z]) as dns:
        monitor = Monitor(config_from_text(config(tmp_path, dns.port, "all")))
        await monitor.start()
        try:
            await wait_for(
                lambda: monitor.health["carrier"].state is TrunkState.DOWN, 10, "down: one dead"
            )
            down = await scrape(monitor)
            # The carrier drops its dead SBC from DNS: after the 1 s TTL only sbc1 is left.
            dns.serve(zone(kamailio.udp_port, ttl=1))
            await wait_for(
                lambda: monitor.health["carrier"].state is TrunkState.UP, 15, "up once re-resolved"
            )
            up = await scrape(monitor)
        finally:
            await monitor.stop()
    sbc1, sbc2 = f"sbc1.{Z}:{kamailio.udp_port}/udp", f"sbc2.{Z}:{dead}/udp"
    assert sample(down, "trunkwatch_outage_open", trunk="carrier") == 1.0
    assert (
        sample(down, "trunkwatch_target_up", agent="targets", trunk="carrier", target=sbc1) == 1.0
    )
    assert (
        sample(down, "trunkwatch_target_up", agent="targets", trunk="carrier", target=sbc2) == 0.0
    )
    assert sample(up, "trunkwatch_outage_open", trunk="carrier") == 0.0
    assert sample(up, "trunkwatch_targets", agent="targets", trunk="carrier") == 1.0
    assert sample(up, "trunkwatch_target_up", agent="targets", trunk="carrier", target=sbc2) is None


async def test_targets_beyond_the_cap_are_counted_and_the_rest_probed(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    records = zone(kamailio.udp_port, free_port("udp"), free_port("udp"))
    with running_dnsmasq(tmp_path, records, local_domains=[Z]) as dns:
        resolver = ResolverSettings(nameserver="127.0.0.1", port=dns.port, max_targets=1)
        udp = await SharedUdp.open(MalformedCounter())
        settings = OptionsSettings(trunk="t", uri=f"sip:{Z}", timeout=1.0, dns=resolver)
        probe = TargetsProbe(settings, "all", udp=udp.v4, udp_v6=udp.v6, malformed=udp.v4.malformed)
        try:
            result = await run_once(probe)
        finally:
            await probe.close()
            udp.close()
    assert result.outcome is Outcome.OK, result
    assert [s.label for s in probe.states()] == [f"sbc1.{Z}:{kamailio.udp_port}/udp"]
    assert probe.ignored == 2


async def test_a_tcp_target_is_probed_over_tcp(kamailio: Kamailio, tmp_path: Path) -> None:
    records = [
        naptr(Z, 10, 10, "SIP+D2T", f"_sip._tcp.{Z}"),
        srv(f"_sip._tcp.{Z}", f"sbc1.{Z}", kamailio.tcp_port, 10, 0),
        host(f"sbc1.{Z}", "127.0.0.1"),
    ]
    with running_dnsmasq(tmp_path, records, local_domains=[Z]) as dns:
        resolver = ResolverSettings(nameserver="127.0.0.1", port=dns.port)
        udp = await SharedUdp.open(MalformedCounter())
        settings = OptionsSettings(trunk="t", uri=f"sip:{Z}", timeout=1.0, dns=resolver)
        probe = TargetsProbe(settings, "any", udp=udp.v4, udp_v6=udp.v6, malformed=udp.v4.malformed)
        try:
            result = await run_once(probe)
            target = next(iter(probe.probes.values()))
            request = target.last_request
        finally:
            await probe.close()
            udp.close()
    assert result.outcome is Outcome.OK, result
    assert request.startswith(f"OPTIONS sip:{Z} SIP/2.0\r\nVia: SIP/2.0/TCP ".encode())


async def test_nxdomain_is_the_trunks_dns_outcome(tmp_path: Path) -> None:
    with running_dnsmasq(tmp_path, zone(free_port("udp")), local_domains=[Z]) as dns:
        resolver = ResolverSettings(nameserver="127.0.0.1", port=dns.port, timeout=1.0)
        udp = await SharedUdp.open(MalformedCounter())
        settings = OptionsSettings(trunk="t", uri=f"sip:nope.{Z}", timeout=1.0, dns=resolver)
        probe = TargetsProbe(settings, "any", udp=udp.v4, udp_v6=udp.v6, malformed=udp.v4.malformed)
        try:
            result = await run_once(probe)
        finally:
            await probe.close()
            udp.close()
    assert result.outcome is Outcome.DNS
    assert result.detail is not None and "nxdomain" in result.detail
    assert probe.states() == []


def test_target_labels_add_the_address_only_where_a_host_has_several() -> None:
    targets = [
        Target("sbc1.carrier.test", 5060, "udp", "192.0.2.1", "ipv4", 60),
        Target("sbc1.carrier.test", 5060, "udp", "2001:db8::1", "ipv6", 60),
        Target("sbc2.carrier.test", 5061, "tls", "192.0.2.2", "ipv4", 60),
    ]
    assert target_labels(targets) == [
        "sbc1.carrier.test:5060/udp@192.0.2.1",
        "sbc1.carrier.test:5060/udp@2001:db8::1",
        "sbc2.carrier.test:5061/tls",
    ]


@pytest.mark.parametrize(
    ("dns", "trunk", "problem"),
    [
        ("{}", '{name: a, uri: "sip:carrier.test", targets: all}', "needs dns: rfc3263: true"),
        (
            "{rfc3263: true}",
            '{name: a, uri: "sip:192.0.2.1", targets: all}',
            "applies to a URI with a host name and no port",
        ),
        (
            "{rfc3263: true}",
            '{name: a, uri: "sip:carrier.test:5070", targets: any}',
            "applies to a URI with a host name and no port",
        ),
        ("{rfc3263: true}", '{name: a, uri: "sip:carrier.test", targets: most}', "'any' or 'all'"),
    ],
)
def test_a_trunks_own_targets_rule_where_it_cannot_apply_is_a_config_error(
    dns: str, trunk: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_text(f"dns: {dns}\ntrunks:\n  - {trunk}\n")
    assert "trunks[0].targets" in str(err.value) and problem in str(err.value)


def test_the_default_targets_rule_applies_only_where_it_fits() -> None:
    cfg = config_from_text(
        "dns: {rfc3263: true, max_targets: 4}\ndefaults: {targets: all}\ntrunks:\n"
        '  - {name: a, uri: "sip:carrier.test"}\n  - {name: b, uri: "sip:192.0.2.1:5060"}\n'
    )
    assert [t.targets for t in cfg.trunks] == ["all", "all"]
    resolver = cfg.dns.resolver()
    assert resolver is not None and resolver.max_targets == 4
