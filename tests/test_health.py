"""The health state machine and the journal's events: transitions, replay, JSON form."""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.events import (
    Event,
    EventDecodeError,
    MonitorGap,
    Outage,
    OutageClosed,
    OutageKind,
    OutageOpened,
    TrunkState,
    TrunkStateChanged,
    from_json,
)
from monitor.health import (
    NO_EVENTS,
    HealthPolicy,
    ReplayError,
    TrunkHealth,
    TrunkPolicies,
    mark_unknown,
    reduce,
    replay,
    shared_policy,
)
from probes.instants import ns_from_utc
from probes.result import Outcome, ProbeResult

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)
ARRIVAL_DELAY = timedelta(milliseconds=250)  # result arrives this long after its send
TRUNK = "carrier-a"

U, D, Q = TrunkState.UP, TrunkState.DOWN, TrunkState.UNKNOWN
STATE_CODES = {"U": U, "D": D, "?": Q}
OUTCOME_CODES = {"o": Outcome.OK, "f": Outcome.TIMEOUT, "r": Outcome.REFUSED}
OUTCOME_CODES["x"] = Outcome.PROBE_CRASHED


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"outage-{next(numbers)}"


def sent_at(step: int) -> datetime:
    return T0 + timedelta(seconds=step)


def result(step: int, outcome: Outcome, detail: str | None = None) -> ProbeResult:
    return ProbeResult(
        trunk=TRUNK,
        probe="options",
        outcome=outcome,
        sent_wall_ns=ns_from_utc(sent_at(step)),
        detail=detail,
    )


def run(
    codes: str, policy: HealthPolicy, health: TrunkHealth | None = None
) -> tuple[TrunkHealth, list[TrunkState], list[tuple[int, Event]]]:
    """Feed one result per code, one second apart; return final health, states, events."""
    health = health or TrunkHealth(TRUNK)
    new_id = counter_ids()
    states: list[TrunkState] = []
    events: list[tuple[int, Event]] = []
    for step, code in enumerate(codes):
        out = reduce(
            health, result(step, OUTCOME_CODES[code]), sent_at(step) + ARRIVAL_DELAY, policy,
            new_id=new_id,
        )  # fmt: skip
        states.append(health.state)
        events.extend((step, e) for e in out)
    return health, states, events


# (sequence, down_after, up_after, states after each result, (step, event kind) in order)
# o = ok, f = timeout, r = refused, x = probe crashed (the monitor's fault: ignored)
TRANSITIONS = [
    ("o", 3, 2, "U", [(0, "trunk_state")]),
    ("ff", 3, 2, "??", []),
    ("fff", 3, 2, "??D", [(2, "trunk_state"), (2, "outage_opened")]),
    ("offf", 3, 2, "UUUD", [(0, "trunk_state"), (3, "trunk_state"), (3, "outage_opened")]),
    ("offo", 3, 2, "UUUU", [(0, "trunk_state")]),
    ("fffo", 3, 2, "??DD", [(2, "trunk_state"), (2, "outage_opened")]),
    (
        "fffoo",
        3, 2, "??DDU",
        [(2, "trunk_state"), (2, "outage_opened"), (4, "trunk_state"), (4, "outage_closed")],
    ),
    # flapping while DOWN: the recovery restarts, the same outage stays open
    (
        "fffofofoo",
        3, 2, "??DDDDDDU",
        [(2, "trunk_state"), (2, "outage_opened"), (8, "trunk_state"), (8, "outage_closed")],
    ),
    # a crashed prober neither breaks nor extends a streak
    ("ffxf", 3, 2, "???D", [(3, "trunk_state"), (3, "outage_opened")]),
    (
        "fffoxo",
        3, 2, "??DDDU",
        [(2, "trunk_state"), (2, "outage_opened"), (5, "trunk_state"), (5, "outage_closed")],
    ),
    ("xxx", 3, 2, "???", []),
    ("oxxf", 3, 2, "UUUU", [(0, "trunk_state")]),
    # a success from UNKNOWN is UP at once; a failing streak is cut by it
    ("ffofff", 3, 2, "??UUUD", [(2, "trunk_state"), (5, "trunk_state"), (5, "outage_opened")]),
    ("frf", 3, 2, "??D", [(2, "trunk_state"), (2, "outage_opened")]),
    (
        "fofo",
        1, 1, "DUDU",
        [
            (0, "trunk_state"), (0, "outage_opened"), (1, "trunk_state"), (1, "outage_closed"),
            (2, "trunk_state"), (2, "outage_opened"), (3, "trunk_state"), (3, "outage_closed"),
        ],
    ),
    (
        "fffoofff",
        3, 2, "??DDUUUD",
        [
            (2, "trunk_state"), (2, "outage_opened"), (4, "trunk_state"), (4, "outage_closed"),
            (7, "trunk_state"), (7, "outage_opened"),
        ],
    ),
    ("fffooo", 3, 3, "??DDDU",
     [(2, "trunk_state"), (2, "outage_opened"), (5, "trunk_state"), (5, "outage_closed")]),
]  # fmt: skip


