"""Digest authentication (RFC 8760: MD5 and SHA-256, qop=auth) against a challenging Kamailio."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import free_port, kamailio_module_dir, options_ping, require_binary

from probes.options import OptionsSettings, probe_options_once
from probes.result import Outcome

PASSWORD = "s3cret-for-tests"  # a test fixture's credential, never a real one

AUTH_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
mpath="{mpath}"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "auth.so"
modparam("auth", "algorithm", "{algorithm}")
request_route {{
    if ($rU == "proxy") {{
        if (!pv_proxy_authenticate("trunkwatch.test", "{password}", "0")) {{
            proxy_challenge("trunkwatch.test", "1");
            exit;
        }}
    }} else if (!pv_www_authenticate("trunkwatch.test", "{password}", "0")) {{
        www_challenge("trunkwatch.test", "1");
        exit;
    }}
    sl_send_reply("200", "Authenticated");
}}
"""


REALM = "trunkwatch.test"
# Not UTF-8: "réseau" in Latin-1, as some carriers' SBCs send it (issue 10).
LATIN1_REALM = "r\xe9seau.example"


@contextlib.contextmanager
def challenging_kamailio(workdir: Path, algorithm: str, realm: str = REALM) -> Iterator[int]:
    binary = require_binary("kamailio")
    port = free_port("both")
    cfg = workdir / "kamailio-auth.cfg"
    text = AUTH_CFG.format(
        port=port, mpath=kamailio_module_dir() + "/", algorithm=algorithm, password=PASSWORD
    )
    cfg.write_bytes(text.replace(REALM, realm).encode("latin-1"))
    log = (workdir / "kamailio-auth.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-DD", "-E", "-f", str(cfg), "-m", "64", "-M", "8"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while options_ping(port, "udp", timeout=0.2) != 401:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "kamailio-auth.log").read_text()[-3000:])
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        log.close()


@pytest.fixture(params=["MD5", "SHA-256"])
def auth_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, str]]:
    with challenging_kamailio(tmp_path, request.param) as port:
        yield port, request.param


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("user", "challenge"), [("trunk", 401), ("proxy", 407)])
async def test_digest_accepted(
    auth_server: tuple[int, str], transport: str, user: str, challenge: int
) -> None:
    port, algorithm = auth_server
    settings = OptionsSettings(
        trunk="t",
        uri=f"sip:{user}@127.0.0.1:{port};transport={transport}",
        timeout=2.0,
        username="alice",
        password=PASSWORD,
    )
    result, probe = await probe_options_once(settings)
    assert result.outcome is Outcome.OK, result
    assert result.status_code == 200 and result.reason == "Authenticated"
    sent = probe.last_request.decode()
    header = "Authorization" if challenge == 401 else "Proxy-Authorization"
    assert f"\r\n{header}: Digest " in sent
    assert f"algorithm={algorithm}" in sent and "qop=auth" in sent
    assert "CSeq: 2 OPTIONS" in sent  # the retry is a new request in the same call
    assert PASSWORD not in repr(settings) and PASSWORD not in repr(result)


async def test_wrong_password_is_an_auth_failure(auth_server: tuple[int, str]) -> None:
    port, _ = auth_server
    settings = OptionsSettings(
        trunk="t", uri=f"sip:trunk@127.0.0.1:{port}", timeout=2.0, username="alice", password="no"
    )
    result, _ = await probe_options_once(settings)
    assert result.outcome is Outcome.AUTH
    assert result.status_code == 401


async def test_challenge_without_credentials_is_alive_by_policy(
    auth_server: tuple[int, str],
) -> None:
    """A 401 proves the far end answers; without credentials it counts as alive (4xx)."""
    port, _ = auth_server
    result, _ = await probe_options_once(
        OptionsSettings(trunk="t", uri=f"sip:trunk@127.0.0.1:{port}", timeout=2.0)
    )
    assert result.outcome is Outcome.OK
    assert result.status_code == 401


async def test_a_challenge_that_is_not_utf8_is_answered_with_its_own_bytes(
    tmp_path: Path,
) -> None:
    """A Latin-1 realm used to raise UnicodeEncodeError inside the probe and leave it in
    flight for ever; the digest is computed over the bytes as received (RFC 7616 §3.4.2)."""
    with challenging_kamailio(tmp_path, "MD5", realm=LATIN1_REALM) as port:
        settings = OptionsSettings(
            trunk="t", uri=f"sip:trunk@127.0.0.1:{port}", timeout=2.0, username="alice",
            password=PASSWORD,
        )  # fmt: skip
        started = time.monotonic()
        result, probe = await probe_options_once(settings)
    assert time.monotonic() - started < settings.timeout
    assert result.outcome is Outcome.OK, result  # Kamailio checked our response: it matched
    assert b'realm="r\xe9seau.example"' in probe.last_request


async def test_a_bug_on_the_completion_path_ends_the_probe_counted_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception while a probe completes ends that probe as the monitor's own fault
    (never the trunk's), counted and logged once, and the next probe runs (issue 10)."""
    import asyncio

    from structlog.testing import capture_logs

    from monitor.scheduler import Scheduler
    from probes import options
    from probes.options import MalformedCounter, SharedUdp
    from probes.result import ProbeResult

    def broken(values: object) -> object:
        raise RuntimeError("a bug in challenge handling")

    monkeypatch.setattr(options, "select_challenge", broken)  # simulates a bug, not a peer
    results: list[ProbeResult] = []
    two = asyncio.Event()

    def collect(result: ProbeResult) -> None:
        results.append(result)
        if len(results) >= 2:
            two.set()

    with challenging_kamailio(tmp_path, "MD5") as port:
        udp = await SharedUdp.open(MalformedCounter())
        settings = OptionsSettings(
            trunk="t", uri=f"sip:trunk@127.0.0.1:{port}", timeout=1.0, username="alice",
            password=PASSWORD,
        )  # fmt: skip
        scheduler = Scheduler([(udp.probe(settings), 0.3)], collect)
        with capture_logs() as logs:
            scheduler.start()
            try:
                await asyncio.wait_for(two.wait(), 5)
            finally:
                scheduler.stop()
                udp.close()
    assert len(results) >= 2  # the first probe ended, so the next one was not skipped
    assert {r.outcome for r in results} == {Outcome.PROBE_CRASHED}
    assert results[0].detail == "bug: RuntimeError"  # never the message: it may quote secrets
    assert results[0].duration_ns is not None and results[0].duration_ns < 1_000_000_000
    assert scheduler.errors == len(results) and scheduler.skipped == 0
    crashed = [e for e in logs if e["event"] == "probe_crashed"]
    assert crashed and crashed[0]["trunk"] == "t"
