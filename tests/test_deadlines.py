"""The shared deadlines of the UDP probes (probes/deadlines.py), on a real event loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from probes.deadlines import SLOT_NS, Deadlines

MS = 1_000_000


@dataclass
class Target:
    """Records when each token fired; `live` is the token still wanted (others are stale)."""

    live: int = 0
    fired: list[tuple[int, int]] = field(default_factory=list)  # (token, perf_counter_ns)

    def on_deadline(self, token: int) -> None:
        if token == self.live:
            self.fired.append((token, time.perf_counter_ns()))


async def test_deadlines_fire_in_order_never_early_at_most_a_slot_late() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    now = time.perf_counter_ns()
    targets = []
    for delay_ms in (30, 10, 20, 10, 45):
        target = Target(live=delay_ms)
        deadlines.add(now + delay_ms * MS, target, delay_ms)
        targets.append(target)
    await asyncio.sleep(0.1)
    for target in targets:
        assert len(target.fired) == 1, target
        token, at = target.fired[0]
        late = at - (now + token * MS)
        assert 0 <= late < SLOT_NS + 20 * MS, (token, late)  # a slot, plus a busy machine
    order = sorted(targets, key=lambda t: t.fired[0][1])
    assert [t.live for t in order] == [10, 10, 20, 30, 45]
    assert len(deadlines) == 0


async def test_a_stale_token_is_a_cancelled_deadline() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    target = Target(live=1)
    now = time.perf_counter_ns()
    deadlines.add(now + 10 * MS, target, 1)
    target.live = 2  # what a probe does when its answer arrives: nothing else
    deadlines.add(now + 20 * MS, target, 2)
    await asyncio.sleep(0.06)
    assert [token for token, _ in target.fired] == [2]


async def test_a_deadline_added_while_firing_and_an_earlier_one_rearm_the_timer() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    now = time.perf_counter_ns()
    late, early = Target(live=1), Target(live=1)
    deadlines.add(now + 200 * MS, late, 1)
    deadlines.add(now + 10 * MS, early, 1)  # before the armed slot: the timer moves up

    class Again(Target):
        def on_deadline(self, token: int) -> None:
            super().on_deadline(token)
            if token == 1:
                self.live = 2
                deadlines.add(time.perf_counter_ns() + 10 * MS, self, 2)

    again = Again(live=1)
    deadlines.add(now + 5 * MS, again, 1)
    await asyncio.sleep(0.08)
    assert len(early.fired) == 1 and not late.fired
    assert [token for token, _ in again.fired] == [1, 2]
    deadlines.close()
    await asyncio.sleep(0.2)
    assert not late.fired  # closed: nothing fires any more


async def test_before_runs_once_per_batch_of_due_deadlines_and_can_make_them_stale() -> None:
    """The socket's drain: once before the deadlines due together (not once per deadline),
    and what it reads (an answer) makes that probe's deadline stale before it fires."""
    answered = Target(live=1)
    waiting = [Target(live=1) for _ in range(50)]
    calls: list[int] = []

    def before() -> None:
        calls.append(len(deadlines))
        answered.live = 2  # the drain handed on its answer

    deadlines = Deadlines(asyncio.get_running_loop(), before=before)
    due = time.perf_counter_ns() + 10 * MS
    for target in (answered, *waiting):
        deadlines.add(due, target, 1)
    time.sleep(0.03)  # noqa: ASYNC251 - the loop is behind: all are due at its next turn
    await asyncio.sleep(0.02)
    assert calls == [51]  # once, before any of the 51 fired
    assert answered.fired == []
    assert all(len(t.fired) == 1 for t in waiting)
    await asyncio.sleep(0.02)
    assert calls == [51]  # nothing due since: no drain
