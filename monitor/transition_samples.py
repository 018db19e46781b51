"""OPTIONS results kept around each transition: a ring before it, the next results after it.

Pure and in memory (no I/O): the monitor feeds every result and every transition in, and
writes the rows this returns in batches. Per-probe rows are not persisted otherwise.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from monitor.store.samples import ProbeSample
from probes.instants import us_from_ns, utc_from_ns
from probes.result import Outcome

__all__ = [
    "AFTER_CHUNK",
    "AFTER_SIZE",
    "RING_SIZE",
    "ProbeSampleRun",
    "RawResult",
    "TransitionSampler",
    "sample_rows",
]

# Results kept before and after a transition: at the default 30 s interval, 15 minutes each
# side — enough to show the run-up (down_after failures) and the recovery.
RING_SIZE: Final = 30
AFTER_SIZE: Final = 30
# The results after a transition go to the store this many at a time, so a stop or a crash
# leaves fewer than this of each open capture unwritten: a whole AFTER_SIZE held back
# left 95,712 rows of a 20,000-trunk outage unwritten when its stop's 15 s were up.
AFTER_CHUNK: Final = 10
_NS_PER_S: Final = 1_000_000_000

# (sent_wall_ns, outcome, rtt_ns, status): what the hot path appends, nothing more.
RawResult = tuple[int, str, int | None, int | None]
# A run of results as the ring keeps them: sent_wall_ns, rtt_ns (-1: none), outcome (index
# into _OUTCOMES), SIP status (0: none).
Columns = tuple["array[int]", "array[int]", "array[int]", "array[int]"]


_OUTCOMES: Final = tuple(o.value for o in Outcome)
# A result's outcome and SIP status share one 16-bit code: the outcome's index above the
# status's 10 bits (a status is three digits).
_STATUS_BITS: Final = 10
_STATUS_MASK: Final = (1 << _STATUS_BITS) - 1
_OUTCOME_CODE: Final = {value: i << _STATUS_BITS for i, value in enumerate(_OUTCOMES)}
# An RTT is kept in 32 bits of ns (up to 4.29 s); these two values are not RTTs: none, and
# one too wide for 32 bits (or a status for 10), which the ring keeps exactly beside.
_RTT_NONE: Final = 0xFFFF_FFFF
_RTT_WIDE: Final = 0xFFFF_FFFE
# A sent instant is kept in microseconds (what utc_from_ns and the store keep of it), 32 bits
# past its trunk's own base: a window of 71 minutes, re-centred on the newest result when one
# falls outside it. One that still does not fit (a long interval, the wall clock stepped)
# is kept exactly beside the arrays, marked by this offset.
_SENT_FAR: Final = 0xFFFF_FFFF
_SENT_HALF: Final = 1 << 31
# Trunks' rings added to the arrays at a time (zeros; a ring is used once its trunk reports).
_GROW_SLOTS: Final = 1024


class _Rings:
    """The last `size` results of every trunk, struct-of-arrays: one array per field, a
    trunk's ring at slot * size.

    A ring per trunk as an object with its own array (~1.1 KB each, 100,000 of them tracked
    by the cyclic GC) cost ~110 MB and a longer pause in every full collection at 100,000
    trunks; these arrays hold no objects and take 10 bytes a result (sent 4, RTT 4, outcome
    and status 2) and 8 a trunk (the base of its sent instants). Objects per result (a deque
    of tuples) had cost the probe loop measurable lateness at 10,000 probes/s.
    """

    __slots__ = (
        "base",
        "code",
        "count",
        "far",
        "pos",
        "rtt",
        "sent",
        "size",
        "slots",
        "vacant",
        "wide",
    )

    def __init__(self, size: int) -> None:
        if not 0 < size < 2**16:
            raise ValueError("ring size must be 1..65535")
        self.size = size
        self.slots: dict[str, int] = {}  # trunk -> slot (str keys, int values: untracked)
        self.vacant: list[int] = []  # slots of forgotten trunks, reused
        self.sent = array("I")  # sent instant in µs past base[slot], or _SENT_FAR
        self.far: dict[int, int] = {}  # index -> sent instant in µs, for _SENT_FAR
        self.base = array("q")  # per slot: µs
        self.rtt = array("I")  # rtt_ns, or _RTT_NONE / _RTT_WIDE
        self.code = array("H")  # outcome index << _STATUS_BITS | SIP status (0: none)
        self.wide: dict[int, tuple[int | None, int]] = {}  # index -> (rtt_ns, status)
        self.pos = array("H")  # per slot: where the next result goes
        self.count = array("H")  # per slot: results held

    def slot(self, trunk: str) -> int:
        slot = self.slots.get(trunk)
        if slot is not None:
            return slot
        if not self.vacant:
            first = len(self.pos)
            zeros = _GROW_SLOTS * self.size
            self.sent.frombytes(bytes(4 * zeros))
            self.base.frombytes(bytes(8 * _GROW_SLOTS))
            self.rtt.frombytes(bytes(4 * zeros))
            self.code.frombytes(bytes(2 * zeros))
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
        if self.wide:
            self.wide.pop(i, None)
        if self.far:
            self.far.pop(i, None)
        sent_us = us_from_ns(sent_ns)
        offset = sent_us - self.base[slot]
        if not 0 <= offset < _SENT_FAR:
            offset = self._rebase(slot, sent_us)
        self.sent[i] = offset
        status = status or 0
        if (rtt_ns is None or 0 <= rtt_ns < _RTT_WIDE) and 0 <= status <= _STATUS_MASK:
            self.rtt[i] = _RTT_NONE if rtt_ns is None else rtt_ns
            self.code[i] = _OUTCOME_CODE[outcome] | status
        else:  # kept exactly beside the arrays: an RTT past 4.29 s, a status past 10 bits
            self.rtt[i] = _RTT_WIDE
            self.code[i] = _OUTCOME_CODE[outcome]
            self.wide[i] = (rtt_ns, status)
        self.pos[slot] = (pos + 1) % self.size
        if self.count[slot] < self.size:
            self.count[slot] += 1

    def _rebase(self, slot: int, sent_us: int) -> int:
        """Centre the slot's window on `sent_us`; the held instants are written again
        against it (those outside it go to `far`). Returns `sent_us`'s offset."""
        size, first, old = self.size, slot * self.size, self.base[slot]
        base = self.base[slot] = sent_us - _SENT_HALF
        # The held results but the oldest of a full ring: append overwrites that one next.
        pos, held = self.pos[slot], min(self.count[slot], size - 1)
        for back in range(1, held + 1):
            i = first + (pos - back) % size
            offset = self.sent[i]
            instant = self.far.pop(i) if offset == _SENT_FAR else old + offset
            if 0 <= instant - base < _SENT_FAR:
                self.sent[i] = instant - base
            else:
                self.sent[i] = _SENT_FAR
                self.far[i] = instant
        return _SENT_HALF

    def held(self, trunk: str) -> int:
        """Results the trunk's ring holds (0 for a trunk that never reported)."""
        slot = self.slots.get(trunk)
        return 0 if slot is None else self.count[slot]

    def newest(self, trunk: str, n: int) -> Columns:
        """The trunk's newest `n` results (n <= held), oldest first, as columns."""
        slot = self.slots.get(trunk)
        columns: Columns = (array("q"), array("q"), array("B"), array("H"))
        if slot is None or n <= 0:
            return columns
        sent, rtt, outcome, status = columns
        size, sent_base = self.size, self.base[slot]
        base, start = slot * size, (self.pos[slot] - n) % size
        # The ring wraps at most once: one or two spans.
        spans = [(start, min(start + n, size))]
        if start + n > size:
            spans.append((0, start + n - size))
        for lo, hi in spans:
            for i in range(base + lo, base + hi):
                offset = self.sent[i]
                sent.append(1000 * (self.far[i] if offset == _SENT_FAR else sent_base + offset))
                rtt_ns, code = self.rtt[i], self.code[i]
                outcome.append(code >> _STATUS_BITS)
                if rtt_ns == _RTT_WIDE:
                    wide_rtt, wide_status = self.wide[i]
                    rtt.append(-1 if wide_rtt is None else wide_rtt)
                    status.append(wide_status)
                else:
                    rtt.append(-1 if rtt_ns == _RTT_NONE else rtt_ns)
                    status.append(code & _STATUS_MASK)
        return columns

    def forget(self, trunk: str) -> None:
        slot = self.slots.pop(trunk, None)
        if slot is not None:
            self.pos[slot] = self.count[slot] = 0
            self.vacant.append(slot)
            for kept in (self.wide, self.far):
                if kept:
                    for i in range(slot * self.size, (slot + 1) * self.size):
                        kept.pop(i, None)


