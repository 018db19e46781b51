"""REGISTER against a real registrar: Kamailio with usrloc, registrar and auth_db (db_text)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import TlsFiles
from registrar_peer import MIN_EXPIRES, USERS, Registrar, running_registrar

from probes.probe import run_once
from probes.register import RegisterProbe, RegisterSettings, Registration
from probes.register_state import Attempt, Phase, RegisterOutcome
from probes.result import Outcome


@pytest.fixture
def registrar(tmp_path: Path, tls_ca: TlsFiles) -> Iterator[Registrar]:
    with running_registrar(tmp_path / "registrar", tls_ca) as reg:
        yield reg


def settings(reg: Registrar, user: str = "alice", **kw: object) -> RegisterSettings:
    base: dict[str, object] = {
        "trunk": "carrier-a",
        "aor": reg.aor(user),
        "username": user,
        "password": USERS[user],
        "registrar": (reg.host, reg.udp_port),
        "expires": 300,
        "timeout": 2.0,
    }
    base.update(kw)
    return RegisterSettings(**base)  # type: ignore[arg-type]


def our_contact(registration: Registration) -> str:
    assert registration.machine is not None
    return registration.machine.params.contact


async def test_register_ok_with_the_granted_expiry_then_unregister(registrar: Registrar) -> None:
    registration = Registration(settings(registrar, expires=300))
    attempt = await registration.register()
    assert attempt.outcome is RegisterOutcome.OK and attempt.status == 200
    assert attempt.requests == 2  # 401 challenge, then the digest answer
    assert attempt.expires == 300
    contact = our_contact(registration)
    assert [b.uri for b in attempt.bindings] == [contact]
    state = registration.state
    assert state.registered and state.granted_expires == 300
    assert state.last_outcome is RegisterOutcome.OK and state.counts[RegisterOutcome.OK] == 1
    assert state.expires_at_wall_ns is not None
    # Kamailio's own location table has the binding, with the lifetime it granted.
    assert 295 <= registrar.bindings("alice")[contact] <= 300

    unregister = await registration.close()
    assert unregister is not None and unregister.unregister
    assert unregister.outcome is RegisterOutcome.OK
    assert registration.state.phase is Phase.STOPPED and not registration.state.registered
    assert contact not in registrar.bindings("alice")


async def test_max_expires_of_the_registrar_is_what_we_keep(registrar: Registrar) -> None:
    registration = Registration(settings(registrar, expires=7200))
    attempt = await registration.register()
    try:
        assert attempt.outcome is RegisterOutcome.OK
        assert attempt.expires == 3600  # registrar's max_expires, from its Contact expires=
        assert registration.state.granted_expires == 3600
    finally:
        await registration.close()


async def test_closing_one_registration_leaves_the_other_binding(registrar: Registrar) -> None:
    first = Registration(settings(registrar))
    second = Registration(settings(registrar))
    assert (await first.register()).outcome is RegisterOutcome.OK
    both = await second.register()
    assert {b.uri for b in both.bindings} == {our_contact(first), our_contact(second)}
    gone = await first.close()
    assert gone is not None and gone.outcome is RegisterOutcome.OK
    # The 200 to the un-REGISTER lists what is left (§10.3 step 8): only the other contact.
    assert [b.uri for b in gone.bindings] == [our_contact(second)]
    assert list(registrar.bindings("alice")) == [our_contact(second)]
    await second.close()
    assert registrar.bindings("alice") == {}


async def test_wrong_password_is_an_auth_loop(registrar: Registrar) -> None:
    secret = "not-the-password-42"
    registration = Registration(settings(registrar, password=secret))
    attempt = await registration.register()
    assert attempt.outcome is RegisterOutcome.AUTH_LOOP and attempt.status == 401
    assert registration.state.counts[RegisterOutcome.AUTH_LOOP] == 1
    assert not registration.state.registered
    assert await registration.close() is None  # nothing bound, nothing to remove
    for text in (repr(registration), repr(registration.settings), repr(attempt)):
        assert secret not in text
    assert registrar.bindings("alice") == {}


async def test_a_refused_user_is_forbidden(registrar: Registrar) -> None:
    registration = Registration(settings(registrar, "banned"))
    attempt = await registration.register()
    assert attempt.outcome is RegisterOutcome.FORBIDDEN and attempt.status == 403
    assert registration.state.counts[RegisterOutcome.FORBIDDEN] == 1
    await registration.close()


async def test_423_is_retried_with_min_expires(registrar: Registrar) -> None:
    registration = Registration(settings(registrar, expires=30))
    attempt = await registration.register()
    try:
        assert attempt.outcome is RegisterOutcome.OK
        assert attempt.requests == 3  # 401, then 423 Min-Expires, then 200
        assert attempt.expires == MIN_EXPIRES
        state = registration.state
        assert state.requested_expires == MIN_EXPIRES and state.granted_expires == MIN_EXPIRES
        assert state.counts[RegisterOutcome.INTERVAL_TOO_BRIEF] == 0
        assert registrar.bindings("alice")[our_contact(registration)] <= MIN_EXPIRES
    finally:
        await registration.close()


async def test_refreshes_before_the_binding_expires(registrar: Registrar) -> None:
    attempts: list[Attempt] = []
    three = asyncio.Event()

    def seen(attempt: Attempt) -> None:
        attempts.append(attempt)
        if len(attempts) >= 3:
            three.set()

    # `quick` is granted 2 s as asked: refreshes every second (half the granted expiry).
    registration = Registration(settings(registrar, "quick", expires=2), on_attempt=seen)
    try:
        first = await registration.register()
        assert first.outcome is RegisterOutcome.OK and first.expires == 2
        await asyncio.wait_for(three.wait(), 5)
        assert [a.outcome for a in attempts[:3]] == [RegisterOutcome.OK] * 3
        gaps = [(b.started_ns - a.finished_ns) / 1e9 for a, b in itertools.pairwise(attempts)]
        # Half the granted 2 s, and in any case before the binding runs out.
        assert all(0.9 <= gap < 1.9 for gap in gaps[:2]), gaps
        # Refreshes reuse the last challenge (nonce count + 1): no 401 round trip.
        assert attempts[1].requests == 1
        assert registration.state.registered
        assert our_contact(registration) in registrar.bindings("quick")
    finally:
        unregister = await registration.close()
    assert unregister is not None and unregister.outcome is RegisterOutcome.OK
    assert registrar.bindings("quick") == {}


async def test_registrar_down_is_a_timeout(registrar: Registrar) -> None:
    registrar.stop()
    registration = Registration(settings(registrar, timeout=1.0))
    attempt = await registration.register()
    assert attempt.outcome is RegisterOutcome.TIMEOUT and attempt.status is None
    assert registration.state.counts[RegisterOutcome.TIMEOUT] == 1
    await registration.close()


async def test_registrar_down_during_a_refresh_keeps_the_binding_until_it_expires(
    registrar: Registrar,
) -> None:
    registration = Registration(settings(registrar, timeout=1.0))
    try:
        assert (await registration.register()).outcome is RegisterOutcome.OK
        registrar.stop()
        refresh = await registration.register()
        assert refresh.outcome is RegisterOutcome.TIMEOUT
        state = registration.state
        assert state.registered and state.last_outcome is RegisterOutcome.TIMEOUT
        assert state.counts[RegisterOutcome.OK] == 1 and state.counts[RegisterOutcome.TIMEOUT] == 1
    finally:
        unregister = await registration.close()
    assert unregister is not None and unregister.outcome is RegisterOutcome.TIMEOUT


async def test_the_probe_interface(registrar: Registrar) -> None:
    probe = RegisterProbe(settings(registrar))
    try:
        result = await run_once(probe)
        assert result.probe == "register" and result.trunk == "carrier-a"
        assert result.outcome is Outcome.OK and result.status_code == 200
        assert result.detail == "registered for 300 s"
        assert result.rtt_ns is not None and result.duration_ns is not None
        again = await run_once(probe)  # each start REGISTERs again (a refresh)
        assert again.outcome is Outcome.OK
        assert probe.registration.state.counts[RegisterOutcome.OK] == 2
    finally:
        await probe.close()
    assert registrar.bindings("alice") == {}


async def test_the_probe_interface_on_failures(registrar: Registrar) -> None:
    secret = "wrong-secret-77"
    probe = RegisterProbe(settings(registrar, password=secret))
    try:
        result = await run_once(probe)
    finally:
        await probe.close()
    assert result.outcome is Outcome.AUTH and result.detail == "auth_loop"
    assert secret not in repr(result) and secret not in repr(probe.registration)
    forbidden = RegisterProbe(settings(registrar, "banned"))
    try:
        result = await run_once(forbidden)
    finally:
        await forbidden.close()
    assert result.outcome is Outcome.AUTH and result.detail == "forbidden"
