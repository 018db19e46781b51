"""A trunk's one result from its RFC 3263 targets' results, by the trunk's rule (pure).

`any` (the default): the trunk is up while one target answers, as a SIP client that fails
over would see it. `all`: every target must answer, so a dead secondary SBC opens an outage.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from probes.dns.rfc3263 import Destination
from probes.result import NOT_THE_TRUNKS_FAULT, Outcome, ProbeResult

TargetRule = Literal["any", "all"]
TARGET_RULES: tuple[TargetRule, ...] = ("any", "all")


def locates_targets(uri: str) -> bool:
    """Whether RFC 3263 may give `uri` several targets: a host name without a port (§4.2:
    an IP address or an explicit port names one server, probed as it is today)."""
    try:
        destination = Destination.from_uri(uri)
    except ValueError:
        return False
    try:
        ipaddress.ip_address(destination.host)
    except ValueError:
        return destination.port is None
    return False


def aggregate(
    trunk: str,
    rule: TargetRule,
    results: Sequence[tuple[str, ProbeResult]],
    *,
    sent_wall_ns: int,
    duration_ns: int,
) -> ProbeResult:
    """The trunk's result from (target label, result) pairs in RFC 3263 order.

    any: OK with the fastest answer's rtt and status if one target is OK, else the first
    failing target's outcome. all: the first failing target's outcome, else OK with the
    slowest rtt (the trunk is as good as its slowest required target). A target whose probe
    crashed is the monitor's fault: it neither passes nor fails the trunk, unless every
    result is one (then the trunk's result is PROBE_CRASHED and health ignores it).
    """
    if not results:
        return _result(trunk, Outcome.DNS, sent_wall_ns, duration_ns, detail="no targets")
    judged = [(label, r) for label, r in results if r.outcome not in NOT_THE_TRUNKS_FAULT]
    if not judged:
        label, first = results[0]
        return _result(trunk, first.outcome, sent_wall_ns, duration_ns, detail=_named(label, first))
    up = [(label, r) for label, r in judged if r.outcome is Outcome.OK]
    down = [(label, r) for label, r in judged if r.outcome is not Outcome.OK]
    total = len(results)
    if (rule == "any" and up) or (rule == "all" and not down):
        pick = min if rule == "any" else max
        label, best = pick(up, key=lambda pair: pair[1].rtt_ns or 0)
        detail = None if len(up) == total else f"{len(up)} of {total} targets up"
        return _as_trunks(best, trunk, sent_wall_ns, duration_ns, detail)
    label, failed = down[0]
    prefix = f"{len(down)} of {total} targets down; " if total > 1 else ""
    return _as_trunks(failed, trunk, sent_wall_ns, duration_ns, prefix + _named(label, failed))


def _named(label: str, result: ProbeResult) -> str:
    cause = result.detail or (
        f"{result.status_code} {result.reason or ''}".rstrip()
        if result.status_code is not None
        else result.outcome.value
    )
    return f"{label}: {cause}"


def _as_trunks(
    target: ProbeResult, trunk: str, sent_wall_ns: int, duration_ns: int, detail: str | None
) -> ProbeResult:
    """One target's verdict (outcome, RTT, status) as the trunk's result for the round."""
    return replace(
        target, trunk=trunk, sent_wall_ns=sent_wall_ns, duration_ns=duration_ns, detail=detail
    )


def _result(
    trunk: str, outcome: Outcome, sent_wall_ns: int, duration_ns: int, *, detail: str
) -> ProbeResult:
    return ProbeResult(
        trunk=trunk,
        probe="options",
        outcome=outcome,
        sent_wall_ns=sent_wall_ns,
        duration_ns=duration_ns,
        detail=detail,
    )
