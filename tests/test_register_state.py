"""The sans-I/O registration state machine: bytes in, bytes and finished attempts out."""

from __future__ import annotations

import hashlib

import pytest

from probes.register_state import (
    NS_PER_S,
    Action,
    Attempt,
    Finished,
    Phase,
    RegisterOutcome,
    RegisterParams,
    RegisterStateMachine,
    Send,
)
from probes.sip.message import SipRequest, parse_message

T0 = 1_000 * NS_PER_S
CONTACT = "sip:alice@192.0.2.10:5070;transport=udp"
PASSWORD = "s3cret-pass"


def params(**kw: object) -> RegisterParams:
    base: dict[str, object] = {
        "registrar_uri": "sip:example.com",
        "aor": "sip:alice@example.com",
        "contact": CONTACT,
        "via_hostport": "192.0.2.10:5070",
        "username": "alice",
        "password": PASSWORD,
        "expires": 300,
    }
    base.update(kw)
    return RegisterParams(**base)  # type: ignore[arg-type]


def sent(actions: list[Action]) -> SipRequest:
    sends = [a for a in actions if isinstance(a, Send)]
    assert len(sends) == 1, actions
    msg = parse_message(sends[0].data)
    assert isinstance(msg, SipRequest)
    return msg


def finished(actions: list[Action]) -> Attempt:
    done = [a for a in actions if isinstance(a, Finished)]
    assert len(done) == 1, actions
    return done[0].attempt