@pytest.mark.parametrize(("codes", "down_after", "up_after", "states", "kinds"), TRANSITIONS)
def test_transitions(
    codes: str, down_after: int, up_after: int, states: str, kinds: list[tuple[int, str]]
) -> None:
    _, got_states, events = run(codes, HealthPolicy(down_after, up_after))
    assert "".join(s.name[0] if s is not Q else "?" for s in got_states) == states
    assert [(step, e.kind) for step, e in events] == kinds
    for _, event in events:
        if isinstance(event, TrunkStateChanged):
            assert event.old is not event.new


def test_state_change_events_say_from_what_to_what_and_why() -> None:
    _, _, events = run("offfoo", HealthPolicy(3, 2))
    changes = [e for _, e in events if isinstance(e, TrunkStateChanged)]
    assert [(c.old, c.new, c.cause) for c in changes] == [
        (Q, U, "ok"),
        (U, D, "timeout"),
        (D, U, "ok"),
    ]
    assert [c.at for c in changes] == [sent_at(i) + ARRIVAL_DELAY for i in (0, 3, 5)]


def test_outage_timestamps_follow_the_streaks() -> None:
    # fails at 1..3 (confirmed at the 3rd), flaps at 4/5, recovers from 6, closed at the 7th
    health, _, events = run("offfofoo", HealthPolicy(3, 2))
    opened = [e for _, e in events if isinstance(e, OutageOpened)]
    closed = [e for _, e in events if isinstance(e, OutageClosed)]
    assert len(opened) == len(closed) == 1
    outage = closed[0].outage
    assert outage.id == opened[0].outage.id
    assert outage.kind is OutageKind.OUTAGE
    assert outage.first_failure_at == sent_at(1)
    assert outage.confirmed_at == sent_at(3) + ARRIVAL_DELAY
    assert outage.restored_at == sent_at(6)
    assert outage.closed_at == sent_at(7) + ARRIVAL_DELAY
    assert health.open_outage is None
    assert opened[0].outage.restored_at is None and opened[0].outage.closed_at is None


@pytest.mark.parametrize("codes", ["o", "oo", "offo", "ffo", "fffoo", "fffoofo", "fffofoo"])
def test_an_answering_up_trunk_holds_no_streak_instant_or_cause(codes: str) -> None:
    # Read only by a recovery (restored_at) and a failure streak (first_failure_at): an UP
    # trunk kept a datetime each for nothing (~6 MB at 100,000 trunks).
    health, states, _ = run(codes, HealthPolicy(3, 2))
    assert states[-1] is U
    assert (health.streak_started_at, health.streak_outcome, health.streak_detail) == (
        None,
        None,
        None,
    )


def test_a_recovery_restores_at_its_first_success_after_an_up_success_streak() -> None:
    # UP answers (no instant kept), three failures open, two answers close at the first.
    _, _, events = run("oooffffoo", HealthPolicy(3, 2))
    (closed,) = [e for _, e in events if isinstance(e, OutageClosed)]
    assert closed.outage.first_failure_at == sent_at(3)
    assert closed.outage.restored_at == sent_at(7)


def test_outage_keeps_the_first_failures_outcome_and_detail() -> None:
    health = TrunkHealth(TRUNK)
    policy = HealthPolicy(3, 2)
    reduce(health, result(0, Outcome.TIMEOUT, "no answer in 32 s"), sent_at(0), policy)
    reduce(health, result(1, Outcome.REFUSED, "ICMP port unreachable"), sent_at(1), policy)
    events = reduce(health, result(2, Outcome.DNS, "NXDOMAIN"), sent_at(2), policy)
    (opened,) = [e for e in events if isinstance(e, OutageOpened)]
    assert (opened.outage.first_outcome, opened.outage.detail) == ("timeout", "no answer in 32 s")
    assert health.last_outcome is Outcome.DNS
    assert health.open_outage == opened.outage


def test_outage_ids_are_uuid4_by_default() -> None:
    health = TrunkHealth(TRUNK)
    events = reduce(health, result(0, Outcome.TIMEOUT), sent_at(0), HealthPolicy(1, 1))
    (opened,) = [e for e in events if isinstance(e, OutageOpened)]
    assert uuid.UUID(opened.outage.id).version == 4


