"""Trunks that must register (issue 14): the daemon keeps each registration with the trunk's
own credentials against a real Kamailio registrar (digest auth), shows it on /metrics, and
un-registers at stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import TlsFiles
from registrar_peer import USERS, Registrar, running_registrar
from test_monitor_e2e import scrape, wait_for

from monitor.app import Monitor
from monitor.config import ConfigError, config_from_text
from probes.hostport import split_host_port


@pytest.fixture
def registrar(tmp_path: Path, tls_ca: TlsFiles) -> Iterator[Registrar]:
    with running_registrar(tmp_path / "registrar", tls_ca) as reg:
        yield reg


def config(tmp_path: Path, reg: Registrar, user: str) -> str:
    return f"""
agent: reg
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
trunks:
  - name: carrier-a
    carrier: a
    uri: "sip:{reg.host}:{reg.udp_port}"
    auth: {{username: {user}, password_env: TRUNK_PASSWORD}}
    registration: {{registrar: "{reg.host}:{reg.udp_port}", expires: 300}}
"""


async def test_the_daemon_keeps_the_registration_and_drops_it_at_stop(
    tmp_path: Path, registrar: Registrar
) -> None:
    env = {"TRUNK_PASSWORD": USERS["alice"]}
    monitor = Monitor(config_from_text(config(tmp_path, registrar, "alice"), env=env))
    await monitor.start()
    try:
        registration = monitor.registrations.registrations["carrier-a"]
        await wait_for(lambda: registration.state.registered, 10, "registered")
        assert len(registrar.bindings("alice")) == 1
        text = await scrape(monitor)
    finally:
        await monitor.stop()
    assert 'trunkwatch_sip_registered{agent="reg",trunk="carrier-a"} 1.0' in text
    assert (
        'trunkwatch_sip_register_attempts_total{agent="reg",outcome="ok",trunk="carrier-a"} 1.0'
        in text
    )
    assert (
        'trunkwatch_sip_registration_expiry_timestamp_seconds{agent="reg",trunk="carrier-a"}'
        in text
    )
    assert USERS["alice"] not in text
    assert registrar.bindings("alice") == {}  # un-registered at stop


async def test_a_wrong_password_is_counted_not_registered(
    tmp_path: Path, registrar: Registrar
) -> None:
    env = {"TRUNK_PASSWORD": "not-the-password"}
    monitor = Monitor(config_from_text(config(tmp_path, registrar, "alice"), env=env))
    await monitor.start()
    try:
        registration = monitor.registrations.registrations["carrier-a"]
        await wait_for(lambda: registration.state.last_outcome is not None, 10, "an attempt")
        text = await scrape(monitor)
    finally:
        await monitor.stop()
    assert 'trunkwatch_sip_registered{agent="reg",trunk="carrier-a"} 0.0' in text
    assert (
        'trunkwatch_sip_register_attempts_total{agent="reg",outcome="auth_loop",'
        'trunk="carrier-a"} 1.0' in text
    )


def test_register_needs_the_trunks_credentials(tmp_path: Path) -> None:
    text = 'trunks: [{name: t, uri: "sip:127.0.0.1:5060", registration: {expires: 60}}]\n'
    with pytest.raises(ConfigError, match="registration needs the trunk's auth"):
        config_from_text(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reg.example", ("reg.example", 5060)),
        ("reg.example:5070", ("reg.example", 5070)),
        ("[2001:db8::1]", ("2001:db8::1", 5060)),
        ("[2001:db8::1]:5080", ("2001:db8::1", 5080)),
        ("2001:db8::1", ("2001:db8::1", 5060)),
    ],
)
def test_registrar_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text, 5060) == expected


async def test_a_required_registration_lost_takes_the_trunk_down(
    tmp_path: Path, registrar: Registrar
) -> None:
    text = (
        config(tmp_path, registrar, "alice").replace(
            "expires: 300}", "expires: 300, required: true}"
        )
        + "defaults: {interval: 0.2, timeout: 0.15, down_after: 3, up_after: 2}\n"
    )
    env = {"TRUNK_PASSWORD": "not-the-password"}  # OPTIONS are answered; REGISTER is refused
    monitor = Monitor(config_from_text(text, env=env))
    await monitor.start()
    try:
        await wait_for(lambda: monitor.health["carrier-a"].open_outage is not None, 10, "an outage")
        outage = monitor.health["carrier-a"].open_outage
        text = await scrape(monitor)
    finally:
        await monitor.stop()
    assert outage is not None and outage.first_outcome == "unregistered"
    assert (
        'trunkwatch_probe_outcome_total{agent="reg",outcome="unregistered",probe="options",'
        'trunk="carrier-a"}' in text
    )


def test_a_bad_registrar_is_a_config_error() -> None:
    text = (
        'trunks: [{name: t, uri: "sip:127.0.0.1:5060", auth: {username: u, password_env: P},'
        ' registration: {registrar: "reg.example:99999"}}]\n'
    )
    with pytest.raises(ConfigError, match=r"registrar.*bad port"):
        config_from_text(text, env={"P": "x"})
