"""Smoke tests proving the peer fixtures are real: Kamailio runs and restarts, promtool lints."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from peers import (
    Kamailio,
    Promtool,
    TlsFiles,
    free_port,
    free_port_both,
    options_ping,
    options_request,
    require_binary,
    running_kamailio,
    status_code_of,
)

pytestmark = pytest.mark.peers


def test_require_binary_finds_an_installed_tool() -> None:
    path = require_binary("openssl")
    assert Path(path).is_file()


def test_require_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-peer-binary"):
        require_binary("no-such-peer-binary")


def test_require_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-peer-binary"):
        require_binary("no-such-peer-binary")


def test_free_ports_are_bindable_and_distinct() -> None:
    both = free_port_both()
    udp = free_port("udp")
    tcp = free_port("tcp")
    assert len({both, udp, tcp}) == 3
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
        u.bind(("127.0.0.1", both))
        t.bind(("127.0.0.1", both))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", udp))


def test_status_code_of_reads_only_sip_status_lines() -> None:
    assert status_code_of(b"SIP/2.0 503 Service Unavailable\r\n\r\n") == 503
    assert status_code_of(b"HTTP/1.1 200 OK\r\n\r\n") is None
    assert status_code_of(options_request("127.0.0.1", 5060, "udp", "127.0.0.1", 1)) is None


def test_tls_ca_chain_verifies_with_openssl(tls_ca: TlsFiles) -> None:
    openssl = require_binary("openssl")
    for leaf, purpose in ((tls_ca.cert, "sslserver"), (tls_ca.client_cert, "sslclient")):
        proc = subprocess.run(
            [openssl, "verify", "-CAfile", str(tls_ca.ca), "-purpose", purpose, str(leaf)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    text = subprocess.run(
        [openssl, "x509", "-in", str(tls_ca.cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "IP Address:127.0.0.1" in text
    assert "DNS:localhost" in text


def test_kamailio_answers_options_on_udp_tcp_and_tls(kamailio: Kamailio, tls_ca: TlsFiles) -> None:
    assert kamailio.tcp_port == kamailio.udp_port != kamailio.tls_port
    assert options_ping(kamailio.udp_port, "udp") == 200
    assert options_ping(kamailio.tcp_port, "tcp") == 200
    # Verified against the test CA, for both names in the certificate.
    assert options_ping(kamailio.tls_port, "tls", ssl_context=tls_ca.client_context()) == 200
    assert (
        options_ping(
            kamailio.tls_port, "tls", host="localhost", ssl_context=tls_ca.client_context()
        )
        == 200
    )
    assert kamailio.uri("tls") == f"sip:127.0.0.1:{kamailio.tls_port};transport=tls"
    assert kamailio.uri("udp") == f"sip:127.0.0.1:{kamailio.udp_port};transport=udp"


def test_kamailio_tls_is_refused_by_a_client_that_does_not_trust_the_ca(
    kamailio: Kamailio,
) -> None:
    untrusting = ssl.create_default_context()  # system CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        options_ping(kamailio.tls_port, "tls", ssl_context=untrusting)


def test_kamailio_replies_404_to_other_methods(kamailio: Kamailio) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind(("127.0.0.1", 0))
        local_port = sock.getsockname()[1]
        request = options_request("127.0.0.1", kamailio.udp_port, "udp", "127.0.0.1", local_port)
        info = request.replace(b"OPTIONS", b"INFO")  # request line and CSeq method
        sock.sendto(info, ("127.0.0.1", kamailio.udp_port))
        assert status_code_of(sock.recv(65536)) == 404


def test_kamailio_stop_silences_all_transports_and_start_restores_them(
    kamailio: Kamailio, tls_ca: TlsFiles
) -> None:
    ctx = tls_ca.client_context()
    kamailio.stop()
    assert kamailio.pid is None
    assert options_ping(kamailio.udp_port, "udp", timeout=0.2) is None
    assert options_ping(kamailio.tcp_port, "tcp", timeout=0.2) is None
    assert options_ping(kamailio.tls_port, "tls", timeout=0.2, ssl_context=ctx) is None
    kamailio.start()
    assert kamailio.pid is not None
    assert options_ping(kamailio.udp_port, "udp") == 200
    assert options_ping(kamailio.tcp_port, "tcp") == 200
    assert options_ping(kamailio.tls_port, "tls", ssl_context=ctx) == 200
    log = kamailio.log_text()  # one log across restarts
    assert "start #1 ===" in log
    assert "start #2 ===" in log


def test_kamailio_with_required_client_cert(tmp_path: Path, tls_ca: TlsFiles) -> None:
    with running_kamailio(tmp_path, tls_ca, require_client_cert=True) as kam:
        mutual = tls_ca.client_context(with_client_cert=True)
        assert options_ping(kam.tls_port, "tls", ssl_context=mutual) == 200
        # Without a client certificate the handshake (or the first read) is refused.
        try:
            code = options_ping(kam.tls_port, "tls", ssl_context=tls_ca.client_context())
        except (ssl.SSLError, OSError):
            code = None
        assert code is None


def test_kamailio_teardown_leaves_no_process(tmp_path: Path, tls_ca: TlsFiles) -> None:
    with running_kamailio(tmp_path, tls_ca) as kam:
        pid = kam.pid
        assert pid is not None
    assert kam.pid is None
    assert not Path(f"/proc/{pid}").exists()
    assert options_ping(kam.udp_port, "udp", timeout=0.2) is None


def test_promtool_flags_a_gauge_named_total(promtool: Promtool) -> None:
    rc, out = promtool.check_metrics(
        "# HELP foo_total A thing.\n# TYPE foo_total gauge\nfoo_total 1\n"
    )
    assert rc != 0
    assert "_total" in out


def test_promtool_accepts_good_text(promtool: Promtool) -> None:
    good = (
        "# HELP trunkwatch_probes_total Probes sent.\n"
        "# TYPE trunkwatch_probes_total counter\n"
        'trunkwatch_probes_total{target="carrier-a"} 3\n'
    )
    assert promtool.check_metrics(good) == (0, "")


def test_promtool_rejects_unparseable_text(promtool_path: str) -> None:
    rc, out = Promtool(promtool_path).check_metrics("garbage{{ 1\n")
    assert rc != 0
    assert "pars" in out