def test_quiet_steps_return_the_shared_empty_tuple() -> None:
    health = TrunkHealth(TRUNK)
    policy = HealthPolicy()
    reduce(health, result(0, Outcome.OK), sent_at(0), policy)
    assert reduce(health, result(1, Outcome.OK), sent_at(1), policy) is NO_EVENTS


def test_ignored_outcome_touches_nothing() -> None:
    health, _, _ = run("ff", HealthPolicy(3, 2))
    before = (health.fail_streak, health.ok_streak, health.streak_started_at, health.last_outcome)
    assert reduce(health, result(5, Outcome.PROBE_CRASHED), sent_at(5), HealthPolicy()) == ()
    after = (health.fail_streak, health.ok_streak, health.streak_started_at, health.last_outcome)
    assert after == before


def test_result_for_another_trunk_is_refused() -> None:
    other = ProbeResult(trunk="carrier-b", probe="options", outcome=Outcome.OK, sent_wall_ns=0)
    with pytest.raises(ValueError, match="carrier-b"):
        reduce(TrunkHealth(TRUNK), other, T0, HealthPolicy())


@pytest.mark.parametrize(("down_after", "up_after"), [(0, 2), (3, 0), (-1, -1)])
def test_policy_thresholds_must_be_positive(down_after: int, up_after: int) -> None:
    with pytest.raises(ValueError, match="down_after"):
        HealthPolicy(down_after, up_after)


# --- property: whatever the sequence, outages are well-formed -----------------------------

outcomes = st.sampled_from([Outcome.OK, Outcome.TIMEOUT, Outcome.REFUSED, Outcome.PROBE_CRASHED])


@settings(max_examples=200, deadline=None)
@given(
    seq=st.lists(outcomes, max_size=60),
    down_after=st.integers(1, 5),
    up_after=st.integers(1, 5),
)
def test_outages_are_well_formed_for_any_sequence(
    seq: list[Outcome], down_after: int, up_after: int
) -> None:
    policy = HealthPolicy(down_after, up_after)
    health = TrunkHealth(TRUNK)
    new_id = counter_ids()
    counted: list[tuple[int, bool]] = []  # (step, ok) of results health may count
    journal: list[Event] = []
    open_outage: Outage | None = None
    finished: list[Outage] = []
    for step, outcome in enumerate(seq):
        if outcome is not Outcome.PROBE_CRASHED:
            counted.append((step, outcome is Outcome.OK))
        now = sent_at(step) + ARRIVAL_DELAY
        events = reduce(health, result(step, outcome), now, policy, new_id=new_id)
        journal.extend(events)
        for event in events:
            if isinstance(event, OutageOpened):
                assert open_outage is None, "at most one outage open per trunk"
                tail = counted[-down_after:]
                assert len(tail) == down_after and not any(ok for _, ok in tail)
                run_start = _run_start(counted, ok=False)
                assert event.outage.first_failure_at == sent_at(run_start)
                assert event.outage.confirmed_at == now
                if finished:  # never overlapping the previous one
                    assert finished[-1].restored_at is not None
                    assert finished[-1].restored_at < event.outage.first_failure_at
                open_outage = event.outage
            elif isinstance(event, OutageClosed):
                assert open_outage is not None and event.outage.id == open_outage.id
                tail = counted[-up_after:]
                assert len(tail) == up_after and all(ok for _, ok in tail)
                assert event.outage.restored_at == sent_at(_run_start(counted, ok=True))
                assert event.outage.closed_at == now
                finished.append(event.outage)
                open_outage = None
        assert (health.state is D) == (open_outage is not None)
        assert health.open_outage == open_outage
    # The journal alone rebuilds the same outage and state.
    rebuilt = replay(journal)
    if journal:
        assert rebuilt[TRUNK].open_outage == health.open_outage
        assert rebuilt[TRUNK].state is health.state
    else:
        assert health.state is Q and rebuilt == {}
    assert len({o.id for o in finished}) == len(finished)


def _run_start(counted: list[tuple[int, bool]], *, ok: bool) -> int:
    """Step of the first result of the run of same-kind results that ends the list."""
    start = counted[-1][0]
    for step, was_ok in reversed(counted):
        if was_ok is not ok:
            break
        start = step
    return start


# --- replay and gaps ----------------------------------------------------------------------


