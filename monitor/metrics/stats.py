"""Per-probe running figures, updated on each result and read by the exporter at scrape time.

Kept as columns (one array per figure, one row per trunk) rather than an object per trunk:
at 100,000 trunks the objects (a dataclass, its histogram, the bucket list, an outcome
dict and the int objects of every count above 256) held ~630 bytes a trunk and four
containers for the garbage collector to walk; a row holds ~140 bytes and none.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Final

from probes.result import Outcome, ProbeResult

# OPTIONS RTT buckets (seconds) placed at the quality thresholds (DESIGN.md §3:
# round-trip < 60 ms edge-to-edge, < 100 ms client-to-edge) plus a tail for slow SBCs.
RTT_BUCKETS = (0.005, 0.01, 0.03, 0.06, 0.1, 0.25, 0.5, 1.0, 2.0)
# Counts per row in `rtt_counts`: one per bucket bound plus the +Inf one (not cumulative).
RTT_WIDTH = len(RTT_BUCKETS) + 1
# Counts start as 32-bit (half the memory: ~4 MB at 100,000 trunks) and a column becomes
# 64-bit the first time one of its counts would pass 2**32 - 1 (years of 1 s probes).
NARROW: Final = "I"
WIDE: Final = "Q"


@dataclass(frozen=True, slots=True)
class StatsColumns:
    """The table's column objects at one instant: what a sliced snapshot reads.

    `StatsTable.compact` replaces the columns with new ones and `add` only appends, so
    the first `rows` rows of these stay one consistent table while the snapshot runs.
    """

    rows: int
    trunk: list[str]
    probe: list[str]
    last_success: array[int]
    last_status: array[int]
    last_duration_s: array[float]
    rtt_sum: array[float]
    rtt_counts: array[int]
    outcomes: dict[Outcome, array[int]]


class StatsTable:
    """What the exporter shows for each (trunk, probe) pair, one row per trunk.

    Counts are unsigned, 32-bit until one would overflow (then that column is 64-bit). An
    outcome has a column only once some trunk has had it (most tables see two or three of
    the 23 outcomes).
    """

    __slots__ = (
        "_dead",
        "last_duration_s",
        "last_status",
        "last_success",
        "outcomes",
        "probe",
        "rows",
        "rtt_counts",
        "rtt_sum",
        "trunk",
    )

    def __init__(self, trunks: Iterable[str] = (), probe: str = "options") -> None:
        self.rows: dict[str, int] = {}
        self.trunk: list[str] = []
        self.probe: list[str] = []
        self.last_success = array("b")  # -1 before the first result
        self.last_status = array("i")  # 0 when the last probe got no SIP answer
        self.last_duration_s = array("d")
        self.rtt_sum = array("d")
        self.rtt_counts = array(NARROW)  # RTT_WIDTH per row
        self.outcomes: dict[Outcome, array[int]] = {}
        self._dead: list[int] = []
        self.extend(trunks, probe)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, trunk: object) -> bool:
        return trunk in self.rows

    def add(self, trunk: str, probe: str = "options") -> None:
        self.extend((trunk,), probe)

    def extend(self, trunks: Iterable[str], probe: str = "options") -> None:
        """A row for each of `trunks` not in the table yet, before its first result."""
        names = [t for t in dict.fromkeys(trunks) if t not in self.rows]
        n, first = len(names), len(self.trunk)
        self.rows.update(zip(names, range(first, first + n), strict=True))
        self.trunk += names
        self.probe += repeat(probe, n)
        self.last_success.extend(repeat(-1, n))
        self.last_status.extend(repeat(0, n))
        self.last_duration_s.extend(repeat(0.0, n))
        self.rtt_sum.extend(repeat(0.0, n))
        self.rtt_counts.extend(repeat(0, n * RTT_WIDTH))
        for column in self.outcomes.values():
            column.extend(repeat(0, n))

    def remove(self, trunk: str) -> None:
        """Forget `trunk`; its row is exported until `compact` drops it (a reload's end)."""
        row = self.rows.pop(trunk, None)
        if row is not None:
            self._dead.append(row)

    def compact(self) -> None:
        """Drop the rows of removed trunks: new columns, in the same order (one pass)."""
        if not self._dead:
            return
        keep = [True] * len(self.trunk)
        for row in self._dead:
            keep[row] = False
        self._dead = []
        wide = [k for k in keep for _ in range(RTT_WIDTH)]
        self.trunk = list(compress(self.trunk, keep))
        self.probe = list(compress(self.probe, keep))
        self.rows = dict(zip(self.trunk, range(len(self.trunk)), strict=True))
        for name in ("last_success", "last_status", "last_duration_s", "rtt_sum"):
            old = getattr(self, name)
            setattr(self, name, array(old.typecode, compress(old, keep)))
        self.rtt_counts = array(self.rtt_counts.typecode, compress(self.rtt_counts, wide))
        self.outcomes = {o: array(c.typecode, compress(c, keep)) for o, c in self.outcomes.items()}

    def columns(self) -> StatsColumns:
        return StatsColumns(
            len(self.trunk),
            self.trunk,
            self.probe,
            self.last_success,
            self.last_status,
            self.last_duration_s,
            self.rtt_sum,
            self.rtt_counts,
            dict(self.outcomes),
        )

    def outcome_column(self, outcome: Outcome) -> array[int]:
        """The count of `outcome` per row (made, all zero, the first time it is asked for)."""
        column = self.outcomes.get(outcome)
        if column is None:
            column = self.outcomes[outcome] = array(NARROW, repeat(0, len(self.trunk)))
        return column

    def _widen_outcome(self, outcome: Outcome) -> array[int]:
        # A new object: a snapshot holding the narrow one reads it until its end.
        column = self.outcomes[outcome] = array(WIDE, self.outcomes[outcome])
        return column

    def _widen_rtt(self) -> array[int]:
        self.rtt_counts = array(WIDE, self.rtt_counts)
        return self.rtt_counts

    def record(self, result: ProbeResult) -> None:
        """Count `result` in its trunk's row (nothing for a trunk no longer watched)."""
        row = self.rows.get(result.trunk)
        if row is None:
            return
        outcome = result.outcome
        column = self.outcomes.get(outcome)
        if column is None:
            column = self.outcome_column(outcome)
        try:
            column[row] += 1
        except OverflowError:
            self._widen_outcome(outcome)[row] += 1
        if outcome is Outcome.PROBE_CRASHED:
            return  # the monitor's own fault says nothing about the trunk
        self.last_success[row] = 1 if outcome is Outcome.OK else 0
        self.last_status[row] = result.status_code or 0
        if result.duration_ns is not None:
            self.last_duration_s[row] = result.duration_ns / 1e9
        if result.rtt_ns is not None and result.status_code is not None:
            rtt = result.rtt_ns / 1e9
            bucket = row * RTT_WIDTH + bisect_left(RTT_BUCKETS, rtt)
            try:
                self.rtt_counts[bucket] += 1
            except OverflowError:
                self._widen_rtt()[bucket] += 1
            self.rtt_sum[row] += rtt

    # ---- one trunk's figures (tests, benchmarks) ------------------------------------------

    def outcome_counts(self, trunk: str) -> dict[Outcome, int]:
        """The trunk's count of each outcome it has had, in Outcome's order."""
        row = self.rows[trunk]
        return {o: c[row] for o in Outcome if (c := self.outcomes.get(o)) is not None and c[row]}

    def rtt_bucket_counts(self, trunk: str) -> list[int]:
        """The trunk's RTT count per bucket (not cumulative; the last one is +Inf's)."""
        start = self.rows[trunk] * RTT_WIDTH
        return self.rtt_counts[start : start + RTT_WIDTH].tolist()
