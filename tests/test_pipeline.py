"""The result pipeline as plain values (issue 11): results in, events, sample rows and log
lines out; no database, no event loop, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.events import OutageClosed, OutageOpened, TrunkState, TrunkStateChanged
from monitor.health import HealthPolicy, TrunkHealth
from monitor.pipeline import Pipeline
from monitor.transition_samples import AFTER_SIZE, sample_rows
from probes.instants import ns_from_utc
from probes.result import Outcome, ProbeResult

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)


def pipeline() -> Pipeline:
    return Pipeline("agent-a", {"t1": TrunkHealth("t1")}, {"t1": HealthPolicy(3, 2)})


def result(second: int, outcome: Outcome) -> ProbeResult:
    sent = ns_from_utc(T0 + timedelta(seconds=second))
    ok = outcome is Outcome.OK
    return ProbeResult(
        "t1", "options", outcome, sent, rtt_ns=2_000_000 if ok else None,
        duration_ns=2_000_000, status_code=200 if ok else None,
    )  # fmt: skip


def test_a_steady_trunk_produces_nothing_after_its_first_state() -> None:
    p = pipeline()
    first = p.on_result(result(0, Outcome.OK), T0)
    assert first is not None  # UNKNOWN → UP is a state change
    (change,) = first.events
    assert isinstance(change, TrunkStateChanged) and change.new is TrunkState.UP
    assert first.logs == []  # a first state is counted, not logged trunk by trunk
    summary = p.learned_summary()
    assert summary is not None and (summary.event, summary.fields) == (
        "trunk_states_learned",
        {"up": 1},
    )
    assert p.learned_summary() is None
    # The hot path's common case: the state holds, nothing to write, nothing allocated.
    outs = [
        p.on_result(result(second, Outcome.OK), T0 + timedelta(seconds=second))
        for second in range(1, AFTER_SIZE + 1)
    ]
    # UNKNOWN -> UP is no evidence: no samples are captured for it, so nothing completes.
    assert outs == [None] * AFTER_SIZE
    assert sum(p.stats.rtt_bucket_counts("t1")) == AFTER_SIZE + 1
    assert p.stats.outcome_counts("t1") == {Outcome.OK: AFTER_SIZE + 1}
    assert p.stats.last_success[p.stats.rows["t1"]] == 1


def test_three_failures_open_an_outage_and_two_successes_close_it() -> None:
    p = pipeline()
    now = T0
    p.on_result(result(0, Outcome.OK), now)
    produced = []
    for second, outcome in enumerate(
        [Outcome.TIMEOUT, Outcome.TIMEOUT, Outcome.TIMEOUT, Outcome.OK, Outcome.OK], start=1
    ):
        now = T0 + timedelta(seconds=second)
        out = p.on_result(result(second, outcome), now)
        produced.append([] if out is None else out.events)
    opened = [e for e in produced[2] if isinstance(e, OutageOpened)]
    assert len(opened) == 1 and produced[0] == produced[1] == []
    outage = opened[0].outage
    # The outage starts at the first failure's send instant, not when it was confirmed.
    assert outage.first_failure_at == T0 + timedelta(seconds=1)
    closed = [e for e in produced[4] if isinstance(e, OutageClosed)]
    assert len(closed) == 1 and closed[0].outage.id == outage.id
    assert p.outages_opened == {"t1": 1}
    assert p.health["t1"].open_outage is None


def test_a_transition_keeps_the_results_before_it_as_sample_rows() -> None:
    p = pipeline()
    p.on_result(result(0, Outcome.OK), T0)
    out = None
    for second in (1, 2, 3):
        out = p.on_result(result(second, Outcome.REFUSED), T0 + timedelta(seconds=second))
    assert out is not None and any(isinstance(e, OutageOpened) for e in out.events)
    rows = sample_rows(out.probe_samples)
    assert rows and {r.agent for r in rows} == {"agent-a"}
    assert [r.outcome for r in rows if r.transition_kind == "outage_opened"][-3:] == ["refused"] * 3