def reply(req: SipRequest, status: int, reason: str, *extra: str, to_tag: bool = True) -> bytes:
    """A registrar's answer to `req`: Via, From, To, Call-ID and CSeq copied (§8.2.6.2)."""
    h = req.headers
    lines = [
        f"SIP/2.0 {status} {reason}",
        f"Via: {h.get('Via')};received=192.0.2.10",
        f"From: {h.get('From')}",
        f"To: {h.get('To')}" + (";tag=reg1" if to_tag else ""),
        f"Call-ID: {h.get('Call-ID')}",
        f"CSeq: {h.get('CSeq')}",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


CHALLENGE = 'WWW-Authenticate: Digest realm="example.com", nonce="abc123", qop="auth"'


def test_register_ok_and_refresh_at_half_the_granted_expiry() -> None:
    m = RegisterStateMachine(params(expires=300))
    req = sent(m.register(T0))
    assert req.method == "REGISTER" and req.uri == "sip:example.com"
    assert req.headers.get("Expires") == "300"
    assert req.headers.get("Contact") == f"<{CONTACT}>"
    assert req.headers.get("To") == "<sip:alice@example.com>"
    assert m.phase is Phase.REGISTERING
    # The registrar grants less than asked: the Contact's expires wins over the Expires header.
    ok = reply(req, 200, "OK", f"Contact: <{CONTACT}>;expires=120", "Expires: 999")
    attempt = finished(m.on_datagram(ok, T0 + 10_000_000))
    assert attempt.outcome is RegisterOutcome.OK and attempt.expires == 120
    assert attempt.rtt_ns == 10_000_000 and attempt.requests == 1
    assert m.registered(T0 + 100 * NS_PER_S)
    assert not m.registered(T0 + 121 * NS_PER_S)
    assert m.expires_at_ns == T0 + 10_000_000 + 120 * NS_PER_S
    refresh_at = T0 + 10_000_000 + 60 * NS_PER_S
    assert m.next_deadline_ns() == refresh_at
    assert m.on_timer(refresh_at - 1) == []
    again = sent(m.on_timer(refresh_at))
    # §10.2: same Call-ID, CSeq one higher, the same requested expiry.
    assert again.headers.get("Call-ID") == req.headers.get("Call-ID")
    assert again.headers.get("CSeq") == "2 REGISTER"
    assert again.headers.get("Expires") == "300"
    assert m.counts[RegisterOutcome.OK] == 1


def test_expires_header_used_when_no_contact_matches() -> None:
    m = RegisterStateMachine(params(expires=300))
    req = sent(m.register(T0))
    other = "Contact: <sip:bob@198.51.100.1:5060>;expires=3000"
    attempt = finished(m.on_datagram(reply(req, 200, "OK", other, "Expires: 90"), T0 + 1))
    assert attempt.expires == 90
    assert [b.uri for b in attempt.bindings] == ["sip:bob@198.51.100.1:5060"]


def test_digest_retry_then_ok_and_credentials_reused_on_refresh() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    assert req.headers.get("Authorization") is None
    retry = sent(m.on_datagram(reply(req, 401, "Unauthorized", CHALLENGE), T0 + 1))
    auth = retry.headers.get("Authorization")
    assert auth is not None and 'username="alice"' in auth and "nc=00000001" in auth
    assert 'uri="sip:example.com"' in auth and PASSWORD not in auth
    # The response value is the RFC 7616 digest of our password.
    fields = dict(p.strip().split("=", 1) for p in auth[len("Digest ") :].split(","))
    cnonce = fields["cnonce"].strip('"')
    ha1 = hashlib.md5(f"alice:example.com:{PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:example.com").hexdigest()
    expect = hashlib.md5(f"{ha1}:abc123:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
    assert fields["response"] == f'"{expect}"'
    assert retry.headers.get("CSeq") == "2 REGISTER"
    attempt = finished(m.on_datagram(reply(retry, 200, "OK", f"Contact: <{CONTACT}>"), T0 + 2))
    assert attempt.outcome is RegisterOutcome.OK and attempt.requests == 2
    assert attempt.expires == 300  # nothing granted explicitly: what we asked for
    # The refresh answers the same challenge again with the next nonce count.
    refresh = sent(m.register(T0 + 3))
    assert "nc=00000002" in (refresh.headers.get("Authorization") or "")


def test_second_challenge_after_credentials_is_auth_loop() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    retry = sent(m.on_datagram(reply(req, 401, "Unauthorized", CHALLENGE), T0 + 1))
    attempt = finished(m.on_datagram(reply(retry, 401, "Unauthorized", CHALLENGE), T0 + 2))
    assert attempt.outcome is RegisterOutcome.AUTH_LOOP and attempt.status == 401
    assert m.counts[RegisterOutcome.AUTH_LOOP] == 1
    assert not m.registered(T0 + 3)
    # A failed attempt is retried after retry_ns, without the refused credentials.
    assert m.next_deadline_ns() == T0 + 2 + m.params.retry_ns
    later = sent(m.on_timer(T0 + 2 + m.params.retry_ns))
    assert later.headers.get("Authorization") is None


def test_stale_nonce_gets_one_more_try() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    retry = sent(m.on_datagram(reply(req, 401, "Unauthorized", CHALLENGE), T0 + 1))
    stale = CHALLENGE.replace("abc123", "def456") + ", stale=true"
    third = sent(m.on_datagram(reply(retry, 401, "Unauthorized", stale), T0 + 2))
    assert 'nonce="def456"' in (third.headers.get("Authorization") or "")
    attempt = finished(m.on_datagram(reply(third, 401, "Unauthorized", stale), T0 + 3))
    assert attempt.outcome is RegisterOutcome.AUTH_LOOP and attempt.requests == 3


def test_proxy_challenge_is_answered_with_proxy_authorization() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    challenge = CHALLENGE.replace("WWW-Authenticate", "Proxy-Authenticate")
    retry = sent(m.on_datagram(reply(req, 407, "Proxy Authentication Required", challenge), T0))
    assert retry.headers.get("Proxy-Authorization") is not None
    assert retry.headers.get("Authorization") is None


def test_unusable_challenge_is_a_sip_error() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    bad = 'WWW-Authenticate: Digest realm="x", nonce="n", algorithm=SHA-1024'
    attempt = finished(m.on_datagram(reply(req, 401, "Unauthorized", bad), T0 + 1))
    assert attempt.outcome is RegisterOutcome.SIP_ERROR and attempt.detail == "unusable challenge"


def test_403_is_forbidden() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    retry = sent(m.on_datagram(reply(req, 401, "Unauthorized", CHALLENGE), T0 + 1))
    attempt = finished(m.on_datagram(reply(retry, 403, "Forbidden"), T0 + 2))
    assert attempt.outcome is RegisterOutcome.FORBIDDEN and attempt.reason == "Forbidden"
    assert m.counts[RegisterOutcome.FORBIDDEN] == 1


def test_423_retries_with_min_expires_and_keeps_it() -> None:
    m = RegisterStateMachine(params(expires=30))
    req = sent(m.register(T0))
    retry = sent(m.on_datagram(reply(req, 423, "Interval Too Brief", "Min-Expires: 60"), T0 + 1))
    assert retry.headers.get("Expires") == "60"
    attempt = finished(
        m.on_datagram(reply(retry, 200, "OK", f"Contact: <{CONTACT}>;expires=60"), T0 + 2)
    )
    assert attempt.outcome is RegisterOutcome.OK and attempt.expires == 60
    assert m.expires == 60
    refresh = sent(m.on_timer(T0 + 2 + 30 * NS_PER_S))
    assert refresh.headers.get("Expires") == "60"
    assert m.counts[RegisterOutcome.INTERVAL_TOO_BRIEF] == 0


@pytest.mark.parametrize("extra", [(), ("Min-Expires: 20",), ("Min-Expires: soon",)])
def test_423_without_a_usable_min_expires(extra: tuple[str, ...]) -> None:
    m = RegisterStateMachine(params(expires=30))
    req = sent(m.register(T0))
    attempt = finished(m.on_datagram(reply(req, 423, "Interval Too Brief", *extra), T0 + 1))
    assert attempt.outcome is RegisterOutcome.INTERVAL_TOO_BRIEF


def test_second_423_is_interval_too_brief() -> None:
    m = RegisterStateMachine(params(expires=30))
    req = sent(m.register(T0))
    retry = sent(m.on_datagram(reply(req, 423, "Interval Too Brief", "Min-Expires: 60"), T0 + 1))
    again = reply(retry, 423, "Interval Too Brief", "Min-Expires: 120")
    attempt = finished(m.on_datagram(again, T0 + 2))
    assert attempt.outcome is RegisterOutcome.INTERVAL_TOO_BRIEF and attempt.requests == 2
    assert m.counts[RegisterOutcome.INTERVAL_TOO_BRIEF] == 1


def test_timeout_with_retransmissions() -> None:
    m = RegisterStateMachine(params(timeout_ns=2 * NS_PER_S))
    first = m.register(T0)
    data = next(a for a in first if isinstance(a, Send)).data
    # Timer E: T1 = 0.5 s, then 1 s...
    assert m.next_deadline_ns() == T0 + NS_PER_S // 2
    assert m.on_timer(T0 + NS_PER_S // 2) == [Send(data)]
    attempt = finished(m.on_timer(T0 + 2 * NS_PER_S))
    assert attempt.outcome is RegisterOutcome.TIMEOUT and attempt.status is None
    assert m.counts[RegisterOutcome.TIMEOUT] == 1
    assert m.last is attempt


def test_timeout_of_a_refresh_keeps_the_binding_until_it_expires() -> None:
    m = RegisterStateMachine(params(expires=60, timeout_ns=NS_PER_S))
    req = sent(m.register(T0))
    finished(m.on_datagram(reply(req, 200, "OK", f"Contact: <{CONTACT}>;expires=60"), T0))
    m.on_timer(T0 + 30 * NS_PER_S)
    finished(m.on_timer(T0 + 31 * NS_PER_S))
    assert m.last is not None and m.last.outcome is RegisterOutcome.TIMEOUT
    assert m.registered(T0 + 59 * NS_PER_S) and not m.registered(T0 + 60 * NS_PER_S)


def test_other_final_answers_are_sip_errors_and_provisionals_wait() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    assert m.on_datagram(reply(req, 100, "Trying", to_tag=False), T0 + 1) == []
    attempt = finished(m.on_datagram(reply(req, 404, "Not Found"), T0 + 2))
    assert attempt.outcome is RegisterOutcome.SIP_ERROR and attempt.status == 404


def test_strays_are_counted_and_ignored() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    assert m.on_datagram(b"garbage\r\n\r\n", T0) == []
    wrong = reply(req, 200, "OK").replace(b"branch=z9hG4bK", b"branch=z9hG4bKother")
    assert m.on_datagram(wrong, T0) == []
    ok = reply(req, 200, "OK")
    finished(m.on_datagram(ok, T0 + 1))
    assert m.on_datagram(ok, T0 + 2) == []  # a retransmitted final, already answered
    assert m.strays == 3


def test_unregister_sends_expires_zero_and_stops() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    finished(m.on_datagram(reply(req, 200, "OK", f"Contact: <{CONTACT}>;expires=300"), T0))
    unreg = sent(m.unregister(T0 + NS_PER_S))
    assert unreg.headers.get("Expires") == "0"
    assert unreg.headers.get("Contact") == f"<{CONTACT}>"  # only ours, never "*"
    assert m.phase is Phase.UNREGISTERING
    other = "Contact: <sip:alice@198.51.100.7:5060>;expires=100"
    attempt = finished(m.on_datagram(reply(unreg, 200, "OK", other), T0 + 2 * NS_PER_S))
    assert attempt.unregister and attempt.outcome is RegisterOutcome.OK
    assert m.phase is Phase.STOPPED and not m.registered(T0 + 3 * NS_PER_S)
    assert m.next_deadline_ns() is None
    assert m.counts[RegisterOutcome.OK] == 1  # un-REGISTERs are not counted as registrations
    assert m.last_unregister is attempt


def test_unregister_answers_a_challenge_too() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    finished(m.on_datagram(reply(req, 200, "OK"), T0))
    unreg = sent(m.unregister(T0 + 1))
    retry = sent(m.on_datagram(reply(unreg, 401, "Unauthorized", CHALLENGE), T0 + 2))
    assert retry.headers.get("Expires") == "0" and retry.headers.get("Authorization")
    attempt = finished(m.on_datagram(reply(retry, 200, "OK"), T0 + 3))
    assert attempt.unregister and attempt.outcome is RegisterOutcome.OK


def test_unregister_without_a_binding_sends_nothing() -> None:
    m = RegisterStateMachine(params())
    req = sent(m.register(T0))
    actions = m.unregister(T0 + 1)
    abandoned = finished(actions)
    assert abandoned.detail == "stopped" and not any(isinstance(a, Send) for a in actions)
    assert m.phase is Phase.STOPPED and m.counts[RegisterOutcome.TIMEOUT] == 0
    assert m.on_datagram(reply(req, 200, "OK"), T0 + 2) == []


def test_register_while_in_flight_is_a_no_op() -> None:
    m = RegisterStateMachine(params())
    sent(m.register(T0))
    assert m.register(T0 + 1) == []


def test_password_not_in_reprs() -> None:
    p = params()
    m = RegisterStateMachine(p)
    assert PASSWORD not in repr(p) and PASSWORD not in repr(m)


@pytest.mark.parametrize(
    ("kw", "problem"),
    [({"expires": 0}, "expires"), ({"registrar_uri": "sip:bob@example.com"}, "domain")],
)
def test_bad_params(kw: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RegisterStateMachine(params(**kw))
