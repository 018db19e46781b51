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


@contextlib.contextmanager
def challenging_kamailio(workdir: Path, algorithm: str) -> Iterator[int]:
    binary = require_binary("kamailio")
    port = free_port("both")
    cfg = workdir / "kamailio-auth.cfg"
    cfg.write_text(
        AUTH_CFG.format(
            port=port, mpath=kamailio_module_dir() + "/", algorithm=algorithm, password=PASSWORD
        )
    )
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
