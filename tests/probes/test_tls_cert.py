"""The TLS certificate inspector (probes/tls): certificates made here with `cryptography`,
judged bytes-in/values-out, then fetched from real TLS servers on 127.0.0.1 (an asyncio/ssl
server in the test, `openssl s_server`) and through `trunkwatch probe cert`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from peers import free_port, require_binary
from tls_pki import DAY, NOW, Issued, issue, tls_server, write_pem
from typer.testing import CliRunner

from monitor.cli import probe_app
from probes.tls.cert import inspect_chain
from probes.tls.fetch import CertFetchError, fetch_chain
from probes.tls.hostname import dns_matches, hostname_matches
from probes.tls.report import CertInspectError, CertReport

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Pki:
    root: Issued
    inter: Issued
    other_root: Issued
    leaf: Issued  # EC P-256, DNS:localhost, IP:127.0.0.1, issued by inter
    expired: Issued
    future: Issued
    wildcard: Issued
    weak: Issued
    rsa: Issued
    self_signed: Issued
    no_san: Issued
    ed: Issued
    forged_inter: Issued  # inter's name, another key
    other_leaf: Issued  # issued by other_root's intermediate


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue("Test Root CA", None, ca=True, not_after=NOW + 3650 * DAY)
    inter = issue("Test Intermediate CA", root, ca=True, not_after=NOW + 1000 * DAY)
    other_root = issue("Other Root CA", None, ca=True, not_after=NOW + 3650 * DAY)
    other_inter = issue("Other Intermediate CA", other_root, ca=True)
    local = {"dns": ["localhost"], "ips": ["127.0.0.1"]}
    return Pki(
        root=root,
        inter=inter,
        other_root=other_root,
        leaf=issue("localhost", inter, serial=0xABCDEF, **local),  # type: ignore[arg-type]
        expired=issue(
            "localhost",
            inter,
            not_before=NOW - 100 * DAY,
            not_after=NOW - 2 * DAY,
            **local,  # type: ignore[arg-type]
        ),
        future=issue("localhost", inter, not_before=NOW + 5 * DAY, **local),  # type: ignore[arg-type]
        wildcard=issue("*.example.test", inter, dns=["*.example.test"]),
        weak=issue(
            "weak.test", inter, key=rsa.generate_private_key(65537, 1024), dns=["weak.test"]
        ),
        rsa=issue("rsa.test", inter, key=rsa.generate_private_key(65537, 2048), dns=["rsa.test"]),
        self_signed=issue("localhost", None, **local),  # type: ignore[arg-type]
        no_san=issue("nosan.test", inter),
        ed=issue("ed.test", inter, key=ed25519.Ed25519PrivateKey.generate(), dns=["ed.test"]),
        forged_inter=issue("Test Intermediate CA", root, ca=True),
        other_leaf=issue("localhost", other_inter, **local),  # type: ignore[arg-type]
    )


def check(
    leaf: Issued, pki: Pki, host: str = "localhost", *, served: Sequence[Issued] | None = None,
    anchors: Sequence[bytes] | None = None, now: datetime = NOW,
) -> CertReport:  # fmt: skip
    chain = [leaf.der] + [c.der for c in (served if served is not None else [pki.inter])]
    return inspect_chain(chain, host, anchors if anchors is not None else [pki.root.der], now)


# --- the pure inspector: bytes in, values out ------------------------------------------------


def test_valid_chain_reports_every_field(pki: Pki) -> None:
    r = check(pki.leaf, pki)
    assert r.valid and r.reasons == ()
    assert r.hostname_ok and r.chain_complete and r.chain_valid
    assert r.subject_cn == "localhost" and r.subject == "CN=localhost"
    assert r.sans == ("localhost", "127.0.0.1")
    assert r.issuer == "CN=Test Intermediate CA"
    assert r.not_before == NOW - DAY and r.not_after == NOW + 90 * DAY
    assert r.not_after.tzinfo is not None and r.not_after.utcoffset() == timedelta(0)
    assert r.seconds_left == 90 * 86400 and r.days_left == 90
    assert (r.key_type, r.key_bits) == ("EC P-256", 256)
    assert r.signature_algorithm == "ecdsa-with-SHA256"
    assert r.serial == "abcdef"
    digest = hashlib.sha256(pki.leaf.der).hexdigest().upper()
    assert r.sha256_fingerprint.replace(":", "") == digest
    assert r.sha256_fingerprint.count(":") == 31
    assert r.chain_length == 2
    assert r.host == "localhost"


def test_days_left_counts_down_with_now(pki: Pki) -> None:
    r = check(pki.leaf, pki, now=NOW + 89 * DAY + timedelta(hours=12))
    assert r.seconds_left == 12 * 3600 and r.days_left == 0 and r.valid


def test_report_is_frozen_and_json_ready(pki: Pki) -> None:
    r = check(pki.expired, pki)
    with pytest.raises(AttributeError):
        r.hostname_ok = False  # type: ignore[misc]
    data = json.loads(json.dumps(r.as_dict()))
    assert data["valid"] is False and data["reasons"] == ["expired"]
    assert data["not_after"] == (NOW - 2 * DAY).isoformat()


def test_expired(pki: Pki) -> None:
    r = check(pki.expired, pki)
    assert r.reasons == ("expired",) and not r.valid
    assert r.seconds_left == -2 * 86400 and r.days_left == -2
    assert r.chain_complete and not r.chain_valid and r.hostname_ok


def test_expired_one_second_after_not_after(pki: Pki) -> None:
    assert check(pki.leaf, pki, now=NOW + 90 * DAY).reasons == ()
    r = check(pki.leaf, pki, now=NOW + 90 * DAY + timedelta(seconds=1))
    assert r.reasons == ("expired",) and r.days_left == -1


def test_not_yet_valid(pki: Pki) -> None:
    r = check(pki.future, pki)
    assert r.reasons == ("not_yet_valid",) and not r.chain_valid and r.chain_complete


def test_expired_intermediate_is_reported(pki: Pki) -> None:
    old_inter = issue("Old CA", pki.root, ca=True, not_before=NOW - 9 * DAY, not_after=NOW - DAY)
    leaf = issue("localhost", old_inter, dns=["localhost"])
    r = check(leaf, pki, served=[old_inter])
    assert r.reasons == ("expired",) and r.seconds_left > 0 and r.chain_complete


def test_wrong_host_keeps_the_chain_verdicts(pki: Pki) -> None:
    r = check(pki.leaf, pki, host="sip.example.test")
    assert r.reasons == ("hostname_mismatch",)
    assert not r.hostname_ok and r.chain_complete and r.chain_valid


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("a.example.test", True),
        ("SIP.Example.Test.", True),
        ("example.test", False),
        ("a.b.example.test", False),
        ("a.example.other", False),
    ],
)
def test_wildcard_covers_one_left_most_label(pki: Pki, host: str, ok: bool) -> None:
    r = check(pki.wildcard, pki, host=host)
    assert r.hostname_ok is ok
    assert r.reasons == (() if ok else ("hostname_mismatch",))
    assert r.chain_valid


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("*.example.test", "x.example.test", True),
        ("f*.example.test", "foo.example.test", False),  # partial wildcard: never
        ("*.test", "example.test", False),  # wildcard on a public suffix-like name
        ("a.*.example.test", "a.b.example.test", False),
        ("*", "localhost", False),
        ("bücher.example", "BÜCHER.example", True),
        ("xn--bcher-kva.example", "bücher.example", True),
        ("", "example.test", False),
    ],
)
def test_dns_matching_rules(pattern: str, host: str, ok: bool) -> None:
    assert dns_matches(pattern, host) is ok


def test_ip_hosts_match_ip_sans_only() -> None:
    ip = ipaddress.ip_address("127.0.0.1")
    assert hostname_matches("127.0.0.1", [], [ip])
    assert not hostname_matches("127.0.0.2", [], [ip])
    assert not hostname_matches("127.0.0.1", ["127.0.0.1", "*.0.0.1"], [])
    assert hostname_matches("[::1]", [], [ipaddress.ip_address("::1")])


def test_ip_host_against_the_leaf(pki: Pki) -> None:
    assert check(pki.leaf, pki, host="127.0.0.1").valid
    assert check(pki.leaf, pki, host="127.0.0.9").reasons == ("hostname_mismatch",)


def test_common_name_is_not_used_without_sans(pki: Pki) -> None:
    r = check(pki.no_san, pki, host="nosan.test")
    assert r.subject_cn == "nosan.test" and r.sans == ()
    assert not r.hostname_ok and "hostname_mismatch" in r.reasons


def test_weak_rsa_key(pki: Pki) -> None:
    r = check(pki.weak, pki, host="weak.test")
    assert (r.key_type, r.key_bits) == ("RSA", 1024)
    assert r.reasons == ("weak_key",) and not r.valid and r.chain_complete


def test_rsa_2048_is_fine(pki: Pki) -> None:
    r = check(pki.rsa, pki, host="rsa.test")
    assert (r.key_type, r.key_bits) == ("RSA", 2048) and r.valid
    # The leaf's *signature* is the intermediate's (EC) one.
    assert r.signature_algorithm == "ecdsa-with-SHA256"


def test_rsa_signed_chain_names_its_algorithm(pki: Pki) -> None:
    root = issue("RSA Root", None, ca=True, key=rsa.generate_private_key(65537, 2048))
    leaf = issue("localhost", root, dns=["localhost"])
    r = check(leaf, pki, served=[], anchors=[root.der])
    assert r.signature_algorithm == "sha256WithRSAEncryption" and r.valid


def test_ed25519_key(pki: Pki) -> None:
    r = check(pki.ed, pki, host="ed.test")
    assert (r.key_type, r.key_bits) == ("Ed25519", 256)
    assert r.hostname_ok and r.chain_complete


def test_self_signed(pki: Pki) -> None:
    r = check(pki.self_signed, pki, served=[])
    assert "self_signed" in r.reasons and "untrusted_root" not in r.reasons
    assert not r.chain_complete and not r.chain_valid and r.hostname_ok
    assert r.issuer == r.subject


def test_leaf_only_is_an_incomplete_chain(pki: Pki) -> None:
    r = check(pki.leaf, pki, served=[])
    assert r.reasons == ("incomplete_chain",)
    assert not r.chain_complete and not r.chain_valid and r.chain_length == 1


def test_leaf_issued_directly_by_an_anchor_is_complete(pki: Pki) -> None:
    r = check(pki.leaf, pki, served=[], anchors=[pki.inter.der])
    assert r.chain_complete and r.chain_valid and r.valid


def test_served_root_is_tolerated(pki: Pki) -> None:
    r = check(pki.leaf, pki, served=[pki.inter, pki.root])
    assert r.valid and r.chain_complete and r.chain_length == 3


def test_untrusted_root(pki: Pki) -> None:
    assert check(pki.other_leaf, pki, served=[]).reasons == ("incomplete_chain",)
    r = check(pki.leaf, pki, anchors=[pki.other_root.der])
    assert r.reasons == ("untrusted_root",) and not r.chain_complete and not r.chain_valid
    r = check(pki.leaf, pki, served=[pki.inter, pki.root], anchors=[pki.other_root.der])
    assert r.reasons == ("untrusted_root",)


def test_no_anchors_trusts_nothing(pki: Pki) -> None:
    r = check(pki.leaf, pki, anchors=[])
    assert r.reasons == ("untrusted_root",) and not r.chain_valid


def test_bad_signature(pki: Pki) -> None:
    # An intermediate with the right name but another key: names link, signatures do not.
    r = check(pki.leaf, pki, served=[pki.forged_inter])
    assert r.reasons == ("bad_signature",) and not r.chain_complete and not r.chain_valid
    # The same with an anchor carrying the issuer's name and another key.
    r = check(pki.leaf, pki, served=[], anchors=[pki.forged_inter.der])
    assert r.reasons == ("bad_signature",)


def test_tampered_leaf_signature(pki: Pki) -> None:
    der = bytearray(pki.leaf.der)
    der[-5] ^= 0x01  # inside the signature value
    r = inspect_chain([bytes(der), pki.inter.der], "localhost", [pki.root.der], NOW)
    assert "bad_signature" in r.reasons and not r.chain_valid


def test_chain_the_validator_refuses_for_another_reason(pki: Pki) -> None:
    # Names and signatures link, but the "intermediate" is no CA (basicConstraints CA:FALSE).
    not_ca = issue("Not A CA", pki.root, dns=["not-a-ca.test"])
    leaf = issue("localhost", not_ca, dns=["localhost"])
    r = check(leaf, pki, served=[not_ca])
    assert r.reasons == ("chain_invalid",) and r.chain_complete and not r.chain_valid


def test_several_problems_are_all_named(pki: Pki) -> None:
    r = check(pki.expired, pki, host="other.test", served=[])
    assert r.reasons == ("expired", "hostname_mismatch", "incomplete_chain")


def test_anchors_as_pem_bundle(pki: Pki) -> None:
    bundle = pki.other_root.pem + pki.root.pem
    assert check(pki.leaf, pki, anchors=[bundle]).valid


def test_bad_input() -> None:
    with pytest.raises(CertInspectError):
        inspect_chain([], "localhost", [], NOW)
    with pytest.raises(CertInspectError):
        inspect_chain([b"\x30\x03junk"], "localhost", [], NOW)
    with pytest.raises(ValueError, match="timezone"):
        inspect_chain([b"x"], "localhost", [], NOW.replace(tzinfo=None))


# --- real TLS servers on 127.0.0.1 -----------------------------------------------------------


@asynccontextmanager
async def tcp_server(reply: bytes | None) -> AsyncIterator[int]:
    """A plain TCP server: sends `reply` and closes, or (None) says nothing and waits."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply is None:  # silent until the client gives up
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(reader.read(), 5)
        else:
            writer.write(reply)
            with contextlib.suppress(OSError):
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@contextmanager
def s_server(directory: Path, leaf: Issued, chain: Sequence[Issued]) -> Iterator[int]:
    """`openssl s_server` serving `leaf` + `chain` on a free port, once it accepts."""
    openssl = require_binary("openssl")  # a failure under CI, a skip on a laptop
    cert, key = write_pem(directory, leaf, [])
    extra: list[str] = []
    if chain:
        (directory / "chain.pem").write_bytes(b"".join(c.pem for c in chain))
        extra = ["-cert_chain", str(directory / "chain.pem")]
    port = free_port("tcp")
    proc = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), *extra, "-www", "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"openssl s_server exited: {proc.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_fetch_leaf_and_intermediate(tmp_path: Path, pki: Pki) -> None:
    snis: list[str | None] = []
    async with tls_server(tmp_path, pki.leaf, [pki.inter], snis) as port:
        chain = await fetch_chain("127.0.0.1", port, sni="localhost", timeout=5)
        assert chain == [pki.leaf.der, pki.inter.der]
        await fetch_chain("127.0.0.1", port, sni="sip.example.test", timeout=5)
    assert snis == ["localhost", "sip.example.test"]
    r = inspect_chain(chain, "localhost", [pki.root.der], datetime.now(UTC))
    assert r.valid and r.chain_complete and r.chain_valid and r.chain_length == 2


async def test_fetch_leaf_only_is_incomplete(tmp_path: Path, pki: Pki) -> None:
    async with tls_server(tmp_path, pki.leaf, []) as port:
        chain = await fetch_chain("127.0.0.1", port, sni="localhost", timeout=5)
    assert chain == [pki.leaf.der]
    r = inspect_chain(chain, "localhost", [pki.root.der], datetime.now(UTC))
    assert r.reasons == ("incomplete_chain",) and not r.chain_complete


async def test_fetch_self_signed_and_wrong_host(tmp_path: Path, pki: Pki) -> None:
    async with tls_server(tmp_path, pki.self_signed, []) as port:
        chain = await fetch_chain("127.0.0.1", port, timeout=5)
    r = inspect_chain(chain, "sip.example.test", [pki.root.der], datetime.now(UTC))
    assert r.reasons == ("hostname_mismatch", "self_signed")


async def test_fetch_refused() -> None:
    port = free_port("tcp")
    with pytest.raises(CertFetchError) as err:
        await fetch_chain("127.0.0.1", port, timeout=5)
    assert err.value.reason == "refused" and str(port) in err.value.detail


async def test_fetch_sip_defaults_to_port_5061() -> None:
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 5061))
    except OSError:
        pytest.skip("something uses 127.0.0.1:5061")
    finally:
        probe.close()
    with pytest.raises(CertFetchError) as err:
        await fetch_chain("127.0.0.1", None, timeout=5, starttls="sip")
    assert err.value.reason == "refused" and "127.0.0.1:5061" in err.value.detail


