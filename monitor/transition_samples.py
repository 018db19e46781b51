"""OPTIONS results kept around each transition: a ring before it, the next results after it.

Pure and in memory (no I/O): the monitor feeds every result and every transition in, and
writes the rows this returns in batches. Per-probe rows are not persisted otherwise.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from monitor.store.samples import ProbeSample
from probes.clock import utc_from_ns

__all__ = ["AFTER_SIZE", "RING_SIZE", "RawResult", "TransitionSampler"]

# Results kept before and after a transition: at the default 30 s interval, 15 minutes each
# side — enough to show the run-up (down_after failures) and the recovery.
RING_SIZE: Final = 30
AFTER_SIZE: Final = 30
_NS_PER_S: Final = 1_000_000_000

# (sent_wall_ns, outcome, rtt_ns, status): what the hot path appends, nothing more.
RawResult = tuple[int, str, int | None, int | None]


@dataclass(slots=True)
class _Capture:
    kind: str
    at: datetime
    after: list[RawResult] = field(default_factory=list)


class TransitionSampler:
    """Feed `record` every result, `transition` every state change; write what they return."""

    def __init__(self, agent: str, *, ring: int = RING_SIZE, after: int = AFTER_SIZE) -> None:
        self.agent = agent
        self._ring_size = ring
        self._after_size = after
        self._rings: dict[str, deque[RawResult]] = {}
        self._open: dict[str, list[_Capture]] = {}

    def record(self, trunk: str, raw: RawResult) -> list[ProbeSample] | None:
        """Append to the ring; the rows of captures this result completes, if any."""
        ring = self._rings.get(trunk)
        if ring is None:
            ring = self._rings[trunk] = deque(maxlen=self._ring_size)
        ring.append(raw)
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
        return self._rows(trunk, _Capture(kind, at), list(self._rings.get(trunk, ())))

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
