"""The exporter's per-trunk figures as columns (monitor.metrics.stats.StatsTable)."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from monitor.metrics.stats import RTT_WIDTH, StatsTable
from probes.result import Outcome, ProbeResult


def result(trunk: str, outcome: Outcome, rtt_ms: int | None, status: int | None) -> ProbeResult:
    rtt_ns = None if rtt_ms is None else rtt_ms * 1_000_000
    return ProbeResult(
        trunk, "options", outcome, 0, rtt_ns=rtt_ns, duration_ns=rtt_ns, status_code=status
    )


def test_a_row_counts_what_its_results_say() -> None:
    table = StatsTable(["a", "b"])
    for r in (
        result("a", Outcome.OK, 4, 200),
        result("a", Outcome.OK, 70, 200),
        result("a", Outcome.SIP_ERROR, 30, 503),  # answered: its RTT counts
        result("a", Outcome.TIMEOUT, None, None),
        result("a", Outcome.PROBE_CRASHED, None, None),  # counted, nothing else changes
        result("gone", Outcome.OK, 1, 200),  # a trunk no longer watched: ignored
    ):
        table.record(r)
    assert table.outcome_counts("a") == {
        Outcome.OK: 2,
        Outcome.TIMEOUT: 1,
        Outcome.SIP_ERROR: 1,
        Outcome.PROBE_CRASHED: 1,
    }
    # 4 ms in the first bucket (≤ 5 ms), 30 ms on the 0.03 bound, 70 ms in ≤ 0.1.
    assert table.rtt_bucket_counts("a") == [1, 0, 1, 0, 1, 0, 0, 0, 0, 0]
    assert table.rtt_sum[0] == pytest.approx(0.104)
    row = table.rows["a"]
    assert (table.last_success[row], table.last_status[row]) == (0, 0)  # the timeout
    assert table.last_duration_s[row] == pytest.approx(0.03)  # the timeout had no duration
    # "b" has had nothing: the outcome columns made since hold zeros for it.
    assert table.outcome_counts("b") == {}
    assert table.rtt_bucket_counts("b") == [0] * RTT_WIDTH
    assert table.last_success[table.rows["b"]] == -1
    assert len(table) == 2 and "gone" not in table
    table.extend(["a", "c", "c"])  # known and repeated names get no second row
    assert table.trunk == ["a", "b", "c"] and table.rows == {"a": 0, "b": 1, "c": 2}
    assert all(len(c) == 3 for c in table.outcomes.values())


def test_compact_drops_removed_rows_and_keeps_the_others_figures() -> None:
    rng = random.Random(7)
    names = [f"t{i}" for i in range(50)]
    table = StatsTable(names)
    for _ in range(400):
        outcome = rng.choice([Outcome.OK, Outcome.OK, Outcome.TIMEOUT, Outcome.REFUSED])
        rtt = rng.randint(1, 3000) if outcome is Outcome.OK else None
        table.record(result(rng.choice(names), outcome, rtt, 200 if rtt else None))
    removed = set(names[::3])
    kept = [n for n in names if n not in removed]
    before = {
        n: (
            table.outcome_counts(n),
            table.rtt_bucket_counts(n),
            table.rtt_sum[table.rows[n]],
            table.last_success[table.rows[n]],
        )
        for n in kept
    }
    old = table.columns()
    for name in removed:
        table.remove(name)
    assert table.columns().trunk == names  # rows stay (exported) until the compaction
    table.compact()
    assert table.trunk == kept and list(table.rows) == kept
    assert table.rows == {n: i for i, n in enumerate(kept)}
    for n in kept:
        row = table.rows[n]
        after = (
            table.outcome_counts(n),
            table.rtt_bucket_counts(n),
            table.rtt_sum[row],
            table.last_success[row],
        )
        assert after == before[n]
    assert all(len(c) == len(kept) for c in table.outcomes.values())
    assert len(table.rtt_counts) == len(kept) * RTT_WIDTH
    # The columns a snapshot took before are not those written from now on.
    copy = old.rtt_counts.tolist()
    table.record(result(kept[0], Outcome.OK, 2, 200))
    table.add("new")
    assert old.rtt_counts.tolist() == copy and len(old.trunk) == len(names)
    assert table.rows["new"] == len(kept) and table.outcome_counts("new") == {}


def test_a_row_costs_a_quarter_of_the_objects_it_replaced() -> None:
    # The object per trunk (dataclass, histogram, bucket list, outcome dict, and an int
    # object per count past 256) held ~630 bytes a trunk after a few hundred results. A
    # row is ~140 bytes, however large its counts grow.
    n = 5_000
    names = [f"trunk-{i:05d}" for i in range(n)]
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        table = StatsTable(names)
        for name in names:
            table.record(result(name, Outcome.OK, 20, 200))
            table.record(result(name, Outcome.TIMEOUT, None, None))
        per_trunk = (tracemalloc.get_traced_memory()[0] - start) / n
    finally:
        tracemalloc.stop()
    assert table.outcome_counts(names[0]) == {Outcome.OK: 1, Outcome.TIMEOUT: 1}
    assert per_trunk < 160, per_trunk  # ~139 with 32-bit counts (~187 with 64-bit)


def test_a_count_past_32_bits_widens_its_column_and_loses_nothing() -> None:
    table = StatsTable(["a", "b"])
    table.record(result("b", Outcome.OK, 2, 200))
    assert table.outcome_column(Outcome.OK).itemsize == 4 and table.rtt_counts.itemsize == 4
    narrow = table.columns()
    top = 2**32 - 1
    table.outcome_column(Outcome.OK)[0] = top
    table.rtt_counts[0] = top  # a's first bucket (≤ 5 ms)
    table.record(result("a", Outcome.OK, 2, 200))
    assert table.outcome_counts("a") == {Outcome.OK: top + 1}
    assert table.rtt_bucket_counts("a")[0] == top + 1
    assert table.outcome_counts("b") == {Outcome.OK: 1} and table.rtt_bucket_counts("b")[0] == 1
    assert table.outcome_column(Outcome.OK).itemsize == 8 and table.rtt_counts.itemsize == 8
    # A snapshot's narrow columns are left as they were; the wide ones go on counting.
    assert narrow.outcomes[Outcome.OK][0] == top and narrow.rtt_counts[0] == top
    table.record(result("a", Outcome.OK, 2, 200))
    assert table.outcome_counts("a") == {Outcome.OK: top + 2}
    # Other outcomes stay narrow; a compaction keeps each column's width.
    table.record(result("a", Outcome.TIMEOUT, None, None))
    table.remove("b")
    table.compact()
    assert table.outcome_column(Outcome.TIMEOUT).itemsize == 4
    assert table.outcome_counts("a") == {Outcome.OK: top + 2, Outcome.TIMEOUT: 1}
    assert table.rtt_counts.itemsize == 8 and table.rtt_bucket_counts("a")[0] == top + 2
