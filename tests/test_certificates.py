"""Certificate checks of SIP-TLS trunks and configured endpoints (issue 14): real TLS servers
on 127.0.0.1 serving certificates made by the test; the figures on a running monitor's
/metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from child_imports import loaded_after
from peers import free_port
from test_monitor_e2e import scrape, wait_for
from tls_pki import DAY, NOW, Issued, issue, tls_server

from monitor.app import Monitor
from monitor.certificates import TRUNK_ROLE, CertificateWatch, _may_be_tls, targets
from monitor.config import config_from_text
from monitor.metrics.exposition import ExpositionFormat, go_float
from probes.sip.uri import SipUri
from probes.tls.report import REASONS

LOCAL = {"dns": ["localhost"], "ips": ["127.0.0.1"]}
VALID = "trunkwatch_tls_cert_valid"


@pytest.fixture(scope="module")
def ca() -> tuple[Issued, Issued]:
    root = issue("Test Root CA", None, ca=True, not_after=NOW + 3650 * DAY)
    return root, issue("Test Intermediate CA", root, ca=True, not_after=NOW + 1000 * DAY)


def write_ca(tmp_path: Path, root: Issued) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(root.pem)
    return path


def config(tmp_path: Path, ca_file: Path, endpoints: str) -> str:
    return f"""
agent: certs
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
certificates:
  interval: 1h
  timeout: 2s
  endpoints:
{endpoints}
trunks:
  - name: sbc-tls
    carrier: c
    uri: "sips:localhost:5061"
    tls: {{ca_file: "{ca_file}"}}
  - name: sbc-udp
    carrier: c
    uri: "sip:127.0.0.1:5060"
"""


def test_targets_are_the_tls_trunks_then_the_endpoints(
    tmp_path: Path, ca: tuple[Issued, Issued]
) -> None:
    ca_file = write_ca(tmp_path, ca[0])
    endpoints = (
        f'    - {{name: edge, host: localhost, port: 8443, role: edge, ca_file: "{ca_file}"}}'
    )
    cfg = config_from_text(config(tmp_path, ca_file, endpoints))
    found = [(t.name, t.role, t.host, t.port) for t in targets(cfg)]
    assert found == [
        ("sbc-tls", TRUNK_ROLE, "localhost", 5061),
        ("edge", "edge", "localhost", 8443),
    ]


async def test_a_valid_expiring_and_an_unreachable_certificate(
    tmp_path: Path, ca: tuple[Issued, Issued]
) -> None:
    root, inter = ca
    ca_file = write_ca(tmp_path, root)
    soon = issue("localhost", inter, not_after=NOW + 10 * DAY, **LOCAL)  # type: ignore[arg-type]
    expired = issue("localhost", inter, not_before=NOW - 9 * DAY, not_after=NOW - DAY, **LOCAL)  # type: ignore[arg-type]
    closed = free_port("tcp")
    async with (
        tls_server(tmp_path / "soon", soon, [inter]) as soon_port,
        tls_server(tmp_path / "old", expired, [inter]) as old_port,
    ):
        endpoints = "\n".join(
            f"    - {{name: {name}, host: localhost, port: {port}, role: {role}, "
            f'ca_file: "{ca_file}"}}'
            for name, port, role in (
                ("edge", soon_port, "edge"),
                ("proxy", old_port, "reverse_proxy"),
                ("adsync", closed, "directory_sync"),
            )
        )
        cfg = config_from_text(config(tmp_path, ca_file, endpoints))
        watch = CertificateWatch.from_config(cfg)
        watch.targets = [t for t in watch.targets if t.name != "sbc-tls"]  # no SBC here
        for target in watch.targets:
            await watch.check(target)
    text = watch.render(ExpositionFormat.TEXT)
    lines = set(text.splitlines())
    expiry = go_float(soon.cert.not_valid_after_utc.timestamp())
    edge, proxy = (
        'agent="certs",endpoint="edge",role="edge"',
        'agent="certs",endpoint="proxy",role="reverse_proxy"',
    )
    assert f"trunkwatch_tls_cert_expiry_timestamp_seconds{{{edge}}} {expiry}" in lines
    for reason in REASONS:
        assert (
            f'{VALID}{{agent="certs",endpoint="edge",reason="{reason}",role="edge"}} 1.0' in lines
        )
        bad = 0.0 if reason == "expired" else 1.0  # only that: same host, same chain
        assert (
            f'{VALID}{{agent="certs",endpoint="proxy",reason="{reason}",'
            f'role="reverse_proxy"}} {bad}' in lines
        )
    assert f"trunkwatch_tls_cert_check_success{{{proxy}}} 1.0" in lines
    assert (
        'trunkwatch_tls_cert_check_success{agent="certs",endpoint="adsync",'
        'role="directory_sync"} 0.0' in lines
    )
    assert not [line for line in lines if "adsync" in line and "expiry" in line]
    assert watch.states["adsync"].error == "refused"


async def test_the_running_monitor_exports_them(tmp_path: Path, ca: tuple[Issued, Issued]) -> None:
    root, inter = ca
    ca_file = write_ca(tmp_path, root)
    leaf = issue("localhost", inter, **LOCAL)  # type: ignore[arg-type]
    async with tls_server(tmp_path / "edge", leaf, [inter]) as port:
        endpoints = (
            f'    - {{name: edge, host: localhost, port: {port}, role: edge, ca_file: "{ca_file}"}}'
        )
        monitor = Monitor(config_from_text(config(tmp_path, ca_file, endpoints)))
        await monitor.start()
        try:
            await wait_for(lambda: "edge" in monitor.certificates.states, 10, "the check")
            text = await scrape(monitor)
        finally:
            await monitor.stop()
    assert (
        'trunkwatch_tls_cert_check_success{agent="certs",endpoint="edge",role="edge"} 1.0' in text
    )
    assert (
        'trunkwatch_tls_cert_check_success{agent="certs",endpoint="sbc-tls",role="sip_trunk"} 0.0'
        in text
    )
    assert (
        'trunkwatch_tls_cert_expiry_timestamp_seconds{agent="certs",endpoint="edge",role="edge"}'
        in text
    )


@pytest.mark.parametrize(
    "uri",
    [
        "sips:sbc.example",
        "SIPS:sbc.example:5061",
        "sip:sbc.example;transport=tls",
        "sip:sbc.example;transport=TLS",
        "sip:sbc.example;transport=%74ls",
        "sip:sbc.example;TRANSPORT=%54%4C%53",
        "sip:sbc.example;transport=udp",
        "sip:127.0.0.1:5060",
        "sip:alice@sbc.example:5080;transport=tcp",
    ],
)
def test_the_start_up_shortcut_never_misses_a_tls_trunk(uri: str) -> None:
    # targets() skips the URI parse for trunks that cannot be TLS (100,000 at start-up).
    is_tls = SipUri.parse(uri).transport == "tls"
    assert _may_be_tls(uri) or not is_tls
    assert _may_be_tls(uri) == is_tls or "%" in uri


def test_the_daemon_loads_cryptography_only_to_check_a_certificate() -> None:
    """cryptography is ~8 MB resident: the daemon and its API import without it; the first
    certificate check (or evidence bundle) brings it in."""
    assert loaded_after(
        "cryptography",
        "import monitor.app, monitor.api, monitor.cli",
        "from monitor.certificates import CertificateWatch\n"
        "from monitor.sla.evidence import key_fingerprint\n"
        "from probes.tls.cert import inspect_chain",
    ) == [False, True]