class ProbeSampleRun:
    """Sample rows of one trunk and transition as the ring's columns: what waits for the
    store. ~39 bytes a row (its own objects included) against ~185 as `ProbeSample`
    objects, so a carrier-wide outage's evidence waits in memory while the store catches up."""

    __slots__ = (
        "agent",
        "outcome",
        "rtt",
        "sent",
        "status",
        "transition_at",
        "transition_kind",
        "trunk",
    )

    def __init__(
        self,
        agent: str,
        trunk: str,
        transition_kind: str,
        transition_at: datetime,
        columns: Columns,
    ) -> None:
        self.agent = agent
        self.trunk = trunk
        self.transition_kind = transition_kind
        self.transition_at = transition_at
        self.sent, self.rtt, self.outcome, self.status = columns

    def __len__(self) -> int:
        return len(self.sent)

    def split(self, n: int) -> tuple[ProbeSampleRun, ProbeSampleRun]:
        """The first `n` rows and the rest, as two runs."""
        tag = (self.agent, self.trunk, self.transition_kind, self.transition_at)
        sent, rtt, outcome, status = self.sent, self.rtt, self.outcome, self.status
        return (
            ProbeSampleRun(*tag, (sent[:n], rtt[:n], outcome[:n], status[:n])),
            ProbeSampleRun(*tag, (sent[n:], rtt[n:], outcome[n:], status[n:])),
        )

    def rows(self) -> list[ProbeSample]:
        """The rows to insert, oldest first."""
        tag = (self.agent, self.trunk, self.transition_kind, self.transition_at)
        return [
            ProbeSample(
                *tag,
                utc_from_ns(sent_ns),
                _OUTCOMES[outcome],
                None if rtt_ns < 0 else rtt_ns / _NS_PER_S,
                status or None,
            )
            for sent_ns, rtt_ns, outcome, status in zip(
                self.sent, self.rtt, self.outcome, self.status, strict=True
            )
        ]


