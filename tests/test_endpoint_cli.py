"""`trunkwatch probe https|tcp|icmp`: one-shot endpoint probes against real peers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from http_peer import Pki, https_server_thread, make_pki
from peers import free_port, missing_peer
from typer.testing import CliRunner, Result

from monitor.cli import probe_app

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> Result:
    return CliRunner().invoke(probe_app, list(args))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_https_ok_and_alive_rule(tmp_path: Path, pki: Pki) -> None:
    with https_server_thread(tmp_path / "srv", pki.leaf, [pki.inter]) as srv:
        url = f"https://127.0.0.1:{srv.port}"
        ca = ["--ca-file", str(pki.ca_file), "--sni", "localhost"]
        ok = cli("https", f"{url}/ok?x=1", *ca)
        down = cli("https", f"{url}/down", *ca, "--json")
        moved = cli("https", f"{url}/moved", *ca, "--expect-status", "200")
        untrusted = cli("https", f"{url}/ok", "--sni", "localhost")
        insecure = cli("https", f"{url}/ok", "--insecure")
    assert ok.exit_code == 0, ok.output
    lines = fields(ok.stdout)
    assert lines["outcome"] == "ok" and lines["status"] == "200" and lines["reason"] == "OK"
    assert {"connect_ms", "tls_ms", "ttfb_ms", "total_ms"} <= set(lines)
    assert float(lines["total_ms"]) >= float(lines["ttfb_ms"]) > 0
    assert srv.paths[0] == "/ok?x=1"
    assert down.exit_code == 1
    assert json.loads(down.stdout)["status"] == 503
    assert json.loads(down.stdout)["outcome"] == "http_error"
    assert moved.exit_code == 1 and fields(moved.stdout)["status"] == "302"
    assert untrusted.exit_code == 1 and fields(untrusted.stdout)["outcome"] == "tls"
    assert insecure.exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["https", "ftp://h/"], "expected https://HOST[:PORT]/PATH"),
        (["https", "https://h/", "--expect-status", "abc"], "is not a status code"),
        (["https", "https://h/", "--ca-file", "/nonexistent/ca.pem"], "https://h/"),
        (["tcp", "localhost"], "a port is needed"),
        (["tcp", "localhost:http"], "bad port"),
        (["icmp", "127.0.0.1", "--count", "50", "--timeout", "1"], "do not fit"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_tcp_connect_and_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        ok = cli("tcp", f"127.0.0.1:{port}", "--json")
    closed = cli("tcp", f"127.0.0.1:{free_port('tcp')}")
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["outcome"] == "ok" and data["connect_ms"] > 0
    assert closed.exit_code == 1 and fields(closed.stdout)["outcome"] == "refused"


def test_icmp_where_the_kernel_refuses_says_which_sysctl(tmp_path: Path) -> None:
    """Run in a network namespace whose ping_group_range excludes us: a clear outcome."""
    from peers import require_binary

    unshare = require_binary("unshare")
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "open('/proc/sys/net/ipv4/ping_group_range', 'w').write('1 0')\n"
        "from monitor.cli import main\n"
        "sys.argv = ['trunkwatch', 'probe', 'icmp', '127.0.0.1', '--count', '2']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [unshare, "--net", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    if proc.returncode != 0 and "unshare failed" in proc.stderr:
        missing_peer(f"cannot create a network namespace: {proc.stderr.strip()}")
    assert proc.returncode == 1, proc.stderr
    lines = fields(proc.stdout)
    assert lines["outcome"] == "not_permitted"
    assert "net.ipv4.ping_group_range is '1 0'" in lines["detail"]


def test_icmp_echo_in_a_namespace(tmp_path: Path) -> None:
    from peers import require_binary

    unshare = require_binary("unshare")
    ip = require_binary("ip")
    script = (
        "import subprocess, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        f"subprocess.run([{ip!r}, 'link', 'set', 'lo', 'up'], check=True)\n"
        "open('/proc/sys/net/ipv4/ping_group_range', 'w').write('0 2147483647')\n"
        "from monitor.cli import main\n"
        "sys.argv = ['trunkwatch', 'probe', 'icmp', '::1', '--count', '3', '--spacing', '0.05',"
        " '--json']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [unshare, "--net", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0 and "unshare failed" in proc.stderr:
        missing_peer(f"cannot create a network namespace: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["sent"], data["received"], data["loss_ratio"]) == (3, 3, 0.0)
    assert 0 < data["rtt_min_ms"] <= data["rtt_avg_ms"] <= data["rtt_max_ms"] < 50


def test_check_config_lists_the_endpoints() -> None:
    # A process of its own: the whole app's callback configures logging for the streams it
    # is given, and CliRunner's are closed after the call (later tests' logs then fail).
    example = REPO / "docs" / "trunkwatch.example.yaml"
    trunkwatch = str(Path(sys.executable).parent / "trunkwatch")
    result = subprocess.run(
        [trunkwatch, "check-config", "-c", str(example)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TRUNKWATCH_CARRIER_B_PASSWORD": "x"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  uc-proxy: https uc.customer.example:443 every 30s (endpoint, reverse_proxy)\n" in (
        result.stdout
    )
    assert "  vpn-mx: icmp 203.0.113.9 every 30s (endpoint, vpn)\n" in result.stdout
