"""A trunk's result from its targets' results (probes/target_rule.py), table by table."""

from __future__ import annotations

import pytest

from probes.result import Outcome, ProbeResult
from probes.target_rule import aggregate, locates_targets

A, B, C = "sbc1.carrier.test:5060/udp", "sbc2.carrier.test:5060/udp", "sbc1.carrier.test:5060/tcp"


def ok(rtt_ms: int, status: int = 200) -> ProbeResult:
    return ProbeResult(
        "t", "options", Outcome.OK, 1, rtt_ns=rtt_ms * 1_000_000, status_code=status, reason="OK"
    )


def failed(outcome: Outcome, detail: str | None = None) -> ProbeResult:
    return ProbeResult("t", "options", outcome, 1, detail=detail)


def run(rule: str, *pairs: tuple[str, ProbeResult]) -> ProbeResult:
    return aggregate("trunk", rule, pairs, sent_wall_ns=42, duration_ns=7)  # type: ignore[arg-type]


def test_any_is_up_with_one_target_up_and_takes_the_fastest_answer() -> None:
    result = run("any", (A, failed(Outcome.TIMEOUT)), (B, ok(30)), (C, ok(10, 404)))
    assert result.outcome is Outcome.OK
    assert result.trunk == "trunk"
    assert result.rtt_ns == 10_000_000 and result.status_code == 404
    assert result.detail == "2 of 3 targets up"
    assert (result.sent_wall_ns, result.duration_ns) == (42, 7)


def test_any_with_every_target_up_says_nothing_more() -> None:
    result = run("any", (A, ok(5)), (B, ok(3)))
    assert result.outcome is Outcome.OK and result.detail is None and result.rtt_ns == 3_000_000


def test_any_down_takes_the_first_targets_outcome_and_names_it() -> None:
    result = run(
        "any", (A, failed(Outcome.REFUSED, "ICMP port unreachable")), (B, failed(Outcome.TIMEOUT))
    )
    assert result.outcome is Outcome.REFUSED
    assert result.detail == f"2 of 2 targets down; {A}: ICMP port unreachable"


def test_all_is_down_when_one_target_is_down() -> None:
    result = run("all", (A, ok(5)), (B, failed(Outcome.TIMEOUT)))
    assert result.outcome is Outcome.TIMEOUT
    assert result.detail == f"1 of 2 targets down; {B}: timeout"


def test_all_up_takes_the_slowest_answer() -> None:
    result = run("all", (A, ok(5)), (B, ok(9)))
    assert result.outcome is Outcome.OK and result.rtt_ns == 9_000_000 and result.detail is None


def test_a_sip_error_is_named_by_its_status() -> None:
    bad = ProbeResult("t", "options", Outcome.SIP_ERROR, 1, status_code=503, reason="Busy")
    result = run("all", (A, bad))
    assert result.outcome is Outcome.SIP_ERROR and result.status_code == 503
    assert result.detail == f"{A}: 503 Busy"


@pytest.mark.parametrize("rule", ["any", "all"])
def test_a_crashed_target_neither_passes_nor_fails_the_trunk(rule: str) -> None:
    crashed = failed(Outcome.PROBE_CRASHED, "bug: KeyError")
    assert run(rule, (A, crashed), (B, ok(4))).outcome is Outcome.OK
    assert run(rule, (A, crashed), (B, failed(Outcome.TIMEOUT))).outcome is Outcome.TIMEOUT
    only = run(rule, (A, crashed))
    assert only.outcome is Outcome.PROBE_CRASHED and only.detail == f"{A}: bug: KeyError"


def test_no_targets_is_a_dns_outcome() -> None:
    assert run("any").outcome is Outcome.DNS


@pytest.mark.parametrize(
    ("uri", "located"),
    [
        ("sip:carrier.test", True),
        ("sips:carrier.test", True),
        ("sip:carrier.test;transport=tcp", True),
        ("sip:carrier.test:5060", False),  # RFC 3263 §4.2: a port names one server
        ("sip:192.0.2.1", False),
        ("sip:[2001:db8::1]", False),
        ("sip:carrier.test;transport=sctp", False),  # not a transport this client uses
    ],
)
def test_which_uris_rfc3263_may_give_several_targets(uri: str, located: bool) -> None:
    assert locates_targets(uri) is located
