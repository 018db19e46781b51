"""The quorum verdict as plain values (issue 12): agents' views in, the contract's outage
events out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.events import Outage, OutageClosed, OutageKind, OutageOpened
from monitor.quorum import View, evaluate, needed, outage_id, quorum_spans, reconcile

T0 = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def view(agent: str, start: float, end: float | None = None, trunk: str = "t1") -> View:
    o = Outage(f"{agent}-{start}", trunk, OutageKind.OUTAGE, at(start), at(start + 1), "timeout")
    if end is not None:
        o = o.closed(restored_at=at(end), closed_at=at(end + 1))
    return View(agent, o)


def test_a_majority_of_the_agents_alive_by_default() -> None:
    assert [needed(n, None) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert needed(5, 4) == 4


def test_spans_where_enough_views_overlap() -> None:
    views = [view("a", 0, 60), view("b", 5, 50), view("c", 40)]
    assert quorum_spans(views, 2) == [(at(5), at(60))]
    assert quorum_spans(views, 3) == [(at(40), at(50))]
    assert quorum_spans(views, 1) == [(at(0), None)]


def test_one_agent_alone_is_vantage_local() -> None:
    events = reconcile("t1", [view("a", 0)], None, 2, at(30))
    assert events == []


def test_the_outage_starts_when_the_quorum_is_reached_and_ends_when_it_is_lost() -> None:
    views = [view("a", 0), view("b", 3), view("c", 7)]
    (opened,) = reconcile("t1", views, None, 2, at(10))
    assert isinstance(opened, OutageOpened)
    o = opened.outage
    assert (o.first_failure_at, o.confirmed_at, o.id) == (at(3), at(10), outage_id("t1", at(3)))
    assert o.detail == "quorum 2: a, b"
    # Re-evaluating changes nothing while the quorum holds (any leader, any time).
    assert reconcile("t1", views, o, 2, at(20)) == []
    # a recovers at 61 s: b and c still agree. b at 65 s: the quorum is lost then.
    later = [view("a", 0, 61), view("b", 3, 65), view("c", 7)]
    assert reconcile("t1", [later[0], view("b", 3), view("c", 7)], o, 2, at(62)) == []
    (closed,) = reconcile("t1", later, o, 2, at(66))
    assert isinstance(closed, OutageClosed)
    assert (closed.outage.id, closed.outage.restored_at) == (o.id, at(65))


def test_two_leaders_derive_the_same_outage() -> None:
    views = [view("a", 0), view("b", 3)]
    first = reconcile("t1", views, None, 2, at(10))
    second = reconcile("t1", views, None, 2, at(11))
    assert isinstance(first[0], OutageOpened) and isinstance(second[0], OutageOpened)
    assert first[0].outage.id == second[0].outage.id


def test_dead_agents_do_not_vote() -> None:
    views = [("a", view("a", 0).outage), ("b", view("b", 3).outage), ("c", view("c", 4).outage)]
    trunks = {"t1": None}
    # Three alive: majority 2, reached at 3 s.
    (opened,) = evaluate(views, [], ["a", "b", "c"], trunks, at(10))
    assert isinstance(opened, OutageOpened) and opened.outage.first_failure_at == at(3)
    # Only a alive (b and c stopped beating): one agent alone is its own quorum.
    (alone,) = evaluate(views, [], ["a"], trunks, at(10))
    assert isinstance(alone, OutageOpened) and alone.outage.first_failure_at == at(0)
    # Nobody alive: no verdict at all (the time is unknown).
    assert evaluate(views, [], [], trunks, at(10)) == []


def test_an_open_outage_whose_quorum_vanished_is_closed() -> None:
    o = reconcile("t1", [view("a", 0), view("b", 3)], None, 2, at(10))[0]
    assert isinstance(o, OutageOpened)
    (closed,) = evaluate(
        [("a", view("a", 0, 30).outage)], [o.outage], ["a", "b"], {"t1": None}, at(40)
    )
    assert isinstance(closed, OutageClosed) and closed.outage.restored_at == at(30)


def test_the_outage_goes_on_when_the_agreeing_agents_change() -> None:
    # a and b agree from 3 s; then both die and c, still seeing it down, is alone alive:
    # one agent alone is its own quorum, and the outage that began at 3 s goes on.
    opened = reconcile("t1", [view("a", 0), view("b", 3), view("c", 7)], None, 2, at(10))[0]
    assert isinstance(opened, OutageOpened)
    views = [("c", view("c", 7).outage)]
    assert evaluate(views, [opened.outage], ["c"], {"t1": None}, at(60)) == []
    (closed,) = evaluate(
        [("c", view("c", 7, 90).outage)], [opened.outage], ["c"], {"t1": None}, at(95)
    )
    assert isinstance(closed, OutageClosed)
    assert (closed.outage.first_failure_at, closed.outage.restored_at) == (at(3), at(90))


def test_only_the_agents_named_for_a_trunk_vote_on_it() -> None:
    # t1 is probed by a and b only (trunks[].agents): a majority of those two is both.
    named = {"t1": frozenset({"a", "b"})}
    alive = ["a", "b", "c"]
    one = [("a", view("a", 0).outage), ("c", view("c", 1).outage)]  # c's view does not count
    assert evaluate(one, [], alive, {"t1": None}, at(10), watchers=named) == []
    both = [("a", view("a", 0).outage), ("b", view("b", 2).outage)]
    (opened,) = evaluate(both, [], alive, {"t1": None}, at(10), watchers=named)
    assert isinstance(opened, OutageOpened) and opened.outage.first_failure_at == at(2)
    # A trunk named for nobody alive has no verdict: nobody watches it.
    assert evaluate(both, [], ["c"], {"t1": None}, at(10), watchers=named) == []


def test_a_quorum_reached_and_lost_while_nobody_led_is_journaled_when_a_leader_comes() -> None:
    # a and b agree from 3 s to 50 s, with no leader running; a leader arrives at 100 s.
    views = [view("a", 0, 60), view("b", 3, 50), view("c", 70, 80)]
    events = reconcile("t1", views, None, 2, at(100), judged_until=at(-10))
    opened, closed = events
    assert isinstance(opened, OutageOpened) and isinstance(closed, OutageClosed)
    o = closed.outage
    assert (o.id, o.first_failure_at, o.restored_at) == (outage_id("t1", at(3)), at(3), at(50))
    # Confirmed when the second view was (b at 4 s), as a leader then would have; closed now.
    assert (o.confirmed_at, o.closed_at) == (at(4), at(100))
    assert (opened.outage.id, opened.outage.restored_at) == (o.id, None)
    # Judged once: the same leader (or the next) writes nothing more.
    assert reconcile("t1", views, None, 2, at(101), judged_until=at(50)) == []
    known = frozenset({o.id})
    assert reconcile("t1", views, None, 2, at(101), judged_until=at(-10), known=known) == []


def test_spans_before_the_last_verdict_are_not_judged_again_and_a_later_one_opens() -> None:
    views = [view("a", 0, 20), view("b", 3, 20), view("a", 30), view("b", 35)]
    # The store's last verdict ended at 20 s (the 3 s → 20 s span): only the new one opens.
    (opened,) = reconcile("t1", views, None, 2, at(40), judged_until=at(20))
    assert isinstance(opened, OutageOpened)
    assert (opened.outage.first_failure_at, opened.outage.confirmed_at) == (at(35), at(40))
    # An ongoing span that began before the last verdict ended is new only from its end.
    (clipped,) = reconcile("t1", [view("a", 0), view("b", 3)], None, 2, at(40), judged_until=at(9))
    assert isinstance(clipped, OutageOpened) and clipped.outage.first_failure_at == at(9)


def test_evaluate_backfills_from_each_trunks_last_verdict_within_the_lookback() -> None:
    views = [("a", view("a", 0, 60).outage), ("b", view("b", 3, 50).outage)]
    events = evaluate(views, [], ["a", "b"], {"t1": None}, at(100), judged={})
    assert [type(e) for e in events] == [OutageOpened, OutageClosed]
    # Without `judged` (the old call) a span already over is not looked at.
    assert evaluate(views, [], ["a", "b"], {"t1": None}, at(100)) == []
