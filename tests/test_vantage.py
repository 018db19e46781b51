"""Is it them or us (issue 12): an agent that sees every trunk of several carriers fail at
once opens no outage and no ticket for it; the time is unknown (a monitor gap) instead.
Pure: results in, events out, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.events import MonitorGap, OutageOpened
from monitor.health import HealthPolicy, TrunkHealth
from monitor.metrics.exposition import ExpositionFormat
from monitor.pipeline import Pipeline, Produced
from monitor.vantage import SUSPECT_REASON, Side, VantageGuard, VantagePolicy, side
from probes.instants import ns_from_utc
from probes.result import Outcome, ProbeResult

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)
CARRIERS = {"a1": "carrier-a", "a2": "carrier-a", "b1": "carrier-b"}


def pipeline(
    carriers: dict[str, str] = CARRIERS,
    policy: VantagePolicy | None = None,
    controls: tuple[str, ...] = (),
) -> Pipeline:
    health = {t: TrunkHealth(t) for t in carriers}
    guard = VantageGuard(
        "agent-a", carriers, policy or VantagePolicy(), controls=dict.fromkeys(controls)
    )
    return Pipeline("agent-a", health, {t: HealthPolicy(3, 2) for t in carriers}, vantage=guard)


def feed(p: Pipeline, second: float, trunk: str, outcome: Outcome) -> Produced | None:
    at = T0 + timedelta(seconds=second)
    result = ProbeResult(trunk, "options", outcome, ns_from_utc(at), duration_ns=1)
    return p.on_result(result, at)


def run(p: Pipeline, rounds: range, plan: dict[str, Outcome]) -> list[object]:
    """Every trunk once per second (spread inside the second); all events produced."""
    events: list[object] = []
    for second in rounds:
        for i, (trunk, outcome) in enumerate(plan.items()):
            out = feed(p, second + i * 0.3, trunk, outcome)
            if out is not None:
                events += out.events
    return events


def test_every_trunk_of_two_carriers_failing_at_once_is_ours_not_theirs() -> None:
    p = pipeline()
    run(p, range(0, 2), dict.fromkeys(CARRIERS, Outcome.OK))
    down = run(p, range(2, 12), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))
    assert not [e for e in down if isinstance(e, OutageOpened)]
    assert p.vantage is not None and p.vantage.suspect
    # Suspect since the first failure of all: 2 s.
    assert p.vantage.suspect_since == T0 + timedelta(seconds=2)
    assert 'trunkwatch_agent_suspect{agent="agent-a"} 1.0' in p.render(ExpositionFormat.TEXT)
    back = run(p, range(12, 14), dict.fromkeys(CARRIERS, Outcome.OK))
    (gap,) = [e for e in back if isinstance(e, MonitorGap)]
    assert (gap.start, gap.end) == (T0 + timedelta(seconds=2), T0 + timedelta(seconds=12))
    assert gap.reason == SUSPECT_REASON and gap.agent == "agent-a"
    assert not p.vantage.suspect
    assert not [e for e in back if isinstance(e, OutageOpened)]
    assert 'trunkwatch_agent_suspect{agent="agent-a"} 0.0' in p.render(ExpositionFormat.TEXT)


def test_one_carrier_down_while_the_other_answers_is_an_outage() -> None:
    p = pipeline()
    plan = {"a1": Outcome.TIMEOUT, "a2": Outcome.TIMEOUT, "b1": Outcome.OK}
    events = run(p, range(0, 5), plan)
    opened = sorted(e.outage.trunk for e in events if isinstance(e, OutageOpened))
    assert opened == ["a1", "a2"]
    assert p.vantage is not None and not p.vantage.suspect


def test_one_carrier_alone_is_never_suspect() -> None:
    # Two trunks of the same carrier failing together is that carrier's outage.
    carriers = {"a1": "carrier-a", "a2": "carrier-a"}
    p = pipeline(carriers)
    events = run(p, range(0, 5), dict.fromkeys(carriers, Outcome.TIMEOUT))
    assert len([e for e in events if isinstance(e, OutageOpened)]) == 2


def test_the_rule_can_be_turned_off() -> None:
    p = pipeline(policy=VantagePolicy(min_carriers=0))
    events = run(p, range(0, 5), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))
    assert len([e for e in events if isinstance(e, OutageOpened)]) == 3


def test_a_trunk_still_down_after_we_are_back_opens_from_a_fresh_streak() -> None:
    p = pipeline()
    run(p, range(0, 1), dict.fromkeys(CARRIERS, Outcome.OK))
    run(p, range(1, 6), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))
    # We are back: a1 and b1 answer, a2 keeps failing: its outage starts after our return.
    plan = {"a1": Outcome.OK, "a2": Outcome.TIMEOUT, "b1": Outcome.OK}
    events = run(p, range(6, 12), plan)
    (opened,) = [e for e in events if isinstance(e, OutageOpened)]
    assert opened.outage.trunk == "a2"
    assert opened.outage.first_failure_at >= T0 + timedelta(seconds=6)


def test_an_outage_already_open_stays_open_and_closes_normally() -> None:
    p = pipeline()
    run(p, range(0, 1), dict.fromkeys(CARRIERS, Outcome.OK))
    plan = {"a1": Outcome.TIMEOUT, "a2": Outcome.OK, "b1": Outcome.OK}
    opened = [e for e in run(p, range(1, 5), plan) if isinstance(e, OutageOpened)]
    assert [e.outage.trunk for e in opened] == ["a1"]
    run(p, range(5, 9), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))  # then we are cut off
    assert p.vantage is not None and p.vantage.suspect
    assert p.health["a1"].open_outage is not None
    run(p, range(9, 12), dict.fromkeys(CARRIERS, Outcome.OK))
    assert p.health["a1"].open_outage is None


CONTROL = "tcp://192.0.2.7:5061"


def control(p: Pipeline, second: float, answered: bool) -> list[str]:
    """A control target's result; the log events it produced."""
    at = T0 + timedelta(seconds=second)
    outcome = Outcome.OK if answered else Outcome.REFUSED
    out = p.on_control(ProbeResult(CONTROL, "connect", outcome, ns_from_utc(at)))
    return [] if out is None else [line.event for line in out.logs]