async def test_fetch_timeout() -> None:
    async with tcp_server(None) as port:
        started = time.monotonic()
        with pytest.raises(CertFetchError) as err:
            await fetch_chain("127.0.0.1", port, timeout=0.3)
        assert time.monotonic() - started < 3
    assert err.value.reason == "timeout"


async def test_fetch_handshake_failure_does_not_quote_the_peer() -> None:
    async with tcp_server(b"SIP/2.0 400 Secret-Peer-Bytes\r\n\r\n" * 20) as port:
        with pytest.raises(CertFetchError) as err:
            await fetch_chain("127.0.0.1", port, timeout=5)
    assert err.value.reason == "handshake_failed"
    assert "Secret" not in str(err.value) and len(err.value.detail) <= 120


def test_openssl_s_server_expired(tmp_path: Path, pki: Pki) -> None:
    with s_server(tmp_path, pki.expired, [pki.inter]) as port:
        chain = asyncio.run(fetch_chain("127.0.0.1", port, sni="localhost", timeout=5))
    assert chain == [pki.expired.der, pki.inter.der]
    r = inspect_chain(chain, "localhost", [pki.root.der], datetime.now(UTC))
    assert r.reasons == ("expired",) and r.chain_complete
    assert -3 * 86400 < r.seconds_left <= -2 * 86400 and r.days_left == -3