def sample_rows(runs: Iterable[ProbeSampleRun]) -> list[ProbeSample]:
    """Every row of `runs`, in order."""
    return [row for run in runs for row in run.rows()]


@dataclass(slots=True)
class _Capture:
    kind: str
    at: datetime
    seen: int = 0  # results since the transition
    handed: int = 0  # of those, handed out as rows; the rest are the ring's newest


class TransitionSampler:
    """Feed `record` every result, `transition` every state change; write what they return."""

    def __init__(
        self,
        agent: str,
        *,
        ring: int = RING_SIZE,
        after: int = AFTER_SIZE,
        chunk: int = AFTER_CHUNK,
    ) -> None:
        # The results after a transition are read from the ring, so it must hold what a
        # capture keeps (copies per open capture cost ~120 bytes a result in an outage).
        if not 0 < after <= ring or not 0 < chunk:
            raise ValueError("after must be 1..ring, chunk at least 1")
        self.agent = agent
        self._after_size = after
        self._chunk = chunk
        self._rings = _Rings(ring)
        self._open: dict[str, list[_Capture]] = {}

    def record(self, trunk: str, raw: RawResult) -> list[ProbeSampleRun] | None:
        """Append to the ring; the rows of captures this result completes or fills a chunk
        of, if any."""
        self._rings.append(trunk, raw)
        captures = self._open.get(trunk)
        if not captures:
            return None
        done: list[ProbeSampleRun] = []
        for capture in captures:
            capture.seen += 1
            if capture.seen - capture.handed >= self._chunk or capture.seen >= self._after_size:
                done.append(self._unhanded(trunk, capture))
        if done:
            still = [c for c in captures if c.seen < self._after_size]
            if still:
                self._open[trunk] = still
            else:
                del self._open[trunk]
        return done or None

    def transition(self, trunk: str, kind: str, at: datetime) -> list[ProbeSampleRun]:
        """The ring's results (those up to the transition), now; the next ones follow later."""
        capture = _Capture(kind, at)
        self._open.setdefault(trunk, []).append(capture)
        run = self._run(trunk, capture, self._rings.held(trunk))
        return [run] if len(run) else []

    def forget(self, trunk: str) -> list[ProbeSampleRun]:
        """A trunk no longer watched (a reload): the results gathered after its open
        transitions, and nothing kept for it any more."""
        runs = self._gathered(trunk, self._open.pop(trunk, []))
        self._rings.forget(trunk)
        return runs

    def drain(self) -> list[ProbeSampleRun]:
        """At shutdown: the results after each open transition gathered so far."""
        runs = [run for trunk, cs in self._open.items() for run in self._gathered(trunk, cs)]
        self._open.clear()
        return runs

    def _gathered(self, trunk: str, captures: list[_Capture]) -> list[ProbeSampleRun]:
        return [self._unhanded(trunk, c) for c in captures if c.seen > c.handed]

    def _unhanded(self, trunk: str, capture: _Capture) -> ProbeSampleRun:
        """The capture's results not handed out yet (the ring's newest), now handed."""
        run = self._run(trunk, capture, capture.seen - capture.handed)
        capture.handed = capture.seen
        return run

    def _run(self, trunk: str, capture: _Capture, newest: int) -> ProbeSampleRun:
        return ProbeSampleRun(
            self.agent, trunk, capture.kind, capture.at, self._rings.newest(trunk, newest)
        )
