"""The HTTP side is safe to expose (issue 10): the exporter-toolkit web config (TLS, basic
auth, headers) with a real Prometheus scraping over TLS; API token roles; malformed
Authorization headers; a slow-loris crowd that cannot keep /metrics from answering."""

from __future__ import annotations

import asyncio
import base64
import json
import resource
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import pytest
from peers import Kamailio, TlsFiles
from prom_peer import running_prometheus

from monitor.app import Monitor
from monitor.config import ConfigError, config_from_text

USER, PASSWORD = "prometheus", "scrape-s3cret"  # test fixtures, never real credentials
READ, WRITE = "read-token-xyz", "write-token-xyz"


def web_config(tmp_path: Path, tls: TlsFiles) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(
        json.dumps(
            {
                "tls_server_config": {"cert_file": str(tls.cert), "key_file": str(tls.key)},
                "basic_auth_users": {USER: hashed},
                "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
            }
        )
    )
    return path


def monitor_config(tmp_path: Path, kam: Kamailio, http: str) -> str:
    return f"""
agent: exposed
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0, {http}}}
defaults: {{interval: 0.5, timeout: 0.4}}
trunks: [{{name: kam, carrier: k, uri: "{kam.uri("udp")}"}}]
"""


@pytest.fixture
async def secured(tmp_path: Path, kamailio: Kamailio, tls_ca: TlsFiles) -> AsyncIterator[Monitor]:
    text = monitor_config(tmp_path, kamailio, f"web_config_file: {web_config(tmp_path, tls_ca)}")
    monitor = Monitor(config_from_text(text))
    await monitor.start()
    try:
        yield monitor
    finally:
        await monitor.stop()


def raw_request(port: int, request: bytes, context: ssl.SSLContext | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        sock = plain if context is None else context.wrap_socket(plain, server_hostname="localhost")
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def get(path: str, auth: bytes | None = None) -> bytes:
    header = b"" if auth is None else b"Authorization: " + auth + b"\r\n"
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + header
        + b"\r\n"
    )


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


async def test_prometheus_scrapes_over_tls_with_basic_auth(
    secured: Monitor, tmp_path: Path, tls_ca: TlsFiles
) -> None:
    target = f"127.0.0.1:{secured.bound_port}"
    tls = {"ca_file": str(tls_ca.ca)}
    jobs = [
        {"job_name": "wrong-password", "scheme": "https", "tls_config": tls,
         "basic_auth": {"username": USER, "password": "nope"},
         "static_configs": [{"targets": [target]}]},
        {"job_name": "plain-http", "static_configs": [{"targets": [target]}]},
    ]  # fmt: skip
    good = {
        "scheme": "https",
        "tls_config": tls,
        "basic_auth": {"username": USER, "password": PASSWORD},
    }
    with running_prometheus(tmp_path / "prom", [target], extra_jobs=jobs) as prom:
        # The trunkwatch job, with the right scheme and credentials, is the first one.
        config = json.loads(prom.config_path.read_text())
        config["scrape_configs"][0].update(good)
        prom.config_path.write_text(json.dumps(config))
        prom.stop()
        prom.start()
        deadline = time.monotonic() + 20
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = {t["labels"]["job"]: t["health"] for t in prom.targets()}
            if len(health) == 3 and "unknown" not in health.values():
                break
            await asyncio.sleep(0.5)
        assert health == {"trunkwatch": "up", "wrong-password": "down", "plain-http": "down"}
        assert prom.value('up{job="trunkwatch"}') == 1
        assert prom.value('count(trunkwatch_build_info{job="trunkwatch"})') == 1
        errors = {t["labels"]["job"]: t["lastError"] for t in prom.targets()}
        assert "401" in errors["wrong-password"]


async def test_the_web_config_guards_every_path(secured: Monitor, tls_ca: TlsFiles) -> None:
    port, context = secured.bound_port, tls_ca.client_context()
    for path in ("/metrics", "/healthz", "/api/v1/services"):
        denied = await asyncio.to_thread(raw_request, port, get(path), context)
        assert denied.startswith(b"HTTP/1.1 401"), denied[:100]
        assert b'WWW-Authenticate: Basic realm="trunkwatch"' in denied
    ok = await asyncio.to_thread(raw_request, port, get("/healthz", basic(USER, PASSWORD)), context)
    assert ok.startswith(b"HTTP/1.1 200") and b"X-Frame-Options: deny" in ok
    # Plain HTTP to the TLS port gets no answer a client could take for one.
    plain = await asyncio.to_thread(raw_request, port, get("/healthz"))
    assert not plain.startswith(b"HTTP/1.1 200")