def test_the_side_is_theirs_only_when_a_control_target_answered_since_the_failures() -> None:
    since = T0 + timedelta(seconds=10)
    assert side({}, since) is Side.OURS  # no control targets: the plain heuristic
    assert side({"x": None, "y": None}, since) is Side.OURS  # they fail too
    assert side({"x": T0}, since) is Side.OURS  # an answer from before says nothing of now
    assert side({"x": None, "y": since}, since) is Side.THEIRS


def test_a_control_target_answering_makes_every_trunk_failing_the_carriers_outage() -> None:
    p = pipeline(controls=(CONTROL,))
    control(p, 0, True)
    run(p, range(0, 2), dict.fromkeys(CARRIERS, Outcome.OK))
    # Every trunk fails from 2 s; the control target last answered at 0 s: suspect at first.
    run(p, range(2, 4), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))
    assert p.vantage is not None and p.vantage.suspect
    # It answers at 4 s: the carriers' side. Logged once; no gap; the outages open.
    assert control(p, 4, True) == ["vantage_their_side"]
    assert control(p, 5, True) == []
    assert not p.vantage.suspect
    events = run(p, range(6, 10), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))
    opened = [e for e in events if isinstance(e, OutageOpened)]
    assert sorted(e.outage.trunk for e in opened) == ["a1", "a2", "b1"]
    assert not [e for e in events if isinstance(e, MonitorGap)]
    text = p.render(ExpositionFormat.TEXT)
    assert f'trunkwatch_control_target_up{{agent="agent-a",target="{CONTROL}"}} 1.0' in text


def test_control_targets_failing_too_make_the_agent_suspect() -> None:
    p = pipeline(controls=(CONTROL,))
    control(p, 0, True)
    run(p, range(0, 2), dict.fromkeys(CARRIERS, Outcome.OK))
    assert control(p, 2, False) == []  # trunks still answer: nothing to judge
    down = run(p, range(2, 12), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))
    assert control(p, 7, False) == []  # already suspect: no second line
    assert not [e for e in down if isinstance(e, OutageOpened)]
    assert p.vantage is not None and p.vantage.suspect_since == T0 + timedelta(seconds=2)
    text = p.render(ExpositionFormat.TEXT)
    assert f'trunkwatch_control_target_up{{agent="agent-a",target="{CONTROL}"}} 0.0' in text


def test_their_side_then_the_control_targets_fail_too_is_ours_from_then() -> None:
    p = pipeline(controls=(CONTROL,))
    run(p, range(0, 2), dict.fromkeys(CARRIERS, Outcome.OK))
    control(p, 2.5, True)
    run(p, range(2, 4), dict.fromkeys(CARRIERS, Outcome.TIMEOUT))
    assert p.vantage is not None and not p.vantage.suspect  # answered after the failures
    assert control(p, 8, False) == ["vantage_suspect"]
    assert p.vantage.suspect_since == T0 + timedelta(seconds=8)