def test_replay_mid_outage_comes_back_down_with_the_same_outage() -> None:
    live, _, events = run("offfof", HealthPolicy(3, 2))
    rebuilt = replay(e for _, e in events)
    health = rebuilt[TRUNK]
    assert live.open_outage is not None
    assert health.state is D and health.open_outage == live.open_outage
    assert (health.fail_streak, health.ok_streak, health.streak_started_at) == (0, 0, None)
    # continuing after the restart closes that outage, not a new one
    out = [
        e
        for step in (10, 11)
        for e in reduce(health, result(step, Outcome.OK), sent_at(step), HealthPolicy(3, 2))
    ]
    (closed,) = [e for e in out if isinstance(e, OutageClosed)]
    assert closed.outage.id == live.open_outage.id
    assert closed.outage.restored_at == sent_at(10)


def test_replay_after_close_is_up_without_outage() -> None:
    _, _, events = run("fffoo", HealthPolicy(3, 2))
    health = replay(e for _, e in events)[TRUNK]
    assert health.state is U and health.open_outage is None


def test_replay_skips_gaps_and_keeps_trunks_apart() -> None:
    _, _, a_events = run("fff", HealthPolicy(3, 2))
    b_up = TrunkStateChanged("carrier-b", T0, Q, U, "ok")
    gap = MonitorGap("agent-1", T0, T0 + timedelta(minutes=5), "monitor_not_running")
    rebuilt = replay([b_up, *(e for _, e in a_events), gap])
    assert rebuilt["carrier-b"].state is U and rebuilt["carrier-b"].open_outage is None
    assert rebuilt[TRUNK].state is D


def _outage(id_: str = "o-1", **times: datetime) -> Outage:
    times = {"first_failure_at": T0, "confirmed_at": T0 + timedelta(seconds=2), **times}
    return Outage(id=id_, trunk=TRUNK, kind=OutageKind.OUTAGE, first_outcome="timeout", **times)  # type: ignore[arg-type]


def _closed(outage: Outage) -> Outage:
    return outage.closed(restored_at=T0 + timedelta(minutes=1), closed_at=T0 + timedelta(minutes=2))


@pytest.mark.parametrize(
    "journal",
    [
        [OutageClosed(_closed(_outage()))],  # close without open
        [OutageOpened(_outage("o-1")), OutageClosed(_closed(_outage("o-2")))],  # wrong id
        [OutageOpened(_outage("o-1")), OutageOpened(_outage("o-2"))],  # two open
    ],
)
def test_replay_refuses_a_contradictory_journal(journal: list[Event]) -> None:
    with pytest.raises(ReplayError, match=TRUNK):
        replay(journal)


def test_mark_unknown_keeps_down_trunks_and_resets_streaks() -> None:
    healths = {
        "up": TrunkHealth("up", state=U, ok_streak=7, streak_started_at=T0),
        "down": TrunkHealth("down", state=D, open_outage=_outage(), ok_streak=1),
        "unknown": TrunkHealth("unknown"),
    }
    events = mark_unknown(healths, T0 + timedelta(hours=1), "monitor_not_running")
    assert [(e.trunk, e.old, e.new, e.cause) for e in events] == [
        ("up", U, Q, "monitor_not_running")
    ]
    assert healths["up"].state is Q and healths["down"].state is D
    assert healths["down"].open_outage is not None
    assert all(h.ok_streak == h.fail_streak == 0 for h in healths.values())
    assert all(h.streak_started_at is None for h in healths.values())


# --- events: UTC only, JSON round trip ----------------------------------------------------

MEXICO = ZoneInfo("America/Mexico_City")


def _all_kinds() -> list[Event]:
    outage = _outage()
    return [
        TrunkStateChanged(TRUNK, T0, U, D, "timeout"),
        OutageOpened(outage),
        OutageClosed(_closed(outage)),
        MonitorGap("agent-1", T0, T0 + timedelta(minutes=5), "monitor_not_running"),
    ]


@pytest.mark.parametrize("event", _all_kinds(), ids=lambda e: e.kind)
def test_event_json_round_trip(event: Event) -> None:
    text = event.to_json()
    assert json.loads(text)["kind"] == event.kind
    back = from_json(text)
    assert back == event and type(back) is type(event)
    assert back.at.tzinfo is UTC


def test_events_refuse_naive_datetimes() -> None:
    naive = datetime(2026, 10, 3, 14, 0)
    with pytest.raises(ValueError, match="naive"):
        TrunkStateChanged(TRUNK, naive, U, D, "timeout")
    with pytest.raises(ValueError, match="naive"):
        _outage(restored_at=naive, closed_at=T0)
    with pytest.raises(ValueError, match="naive"):
        MonitorGap("agent-1", naive, T0, "x")


