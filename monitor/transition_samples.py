"""OPTIONS results kept around each transition: a ring before it, the next results after it.

Pure and in memory (no I/O): the monitor feeds every result and every transition in, and
writes the rows this returns in batches. Per-probe rows are not persisted otherwise.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from monitor.store.samples import ProbeSample
from probes.instants import utc_from_ns
from probes.result import Outcome

__all__ = ["AFTER_SIZE", "RING_SIZE", "RawResult", "TransitionSampler"]

# Results kept before and after a transition: at the default 30 s interval, 15 minutes each
# side — enough to show the run-up (down_after failures) and the recovery.
RING_SIZE: Final = 30
AFTER_SIZE: Final = 30
_NS_PER_S: Final = 1_000_000_000

# (sent_wall_ns, outcome, rtt_ns, status): what the hot path appends, nothing more.
RawResult = tuple[int, str, int | None, int | None]


_OUTCOMES: Final = tuple(o.value for o in Outcome)
_OUTCOME_INDEX: Final = {value: i for i, value in enumerate(_OUTCOMES)}
# Trunks' rings added to the arrays at a time (zeros; a ring is used once its trunk reports).
_GROW_SLOTS: Final = 1024


class _Rings:
    """The last `size` results of every trunk, struct-of-arrays: one array per field, a
    trunk's ring at slot * size.

    A ring per trunk as an object with its own array (~1.1 KB each, 100,000 of them tracked
    by the cyclic GC) cost ~110 MB and a longer pause in every full collection at 100,000
    trunks; these arrays hold no objects and take 19 bytes a result. Objects per result (a
    deque of tuples) had cost the probe loop measurable lateness at 10,000 probes/s.
    """

    __slots__ = ("count", "outcome", "pos", "rtt", "sent", "size", "slots", "status", "vacant")

    def __init__(self, size: int) -> None:
        if not 0 < size < 2**16:
            raise ValueError("ring size must be 1..65535")
        self.size = size
        self.slots: dict[str, int] = {}  # trunk -> slot (str keys, int values: untracked)
        self.vacant: list[int] = []  # slots of forgotten trunks, reused
        self.sent = array("q")  # sent_wall_ns
        self.rtt = array("q")  # rtt_ns, -1: none
        self.outcome = array("B")  # index into _OUTCOMES
        self.status = array("H")  # SIP status, 0: none
        self.pos = array("H")  # per slot: where the next result goes
        self.count = array("H")  # per slot: results held

    def slot(self, trunk: str) -> int:
        slot = self.slots.get(trunk)
        if slot is not None:
            return slot
        if not self.vacant:
            first = len(self.pos)
            zeros = _GROW_SLOTS * self.size
            for column in (self.sent, self.rtt):
                column.frombytes(bytes(8 * zeros))
            self.outcome.frombytes(bytes(zeros))
            self.status.frombytes(bytes(2 * zeros))
            self.pos.frombytes(bytes(2 * _GROW_SLOTS))
            self.count.frombytes(bytes(2 * _GROW_SLOTS))
            self.vacant.extend(range(first + _GROW_SLOTS - 1, first - 1, -1))
        slot = self.slots[trunk] = self.vacant.pop()
        return slot

    def append(self, trunk: str, raw: RawResult) -> None:
        slot = self.slot(trunk)
        sent_ns, outcome, rtt_ns, status = raw
        pos = self.pos[slot]
        i = slot * self.size + pos
        self.sent[i] = sent_ns
        self.outcome[i] = _OUTCOME_INDEX[outcome]
        self.rtt[i] = -1 if rtt_ns is None else rtt_ns
        self.status[i] = status or 0
        self.pos[slot] = (pos + 1) % self.size
        if self.count[slot] < self.size:
            self.count[slot] += 1

    def items(self, trunk: str) -> list[RawResult]:
        """Oldest first; none for a trunk that never reported."""
        slot = self.slots.get(trunk)
        if slot is None:
            return []
        size, count = self.size, self.count[slot]
        base, start = slot * size, (self.pos[slot] - count) % size
        out: list[RawResult] = []
        for k in range(count):
            i = base + (start + k) % size
            rtt_ns, status = self.rtt[i], self.status[i]
            out.append(
                (
                    self.sent[i],
                    _OUTCOMES[self.outcome[i]],
                    None if rtt_ns < 0 else rtt_ns,
                    status or None,
                )
            )
        return out

    def forget(self, trunk: str) -> None:
        slot = self.slots.pop(trunk, None)
        if slot is not None:
            self.pos[slot] = self.count[slot] = 0
            self.vacant.append(slot)


@dataclass(slots=True)
class _Capture:
    kind: str
    at: datetime
    after: list[RawResult] = field(default_factory=list)


class TransitionSampler:
    """Feed `record` every result, `transition` every state change; write what they return."""

    def __init__(self, agent: str, *, ring: int = RING_SIZE, after: int = AFTER_SIZE) -> None:
        self.agent = agent
        self._after_size = after
        self._rings = _Rings(ring)
        self._open: dict[str, list[_Capture]] = {}

    def record(self, trunk: str, raw: RawResult) -> list[ProbeSample] | None:
        """Append to the ring; the rows of captures this result completes, if any."""
        self._rings.append(trunk, raw)
        captures = self._open.get(trunk)
        if not captures:
            return None
        done: list[ProbeSample] = []
        for capture in captures:
            capture.after.append(raw)
            if len(capture.after) >= self._after_size:
                done += self._rows(trunk, capture, capture.after)
        still = [c for c in captures if len(c.after) < self._after_size]
        if still:
            self._open[trunk] = still
        else:
            del self._open[trunk]
        return done or None

    def transition(self, trunk: str, kind: str, at: datetime) -> list[ProbeSample]:
        """The ring's results (those up to the transition), now; the next ones follow later."""
        self._open.setdefault(trunk, []).append(_Capture(kind, at))
        return self._rows(trunk, _Capture(kind, at), self._rings.items(trunk))

    def forget(self, trunk: str) -> list[ProbeSample]:
        """A trunk no longer watched (a reload): the results gathered after its open
        transitions, and nothing kept for it any more."""
        self._rings.forget(trunk)
        captures = self._open.pop(trunk, [])
        return [row for c in captures for row in self._rows(trunk, c, c.after)]

    def drain(self) -> list[ProbeSample]:
        """At shutdown: the results after each open transition gathered so far."""
        rows: list[ProbeSample] = []
        for trunk, captures in self._open.items():
            for capture in captures:
                rows += self._rows(trunk, capture, capture.after)
        self._open.clear()
        return rows

    def _rows(self, trunk: str, capture: _Capture, raws: list[RawResult]) -> list[ProbeSample]:
        return [
            ProbeSample(
                agent=self.agent,
                trunk=trunk,
                transition_kind=capture.kind,
                transition_at=capture.at,
                at=utc_from_ns(sent_ns),
                outcome=outcome,
                rtt_s=None if rtt_ns is None else rtt_ns / _NS_PER_S,
                status=status,
            )
            for sent_ns, outcome, rtt_ns, status in raws
        ]
