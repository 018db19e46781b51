"""Degradations: test calls below the profile open one, good calls close it; never downtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from monitor.events import OutageClosed, OutageKind, OutageOpened, TrunkState, TrunkStateChanged
from monitor.health import HealthPolicy, QualityPolicy, TrunkHealth, reduce, reduce_quality, replay
from probes.instants import NS_PER_S
from probes.result import Outcome, ProbeResult

T0 = datetime(2026, 10, 3, 14, 0, tzinfo=UTC)
POLICY = QualityPolicy(degrade_after=2, recover_after=2)


def ids() -> object:
    counter = count(1)
    return lambda: f"id-{next(counter)}"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def options(health: TrunkHealth, ok: bool, t: float, new_id: object) -> tuple[object, ...]:
    result = ProbeResult(
        health.trunk,
        "options",
        Outcome.OK if ok else Outcome.TIMEOUT,
        int(at(t).timestamp() * NS_PER_S),
    )
    return reduce(health, result, at(t), HealthPolicy(3, 2), new_id=new_id)  # type: ignore[arg-type]


def test_degradation_opens_after_bad_calls_and_closes_after_good_ones() -> None:
    new_id = ids()
    h = TrunkHealth("t")
    options(h, True, 0, new_id)
    assert h.state is TrunkState.UP
    assert h.quality is None  # made at the first test call: most trunks have none
    assert reduce_quality(h, "jitter_15s", at(60), at(61), POLICY, new_id=new_id) == ()  # type: ignore[arg-type]
    events = reduce_quality(h, "loss_15s", at(120), at(121), POLICY, new_id=new_id)  # type: ignore[arg-type]
    opened = events[0]
    assert isinstance(opened, OutageOpened)
    assert opened.outage.kind is OutageKind.DEGRADATION
    assert opened.outage.first_failure_at == at(60)  # from the first bad call
    assert opened.outage.first_outcome == "jitter_15s"
    assert isinstance(events[1], TrunkStateChanged) and events[1].new is TrunkState.DEGRADED
    assert h.state is TrunkState.DEGRADED
    # A good call, then a bad one: the streak resets, the same degradation stays open.
    reduce_quality(h, None, at(180), at(181), POLICY, new_id=new_id)  # type: ignore[arg-type]
    assert reduce_quality(h, "loss_15s", at(240), at(241), POLICY, new_id=new_id) == ()  # type: ignore[arg-type]
    reduce_quality(h, None, at(300), at(301), POLICY, new_id=new_id)  # type: ignore[arg-type]
    events = reduce_quality(h, None, at(360), at(361), POLICY, new_id=new_id)  # type: ignore[arg-type]
    closed = events[0]
    assert isinstance(closed, OutageClosed) and closed.outage.id == opened.outage.id
    assert closed.outage.restored_at == at(300)
    assert h.state is TrunkState.UP


def test_an_outage_wins_over_a_degradation_and_hands_back_to_it() -> None:
    new_id = ids()
    h = TrunkHealth("t")
    options(h, True, 0, new_id)
    reduce_quality(h, "mos", at(1), at(1), POLICY, new_id=new_id)  # type: ignore[arg-type]
    reduce_quality(h, "mos", at(2), at(2), POLICY, new_id=new_id)  # type: ignore[arg-type]
    assert h.state is TrunkState.DEGRADED
    for t in (3, 4, 5):
        options(h, False, t, new_id)
    assert h.state is TrunkState.DOWN
    options(h, True, 6, new_id)
    events = options(h, True, 7, new_id)
    change = events[0]
    assert isinstance(change, TrunkStateChanged) and change.new is TrunkState.DEGRADED
    assert h.open_degradation is not None and h.open_outage is None


def test_replay_restores_an_open_degradation() -> None:
    new_id = ids()
    h = TrunkHealth("t")
    journal = [*options(h, True, 0, new_id)]
    journal += reduce_quality(h, "mos", at(1), at(1), POLICY, new_id=new_id)  # type: ignore[arg-type]
    journal += reduce_quality(h, "mos", at(2), at(2), POLICY, new_id=new_id)  # type: ignore[arg-type]
    rebuilt = replay(journal)["t"]  # type: ignore[arg-type]
    assert rebuilt.state is TrunkState.DEGRADED
    assert rebuilt.open_degradation is not None
    assert rebuilt.open_degradation.id == h.open_degradation.id  # type: ignore[union-attr]