def test_events_normalise_aware_times_to_utc() -> None:
    local = datetime(2026, 10, 3, 14, 0, tzinfo=MEXICO)  # CST, UTC-6
    event = TrunkStateChanged(TRUNK, local, U, D, "timeout")
    assert event.at.tzinfo is UTC and event.at == local
    assert event.at.hour == 20
    assert '"at":"2026-10-03T20:00:00+00:00"' in event.to_json()


def test_outage_and_gap_invariants() -> None:
    with pytest.raises(ValueError, match="together"):
        _outage(restored_at=T0)
    with pytest.raises(ValueError, match="confirmed before"):
        _outage(confirmed_at=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="end after"):
        MonitorGap("agent-1", T0, T0, "x")
    with pytest.raises(ValueError, match="already closed"):
        OutageOpened(_closed(_outage()))
    with pytest.raises(ValueError, match="without closed_at"):
        OutageClosed(_outage())


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"kind": "trunk_exploded"}', "unknown kind"),
        ('{"kind": "trunk_state", "trunk": "a"}', "'at'"),
        (
            '{"kind":"trunk_state","trunk":"a","at":"2026-10-03T14:00:00",'
            '"old":"up","new":"down","cause":"timeout"}',
            "without a UTC offset",
        ),
        (
            '{"kind":"trunk_state","trunk":"a","at":"yesterday",'
            '"old":"up","new":"down","cause":"timeout"}',
            "not an ISO 8601",
        ),
        (
            '{"kind":"trunk_state","trunk":"a","at":"2026-10-03T14:00:00Z",'
            '"old":"up","new":"sideways","cause":"timeout"}',
            "unknown trunk state",
        ),
        ('{"kind": "outage_opened", "outage": 3}', "expected a JSON object"),
        (
            '{"kind":"monitor_gap","agent":"a","start":"2026-10-03T15:00:00Z",'
            '"end":"2026-10-03T14:00:00Z","reason":"x"}',
            "end after",
        ),
    ],
)
def test_bad_payloads_get_clear_errors(payload: str, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        from_json(payload)


def test_probe_send_time_resolution_survives() -> None:
    # sent_wall_ns carries ns; outages keep microseconds (what datetimes and the DB hold)
    health = TrunkHealth(TRUNK)
    sent_ns = ns_from_utc(T0) + 123_456_789
    probe = ProbeResult(TRUNK, "options", Outcome.TIMEOUT, sent_wall_ns=sent_ns)
    (_, opened) = reduce(health, probe, T0 + timedelta(seconds=1), HealthPolicy(1, 1))
    assert isinstance(opened, OutageOpened)
    assert opened.outage.first_failure_at == T0 + timedelta(microseconds=123_457)


def test_a_wall_clock_step_back_still_opens_and_closes_in_order() -> None:
    # results sent at 20:00:00..02 but the wall clock was stepped back 1 h before they arrived
    health = TrunkHealth(TRUNK)
    back = -timedelta(hours=1)
    events = [
        e
        for step, code in enumerate("fffoo")
        for e in reduce(health, result(step, OUTCOME_CODES[code]), sent_at(step) + back,
                        HealthPolicy(3, 2))
    ]  # fmt: skip
    (opened,) = [e.outage for e in events if isinstance(e, OutageOpened)]
    (closed,) = [e.outage for e in events if isinstance(e, OutageClosed)]
    assert opened.confirmed_at == opened.first_failure_at == sent_at(0)
    assert closed.restored_at == sent_at(3)
    assert closed.closed_at == sent_at(3)


def test_trunks_with_the_same_thresholds_share_one_immutable_policy() -> None:
    """100,000 trunks hold a few policy objects, not one each (issue #13); sharing is safe
    because a policy cannot be changed in place (a reload gives a trunk another one)."""
    first, second = shared_policy(3, 2), shared_policy(3, 2)
    assert first is second
    assert shared_policy(4, 2) is not first and shared_policy(4, 2) == HealthPolicy(4, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.down_after = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="down_after >= 1"):
        shared_policy(0, 2)


def test_trunk_policies_hold_only_those_unlike_the_most_common() -> None:
    common, own = shared_policy(3, 2), shared_policy(1, 1)
    policies = TrunkPolicies.of([("a", common), ("b", own), ("c", common), ("d", common)])
    assert policies.default is common and dict(policies) == {"b": own}
    assert [policies[t] for t in "abcd"] == [common, own, common, common]
    policies["a"] = own  # a reload gives "a" its own thresholds, and "b" the common ones
    policies["b"] = common
    assert dict(policies) == {"a": own} and policies["b"] is common
    assert TrunkPolicies.of([]).default == HealthPolicy()
