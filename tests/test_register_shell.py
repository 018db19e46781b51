"""The Registration shell without a registrar: a silent UDP socket plays the unreachable one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from probes.register import RegisterProbe, RegisterSettings, Registration
from probes.register_state import Phase, RegisterOutcome
from probes.result import Outcome


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A bound UDP socket that never answers: REGISTERs to it time out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def settings(sock: socket.socket, **kw: object) -> RegisterSettings:
    base: dict[str, object] = {
        "trunk": "t",
        "aor": "sip:alice@127.0.0.1",
        "username": "alice",
        "password": "pw-never-shown",
        "registrar": sock.getsockname(),
        "timeout": 5.0,
    }
    base.update(kw)
    return RegisterSettings(**base)  # type: ignore[arg-type]


async def test_close_while_registering_abandons_the_attempt(silent: socket.socket) -> None:
    registration = Registration(settings(silent))
    pending = asyncio.create_task(registration.register())
    await asyncio.sleep(0.05)
    assert registration.state.phase is Phase.REGISTERING
    assert await registration.close() is None
    attempt = await asyncio.wait_for(pending, 1)
    assert attempt.detail == "stopped"
    # Abandoned by us, not failed by the registrar: not counted.
    assert registration.state.counts[RegisterOutcome.TIMEOUT] == 0
    assert registration.state.phase is Phase.STOPPED
    with pytest.raises(RuntimeError):
        await registration.register()


async def test_datagrams_from_elsewhere_are_strays(silent: socket.socket) -> None:
    registration = Registration(settings(silent, timeout=0.3))
    pending = asyncio.create_task(registration.register())
    await asyncio.sleep(0.05)
    request, ours = silent.recvfrom(65536)
    assert request.startswith(b"REGISTER sip:127.0.0.1 SIP/2.0\r\n")
    assert b"pw-never-shown" not in request
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.sendto(b"SIP/2.0 200 OK\r\n\r\n", ours)
        await asyncio.sleep(0.05)
    attempt = await pending
    assert attempt.outcome is RegisterOutcome.TIMEOUT
    assert registration.state.strays == 1
    await registration.close()


async def test_probe_reports_a_busy_start(silent: socket.socket) -> None:
    probe = RegisterProbe(settings(silent, timeout=0.3))
    results = []
    probe.start(results.append)
    probe.start(results.append)
    assert results[0].outcome is Outcome.PROBE_CRASHED
    await asyncio.sleep(0.5)
    assert results[1].outcome is Outcome.TIMEOUT and results[1].probe == "register"
    await probe.close()


def test_only_udp_and_an_aor_with_a_user() -> None:
    for aor in ("sip:alice@example.com;transport=tcp", "sips:alice@example.com", "sip:example.com"):
        with pytest.raises(ValueError):
            Registration(RegisterSettings(trunk="t", aor=aor, username="a", password="p"))
