"""A trunk given by its domain is located per RFC 3263 (issue 14): dnsmasq on loopback
serves the carrier's NAPTR/SRV/A records, Kamailio answers at the located target, and a
record change moves the probe once the TTL has run out."""

from __future__ import annotations

from pathlib import Path

from child_imports import loaded_after
from dns_peer import host, naptr, running_dnsmasq, srv
from peers import Kamailio, free_port
from test_monitor_e2e import scrape, wait_for

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState
from probes.dns.settings import ResolverSettings
from probes.options import OptionsSettings, probe_options_once
from probes.result import Outcome

Z = "carrier.test"


def zone(kamailio_port: int, ttl: int = 60) -> list[str]:
    # UDP preferred over TCP by NAPTR order; two SRV targets, the lower priority first.
    return [
        naptr(Z, 10, 10, "SIP+D2U", f"_sip._udp.{Z}"),
        naptr(Z, 20, 10, "SIP+D2T", f"_sip._tcp.{Z}"),
        srv(f"_sip._udp.{Z}", f"sbc1.{Z}", kamailio_port, 10, 0),
        srv(f"_sip._udp.{Z}", f"sbc2.{Z}", free_port("udp"), 20, 0),
        srv(f"_sip._tcp.{Z}", f"sbc1.{Z}", kamailio_port, 10, 0),
        host(f"sbc1.{Z}", "127.0.0.1", ttl=ttl),
        host(f"sbc2.{Z}", "127.0.0.1", ttl=ttl),
    ]


async def test_the_trunk_is_probed_at_its_first_located_target(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    with running_dnsmasq(tmp_path, zone(kamailio.udp_port), local_domains=[Z]) as dns:
        resolver = ResolverSettings(nameserver="127.0.0.1", port=dns.port, timeout=2.0)
        ok, probe = await probe_options_once(
            OptionsSettings(trunk="t", uri=f"sip:{Z}", timeout=2.0, dns=resolver)
        )
        missing, _ = await probe_options_once(
            OptionsSettings(trunk="t", uri=f"sip:nope.{Z}", timeout=2.0, dns=resolver)
        )
    assert ok.outcome is Outcome.OK, ok
    assert probe.addr == ("127.0.0.1", kamailio.udp_port)
    assert missing.outcome is Outcome.DNS
    assert missing.detail is not None and "nxdomain" in missing.detail


async def test_the_monitor_follows_a_record_change_after_the_ttl(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    dead = free_port("udp")
    with running_dnsmasq(tmp_path / "dns", zone(dead, ttl=1), local_domains=[Z]) as dns:
        text = f"""
agent: rfc3263
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
dns: {{rfc3263: true, nameserver: 127.0.0.1, port: {dns.port}, timeout: 1s}}
defaults: {{interval: 0.3, timeout: 0.2, down_after: 2, up_after: 2}}
trunks: [{{name: carrier, carrier: c, uri: "sip:{Z}"}}]
"""
        monitor = Monitor(config_from_text(text))
        await monitor.start()
        try:
            await wait_for(
                lambda: monitor.health["carrier"].state is TrunkState.DOWN, 10, "down at first"
            )
            # The carrier moves its SBC to where Kamailio answers: the TTL is 1 s.
            dns.serve(zone(kamailio.udp_port, ttl=1))
            await wait_for(
                lambda: monitor.health["carrier"].state is TrunkState.UP, 15, "up once re-located"
            )
            metrics = await scrape(monitor)
        finally:
            await monitor.stop()
    up = 'trunkwatch_probe_success{agent="rfc3263",probe="options",trunk="carrier"} 1.0'
    assert up in metrics


def test_the_daemon_loads_dnspython_only_for_a_host_name_trunk() -> None:
    """dnspython is ~2 MB resident: the daemon imports without it (trunks given by address
    need no resolver); the first RFC 3263 resolver brings it in (the tests above use it)."""
    assert loaded_after(
        "dns",
        "import monitor.app, monitor.api, monitor.cli, probes.targets",
        "from probes.dns.resolver import SipResolver",
    ) == [False, True]