# --- the command line ----------------------------------------------------------------------


def cert_cli(*args: str) -> Result:
    return CliRunner().invoke(probe_app, ["cert", *args])


@pytest.fixture
def root_pem(tmp_path: Path, pki: Pki) -> Path:
    path = tmp_path / "root.pem"
    path.write_bytes(pki.root.pem)
    return path


def test_cli_valid_certificate(tmp_path: Path, pki: Pki, root_pem: Path) -> None:
    with s_server(tmp_path / "srv", pki.leaf, [pki.inter]) as port:
        result = cert_cli(f"127.0.0.1:{port}", "--sni", "localhost", "--ca-file", str(root_pem))
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert set(lines) == {f.name for f in fields(CertReport)} | {"valid"}
    assert lines["valid"] == "True" and lines["reasons"] == "-"
    assert lines["sans"] == "localhost, 127.0.0.1" and lines["key_type"] == "EC P-256"
    assert lines["issuer"] == "CN=Test Intermediate CA" and lines["serial"] == "abcdef"


def test_cli_expired_certificate_json(tmp_path: Path, pki: Pki, root_pem: Path) -> None:
    with s_server(tmp_path / "srv", pki.expired, [pki.inter]) as port:
        text = cert_cli(f"127.0.0.1:{port}", "--sni", "localhost", "--ca-file", str(root_pem))
        as_json = cert_cli(
            f"127.0.0.1:{port}", "--sni", "other.test", "--ca-file", str(root_pem), "--json"
        )
    assert text.exit_code == 1 and "reasons: expired\n" in text.stdout
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["reasons"] == ["expired", "hostname_mismatch"] and data["valid"] is False
    assert data["host"] == "other.test" and data["chain_complete"] is True


