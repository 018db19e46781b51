"""Non-INVITE client transaction timers (RFC 3261 §17.1.2, Figure 6), in nanoseconds."""

from __future__ import annotations

import pytest

from probes.sip.transaction import (
    T1_NS,
    T2_NS,
    T4_NS,
    NonInviteClientTransaction,
    TransactionState,
)

MS = 1_000_000
REQ = b"OPTIONS sip:x SIP/2.0\r\n\r\n"
START = 10_000 * MS


def run_until_quiet(txn: NonInviteClientTransaction) -> list[tuple[int, str]]:
    """Fire every deadline in order; record (ms since start, what happened)."""
    events: list[tuple[int, str]] = []
    while (deadline := txn.next_deadline_ns()) is not None:
        action = txn.on_timer(deadline)
        if action.retransmit is not None:
            assert action.retransmit == REQ
            events.append(((deadline - START) // MS, "retransmit"))
        elif action.timed_out:
            events.append(((deadline - START) // MS, "timeout"))
        else:
            events.append(((deadline - START) // MS, txn.state.value))
    return events


def test_udp_retransmits_double_to_t2_then_timer_f() -> None:
    txn = NonInviteClientTransaction(REQ, reliable=False, now_ns=START, timeout_ns=60_000 * MS)
    events = run_until_quiet(txn)
    # E: 0.5, 1, 2, 4, 4, 4 ... s after each send; F: 64*T1 = 32 s.
    expected_times = [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    assert events == [(t, "retransmit") for t in expected_times] + [(32_000, "timeout")]
    assert txn.state is TransactionState.TERMINATED
    assert txn.next_deadline_ns() is None


def test_timer_f_is_bounded_by_the_probe_timeout() -> None:
    txn = NonInviteClientTransaction(REQ, reliable=False, now_ns=START, timeout_ns=2_000 * MS)
    assert run_until_quiet(txn) == [(500, "retransmit"), (1500, "retransmit"), (2000, "timeout")]


def test_reliable_transport_never_retransmits() -> None:
    txn = NonInviteClientTransaction(REQ, reliable=True, now_ns=START, timeout_ns=5_000 * MS)
    assert txn.next_deadline_ns() == START + 5_000 * MS
    assert run_until_quiet(txn) == [(5000, "timeout")]


def test_early_timer_call_does_nothing() -> None:
    txn = NonInviteClientTransaction(REQ, reliable=False, now_ns=START, timeout_ns=9_000 * MS)
    action = txn.on_timer(START + 499 * MS)
    assert action.retransmit is None and not action.timed_out
    assert txn.state is TransactionState.TRYING
    assert txn.next_deadline_ns() == START + T1_NS


def test_provisional_moves_to_proceeding_and_retransmits_every_t2() -> None:
    txn = NonInviteClientTransaction(REQ, reliable=False, now_ns=START, timeout_ns=20_000 * MS)
    assert txn.on_timer(START + 500 * MS).retransmit == REQ  # next E at 1500
    assert txn.on_response(100, START + 600 * MS) is False
    assert txn.state is TransactionState.PROCEEDING
    events = run_until_quiet(txn)
    assert events == [
        (1500, "retransmit"),
        (5500, "retransmit"),
        (9500, "retransmit"),
        (13500, "retransmit"),
        (17500, "retransmit"),
        (20000, "timeout"),
    ]


def test_final_over_udp_completes_then_timer_k_terminates() -> None:
    txn = NonInviteClientTransaction(REQ, reliable=False, now_ns=START, timeout_ns=30_000 * MS)
    assert txn.on_response(200, START + 80 * MS) is True
    assert txn.state is TransactionState.COMPLETED
    assert txn.next_deadline_ns() == START + 80 * MS + T4_NS
    # A retransmitted final in Completed is absorbed: not reported twice.
    assert txn.on_response(200, START + 90 * MS) is False
    assert txn.on_timer(START + 80 * MS + T4_NS - 1).retransmit is None
    assert txn.state is TransactionState.COMPLETED
    action = txn.on_timer(START + 80 * MS + T4_NS)
    assert action.retransmit is None and not action.timed_out
    assert txn.state is TransactionState.TERMINATED


@pytest.mark.parametrize("status", [200, 302, 404, 503, 699])
def test_final_over_reliable_terminates_at_once(status: int) -> None:
    txn = NonInviteClientTransaction(REQ, reliable=True, now_ns=START, timeout_ns=30_000 * MS)
    assert txn.on_response(180, START + 10 * MS) is False
    assert txn.on_response(status, START + 20 * MS) is True
    assert txn.state is TransactionState.TERMINATED
    assert txn.next_deadline_ns() is None
    assert txn.on_response(status, START + 30 * MS) is False


def test_response_after_timeout_is_ignored() -> None:
    txn = NonInviteClientTransaction(REQ, reliable=True, now_ns=START, timeout_ns=1_000 * MS)
    assert txn.on_timer(START + 1_000 * MS).timed_out
    assert txn.on_response(200, START + 1_001 * MS) is False


def test_custom_timers() -> None:
    txn = NonInviteClientTransaction(
        REQ, reliable=False, now_ns=0, timeout_ns=10**12, t1_ns=100 * MS, t2_ns=300 * MS
    )
    times = [t for t, what in run_until_quiet_from(txn, 0) if what == "retransmit"]
    # E: 100, 200, 300 (capped), 300 ...; F = 64 * T1 = 6.4 s.
    assert times[:5] == [100, 300, 600, 900, 1200]
    assert run_until_quiet_from(txn, 0) == []  # already terminated


def run_until_quiet_from(txn: NonInviteClientTransaction, start: int) -> list[tuple[int, str]]:
    events: list[tuple[int, str]] = []
    while (deadline := txn.next_deadline_ns()) is not None:
        action = txn.on_timer(deadline)
        what = "retransmit" if action.retransmit else "timeout" if action.timed_out else "other"
        events.append(((deadline - start) // MS, what))
    return events


def test_defaults_are_the_rfc_values() -> None:
    assert (T1_NS, T2_NS, T4_NS) == (500 * MS, 4_000 * MS, 5_000 * MS)


def test_bad_timer_values() -> None:
    with pytest.raises(ValueError):
        NonInviteClientTransaction(REQ, reliable=False, now_ns=0, timeout_ns=0)
    with pytest.raises(ValueError):
        NonInviteClientTransaction(REQ, reliable=False, now_ns=0, timeout_ns=1, t1_ns=5, t2_ns=4)