@pytest.fixture
async def api_roles(
    tmp_path: Path, kamailio: Kamailio, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[int]:
    monkeypatch.setenv("TW_READ", READ)
    monkeypatch.setenv("TW_WRITE", WRITE)
    text = monitor_config(tmp_path, kamailio, "read_token_env: TW_READ, write_token_env: TW_WRITE")
    monitor = Monitor(config_from_text(text))
    await monitor.start()
    try:
        yield monitor.bound_port
    finally:
        await monitor.stop()


def status(port: int, request: bytes) -> int:
    reply = raw_request(port, request)
    return int(reply.split(b" ", 2)[1])


def post(path: str, token: bytes) -> bytes:
    body = b'{"reason": "x", "by": "noc"}'
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer " + token + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


async def test_api_tokens_have_roles(api_roles: int) -> None:
    port = api_roles
    reads = "/api/v1/outages"
    assert await asyncio.to_thread(status, port, get(reads)) == 401  # closed by default
    assert await asyncio.to_thread(status, port, get(reads, b"Bearer " + READ.encode())) == 200
    assert await asyncio.to_thread(status, port, get(reads, b"Bearer " + WRITE.encode())) == 200
    assert await asyncio.to_thread(status, port, get("/api/v1/openapi.json")) == 200
    write = "/api/v1/exclusions/no-such/revoke"
    assert await asyncio.to_thread(status, port, post(write, READ.encode())) == 401
    assert await asyncio.to_thread(status, port, post(write, WRITE.encode())) == 404  # allowed
    # /metrics is governed by the web config (none here), not by the API's tokens.
    assert await asyncio.to_thread(status, port, get("/metrics")) == 200


@pytest.mark.parametrize(
    "header",
    [
        b"Bearer \xc3\xa9t\xc3\xa9",  # non-ASCII UTF-8
        b"Bearer \xff\xfe\x80",  # not UTF-8 at all
        b"Bearer",
        b"Bearer    ",
        b"Basic dXNlcjpwYXNz",
        b"Digest realm=x",
        b"bearer" + b"x" * 4000,
        b"\xff",
    ],
)
async def test_malformed_authorization_is_401_never_500(api_roles: int, header: bytes) -> None:
    port = api_roles
    assert await asyncio.to_thread(status, port, get("/api/v1/outages", header)) == 401
    assert (
        await asyncio.to_thread(
            status, port, post("/api/v1/exclusions/x/revoke", header[7:] or b"x")
        )
        == 401
    )


def test_a_bad_web_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  alice: plaintext\ntls_server_config:\n  nope: 1\n")
    with pytest.raises(ConfigError) as info:
        config_from_text(f"http: {{web_config_file: {path}}}\n")
    text = str(info.value)
    assert f"{path}:1: basic_auth_users: " in text and "bcrypt hash" in text
    assert f"{path}:4: tls_server_config.nope: Extra inputs are not permitted" in text
    assert "plaintext" not in text


HALF_SENT = 2000


async def test_slow_loris_cannot_starve_metrics(tmp_path: Path, kamailio: Kamailio) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * HALF_SENT + 200  # both ends live in this process
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    text = monitor_config(
        tmp_path, kamailio, "header_timeout: 2s, max_connections: 500, open_reads: true"
    )
    monitor = Monitor(config_from_text(text))
    await monitor.start()
    crowd: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(HALF_SENT):
            reader, writer = await asyncio.open_connection("127.0.0.1", monitor.bound_port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
            crowd.append((reader, writer))
        started = time.monotonic()
        reply = await asyncio.to_thread(raw_request, monitor.bound_port, get("/metrics"))
        assert reply.startswith(b"HTTP/1.1 200") and b"trunkwatch_build_info" in reply
        assert time.monotonic() - started < 5
        # Every half-sent connection is closed by the server: evicted or timed out.
        closed = await asyncio.wait_for(asyncio.gather(*(r.read() for r, _ in crowd)), timeout=15)
        assert all(data == b"" for data in closed)
    finally:
        for _, writer in crowd:
            writer.close()
        await monitor.stop()


def test_basic_auth_checks() -> None:
    from monitor.web_config import BasicAuth

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    auth = BasicAuth({USER: hashed})
    assert auth.check(basic(USER, PASSWORD).decode())
    assert auth.check(basic(USER, PASSWORD).decode())  # the cached path
    assert not auth.check(basic(USER, "nope").decode())
    assert not auth.check(basic("nobody", PASSWORD).decode())  # the dummy-hash path
    for header in (
        "",
        "Basic",
        "Basic !!!",
        "Bearer x",
        "Basic " + base64.b64encode(b"x").decode(),
    ):
        assert not auth.check(header)
