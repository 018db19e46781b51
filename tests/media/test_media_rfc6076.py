"""RFC 6076 session metrics: which final responses count where (§4.6-§4.9), mean SRD (§4.3)."""

from __future__ import annotations

import pytest

from probes.media.rfc6076 import (
    ISA_CODES,
    SEER_EFFECTIVE_CODES,
    CallAttempt,
    SessionMetricsWindow,
    session_metrics,
)

S = 1_000_000_000

# (final status, counts for SER, counts for SEER, counts for ISA, excluded as redirect)
# SER §4.6: 200 only; SEER §4.7: 200, 480, 486, 600, 603; ISA §4.8: 408, 500, 503, 504;
# 3xx leave the SER/SEER denominators (§4.6, §4.7); None is Timer B, i.e. 408 (RFC 3261 §8.1.3.1).
CODE_TABLE = [
    (200, True, True, False, False),
    (302, False, False, False, True),
    (404, False, False, False, False),
    (408, False, False, True, False),
    (None, False, False, True, False),
    (480, False, True, False, False),
    (486, False, True, False, False),
    (487, False, False, False, False),
    (500, False, False, True, False),
    (503, False, False, True, False),
    (504, False, False, True, False),
    (600, False, True, False, False),
    (603, False, True, False, False),
    (604, False, False, False, False),
]


@pytest.mark.parametrize(("status", "ser", "seer", "isa", "redirect"), CODE_TABLE)
def test_each_final_status_counts_where_the_rfc_says(
    status: int | None, ser: bool, seer: bool, isa: bool, redirect: bool
) -> None:
    # One attempt with this status plus one plain 404: the ratios show where it was counted.
    m = session_metrics([CallAttempt(0, status), CallAttempt(1, 404)])
    denominator = 1 if redirect else 2
    assert m.ser == ser / denominator
    assert m.seer == seer / denominator
    assert m.isa == isa / 2
    assert (status in SEER_EFFECTIVE_CODES) == seer
    assert ((status or 408) in ISA_CODES) == isa


def test_mixed_window_hand_computed() -> None:
    attempts = [
        CallAttempt(0, 200, srd_s=0.5, completed=True),
        CallAttempt(1, 200, srd_s=0.7),  # answered, but ended by a failure
        CallAttempt(2, 486, srd_s=0.3),
        CallAttempt(3, 503),
        CallAttempt(4, None),  # no answer at all
        CallAttempt(5, 302),
        CallAttempt(6, 404, srd_s=0.2),
        CallAttempt(7, 480),
    ]
    m = session_metrics(attempts)
    assert m.attempts == 8
    assert m.ser == pytest.approx(2 / 7)  # 8 attempts - 1 redirect
    assert m.seer == pytest.approx(4 / 7)  # 200, 200, 486, 480
    assert m.isa == pytest.approx(2 / 8)  # 503, timeout
    assert m.scr == pytest.approx(1 / 8)
    assert m.mean_srd_s == pytest.approx((0.5 + 0.7 + 0.3 + 0.2) / 4)


def test_no_attempts_means_no_ratios() -> None:
    m = session_metrics([])
    assert (m.attempts, m.ser, m.seer, m.isa, m.scr, m.mean_srd_s) == (
        0,
        None,
        None,
        None,
        None,
        None,
    )


def test_only_redirects_leave_ser_undefined() -> None:
    m = session_metrics([CallAttempt(0, 302), CallAttempt(1, 301)])
    assert m.ser is None and m.seer is None
    assert m.isa == 0.0


def test_window_keeps_the_last_attempts() -> None:
    window = SessionMetricsWindow(max_attempts=3)
    for t, status in enumerate([503, 503, 200, 200, 200]):
        window.add(CallAttempt(t, status, completed=status == 200))
    assert len(window) == 3
    m = window.metrics()
    assert m.ser == 1.0 and m.isa == 0.0 and m.scr == 1.0


def test_window_drops_attempts_older_than_max_age() -> None:
    window = SessionMetricsWindow(max_attempts=100, max_age_s=3600)
    window.add(CallAttempt(0, 503))
    window.add(CallAttempt(3000 * S, 200))
    assert window.metrics(now_ns=3500 * S).isa == 0.5
    m = window.metrics(now_ns=4000 * S)  # the 503 is now 4000 s old
    assert (m.attempts, m.isa, m.ser) == (1, 0.0, 1.0)
    with pytest.raises(ValueError, match="now_ns"):
        window.metrics()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"t_ns": 0, "final_status": 180}, "200..699"),
        ({"t_ns": 0, "final_status": 700}, "200..699"),
        ({"t_ns": 0, "final_status": 200, "srd_s": -1.0}, "negative"),
        ({"t_ns": 0, "final_status": 486, "completed": True}, "cannot be completed"),
    ],
)
def test_impossible_attempts_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CallAttempt(**kwargs)


def test_attempts_must_arrive_in_time_order_and_nothing_is_lost() -> None:
    window = SessionMetricsWindow()
    window.add(CallAttempt(10, 200))
    with pytest.raises(ValueError, match="time order"):
        window.add(CallAttempt(5, 503))
    assert len(window) == 1 and window.metrics().ser == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"max_attempts": 0}, "max_attempts"), ({"max_age_s": 0}, "max_age_s")]
)
def test_window_bounds_are_validated(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SessionMetricsWindow(**kwargs)