def test_cli_without_ca_file_uses_the_system_store(tmp_path: Path, pki: Pki) -> None:
    # Our test root is in no system store: the served chain cannot link to a trusted CA.
    with s_server(tmp_path / "srv", pki.leaf, [pki.inter]) as port:
        result = cert_cli(f"127.0.0.1:{port}", "--sni", "localhost", "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["reasons"] == ["untrusted_root"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["localhost:99999"], "bad port"),
        (["localhost:http"], "bad port"),
        (["[::1"], "IPv6"),
        (["localhost", "--ca-file", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
    ],
)
def test_cli_usage_errors(args: list[str], message: str) -> None:
    result = cert_cli(*args)
    assert result.exit_code == 2 and message in result.stderr


def test_cli_connect_error(root_pem: Path) -> None:
    port = free_port("tcp")
    result = cert_cli(f"127.0.0.1:{port}", "--ca-file", str(root_pem), "--timeout", "2")
    assert result.exit_code == 2 and "refused" in result.stderr and result.stdout == ""


def test_cli_as_a_process(tmp_path: Path, pki: Pki, root_pem: Path) -> None:
    with s_server(tmp_path / "srv", pki.expired, [pki.inter]) as port:
        proc = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "probe", "cert", f"127.0.0.1:{port}",
             "--sni", "localhost", "--ca-file", str(root_pem)],
            capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "reasons: expired\n" in proc.stdout and "days_left: -3\n" in proc.stdout
