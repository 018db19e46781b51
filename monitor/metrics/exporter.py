"""Prometheus exposition of trunkwatch's figures, written directly from one snapshot.

The hot path updates plain values (the stats table's arrays, health slots objects,
scheduler counters); nothing is updated through prometheus_client per probe. At scrape
time the event loop copies those plain values (`Exporter.snapshot_sliced`: a thousand
trunks per loop step), then the
exposition is written from the copy a piece at a time (`Exporter.render`; the server
yields to the loop between steps of a few pieces), with every trunk's label texts
prepared once and reused. prometheus_client's metric families cost ~10 µs per line (a
Sample namedtuple and a label dict per line, each dict sorted again at render): with
10,000 trunks that was 230,000 lines and 2–3 s with the event loop frozen. Written
directly with an f-string per line it was ~0.75 µs a line (100,000 trunks: 2.4 million
lines, 1.4–1.8 s of loop time); written a column at a time (monitor.metrics.columns: C-level
passes, no Python code per line) it is ~0.2 µs a line (0.5 s).

Only the process_* and python_* families still come from prometheus_client's collectors
(a handful of lines, rendered by prometheus_client and appended).
"""

from __future__ import annotations

import asyncio
import platform
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import add, and_, attrgetter, is_, is_not
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.events import Outage
from monitor.health import TrunkHealth, TrunkState
from monitor.metrics.columns import (
    BOOL_TEXTS,
    PLAIN_INT_LIMIT,
    Part,
    count_texts,
    float_texts,
    rows_text,
)
from monitor.metrics.exposition import (
    EOF_LINE,
    ExpositionFormat,
    Family,
    Kind,
    Section,
    collector_text,
    count_text,
    escape_label_value,
    family,
    histogram_text,
    label_text,
    le_labels,
)
from monitor.metrics.pacing import paced
from monitor.metrics.stats import NARROW, RTT_BUCKETS, RTT_WIDTH, StatsTable
from monitor.scheduler import Scheduler
from probes.options import MalformedCounter
from probes.result import Outcome

# Trunks copied per slice while snapshotting; the loop is handed back between slices when
# a step is over (monitor.metrics.pacing: 1 ms). The probe figures are array slices
# (copied at memory speed); a trunk's health is three attribute reads, ~0.3 µs, so a
# slice is ~0.3 ms. Each trunk is read whole within one slice (buckets, sum, count agree).
SNAPSHOT_SLICE = 1_000
# Lines per piece of output (~0.2 MB; written column-wise in ~0.5 ms here). A piece is
# the smallest hold of the loop a scrape makes: the server hands the loop back after a
# few pieces (monitor.metrics.pacing), not after each. 5,000 lines held it ~7 ms for a
# float gauge, longer than the probe loop's lateness goal (p99 ≤ 5 ms).
PIECE_LINES = 2_000
# A float's text (the shortest repr, ~1.3 µs) costs about as much as FLOAT_LINES lines of
# counts or labels; pieces of float columns hold fewer rows.
FLOAT_LINES = 5

BUILD_INFO = family("build_info", Kind.GAUGE, "trunkwatch version and runtime; always 1.")
TRUNK_INFO = family(
    "trunk_info", Kind.GAUGE, "Configured trunks with their carrier and transport; always 1."
)
PROBE_SUCCESS = family(
    "probe_success", Kind.GAUGE, "1 if the last probe found the trunk alive, 0 if not."
)
PROBE_DURATION = family(
    "probe_duration_seconds",
    Kind.GAUGE,
    "How long the last probe took (DNS, connect and authentication included).",
)
SIP_LAST_STATUS = family(
    "sip_last_status_code",
    Kind.GAUGE,
    "SIP status code of the last answer; 0 when the last probe got none.",
)
PROBE_OUTCOME = family("probe_outcome", Kind.COUNTER, "Probe results by outcome.")
OPTIONS_RTT = family(
    "sip_options_rtt_seconds",
    Kind.HISTOGRAM,
    "Round-trip time of SIP OPTIONS, request sent to final response.",
)
TRUNK_STATE = family(
    "trunk_state", Kind.GAUGE, "1 for the trunk's current state, 0 for the others."
)
OUTAGE_OPEN = family("outage_open", Kind.GAUGE, "1 while the trunk has an open outage.")
OUTAGES_OPENED = family(
    "outages_opened", Kind.COUNTER, "Outages opened by this process since it started."
)
SIP_MALFORMED = family(
    "sip_malformed_packets",
    Kind.COUNTER,
    "Packets received that were not a valid answer to a probe.",
)
STORE_PENDING = family("store_pending_events", Kind.GAUGE, "Journal events waiting to be written.")
STORE_ERRORS = family("store_write_errors", Kind.COUNTER, "Failed journal writes (retried).")
STORE_SAMPLES_DROPPED = family(
    "store_samples_dropped",
    Kind.COUNTER,
    "Sample rows (evidence around transitions) dropped unwritten: the store fell too far behind.",
)
MONITOR_GAPS = family(
    "monitor_gaps", Kind.COUNTER, "Monitoring gaps (unknown time) recorded at start-up."
)
SCHEDULER_LAG = family(
    "scheduler_lag_seconds",
    Kind.HISTOGRAM,
    "Probe send lateness: actual minus planned start time.",
)
SCHEDULER_IN_FLIGHT = family(
    "scheduler_in_flight", Kind.GAUGE, "Probes started and not yet finished."
)
SCHEDULER_MAX_IN_FLIGHT = family(
    "scheduler_max_in_flight",
    Kind.GAUGE,
    "The in-flight cap: a probe due while this many are in flight is skipped.",
)
SCHEDULER_SKIPPED = family(
    "scheduler_skipped_probes",
    Kind.COUNTER,
    "Probes not started because the previous one was still running or the cap was hit.",
)
SCHEDULER_ERRORS = family(
    "scheduler_errors", Kind.COUNTER, "Exceptions raised by probe code (bugs), caught."
)
SCHEDULER_TARGETS = family("scheduler_targets", Kind.GAUGE, "Probes on the schedule.")


_RTT_LE = le_labels(RTT_BUCKETS)

# Attribute readers for the snapshot's C-level map passes.
_get_trunk = attrgetter("trunk")
_get_state = attrgetter("state")
_get_open_outage = attrgetter("open_outage")
# Sorted label names, as prometheus_client writes them: agent < outcome < probe < trunk.
# Every per-trunk line starts with the agent's label (one text per exporter): several
# agents scraped by one Prometheus keep their views apart and the rules aggregate them.
_OUTCOME_LABEL = {o: f'outcome="{escape_label_value(o.value)}",' for o in Outcome}
_T = TypeVar("_T")
# Value texts of a column and the tail each is written with (columns.count_texts, …).
_Texts = Callable[[Sequence[Any]], tuple[list[str], str]]
# (start, end, keep) -> the probe label part and the trunk labels of those rows it keeps.
_Labels = Callable[[int, int, Sequence[Any]], tuple[Part, Sequence[str]]]
# Column tests for map passes: a probe has answered (last_success ≥ 0); it is OPTIONS.
_is_answered = (-1).__lt__
_is_options = "options".__eq__


# ---- what the exporter reads --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrunkInfos:
    """Static, config-derived facts of each trunk (labels come only from config).

    Columns of one row per trunk, not an object per trunk (~64 bytes a trunk less). Tuples:
    never changed, so the exporter keeps them as they are to tell when to remake its texts.
    """

    trunk: tuple[str, ...] = ()
    carrier: tuple[str, ...] = ()
    transport: tuple[str, ...] = ()

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str, str]]) -> TrunkInfos:
        """From (trunk, carrier, transport) rows."""
        return cls(*map(tuple, zip(*rows, strict=True)))

    def __len__(self) -> int:
        return len(self.trunk)

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return zip(self.trunk, self.carrier, self.transport, strict=True)


@dataclass(slots=True)
class ExportSources:
    """Everything the exporter reads; owned by the app, shared by reference."""

    agent: str
    loop_name: str
    trunks: TrunkInfos
    stats: StatsTable
    health: dict[str, TrunkHealth]
    scheduler: Scheduler | None
    malformed: MalformedCounter
    outages_opened: dict[str, int]
    store_pending: Callable[[], int]
    store_errors: Callable[[], int]
    gaps_recorded: Callable[[], int]
    samples_dropped: Callable[[], int]
    # Whole families written by their owners at scrape time (test calls, tickets, SLA:
    # few lines, kept as plain values, written with the same grammar).
    sections: Sequence[Section] = ()


@dataclass(slots=True)
class SchedulerFigures:
    lag_bounds: tuple[float, ...]
    lag_counts: list[int]
    lag_total: float
    in_flight: int
    max_in_flight: int
    skipped: int
    errors: int
    targets: int


@dataclass(slots=True)
class Snapshot:
    """A copy of every changing value one exposition shows (the config's trunk list is shared).

    Kept as columns of plain values (one list or array per attribute), not
    as a tuple or dict per trunk: columns hold no per-trunk objects for the garbage
    collector to track, which measured here halved the snapshot's time in the loop.
    """

    trunks: TrunkInfos
    # One entry per row of the StatsTable, in its order.
    stat_trunk: list[str] = field(default_factory=list)
    stat_probe: list[str] = field(default_factory=list)
    last_success: array[int] = field(default_factory=lambda: array("b"))
    last_status: array[int] = field(default_factory=lambda: array("i"))
    last_duration_s: array[float] = field(default_factory=lambda: array("d"))
    rtt_sum: array[float] = field(default_factory=lambda: array("d"))
    # RTT_WIDTH per row, of the table's type (32- or 64-bit: monitor.metrics.stats).
    rtt_counts: array[int] = field(default_factory=lambda: array(NARROW))
    # The outcomes some trunk has had, in Outcome's order: a count per row.
    outcomes: dict[Outcome, array[int]] = field(default_factory=dict)
    # One entry per TrunkHealth, in the sources' order.
    health_trunk: list[str] = field(default_factory=list)
    health_state: list[TrunkState] = field(default_factory=list)
    health_outage: list[Outage | None] = field(default_factory=list)
    opened: list[int | None] = field(default_factory=list)
    malformed: tuple[int, int] = (0, 0)
    store_pending: int = 0
    store_errors: int = 0
    gaps_recorded: int = 0
    samples_dropped: int = 0
    scheduler: SchedulerFigures | None = None


def runtime_registry() -> CollectorRegistry:
    """prometheus_client's process, platform and GC collectors in a registry of their own."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class Exporter:
    """Snapshots `sources` in the event loop and writes both exposition formats from it.

    `runtime` holds prometheus_client collectors whose families are appended after
    trunkwatch's (normally `runtime_registry()`); None appends nothing.
    """

    def __init__(
        self, sources: ExportSources, *, runtime: Collector | None = None, prepare: bool = True
    ) -> None:
        self.src = sources
        self.runtime = runtime
        self._build_labels = label_text(
            agent=sources.agent,
            loop=sources.loop_name,
            python=platform.python_version(),
            version=__version__,
        )
        # Label texts are prepared once per trunk (here, for the trunks configured now) and
        # reused by every scrape: labels come only from config, which never changes. A line's
        # labels are laid from parts: the trunk's own `trunk="…"} ` (one text per trunk,
        # shared by all its lines) and texts shared by many trunks (probe, carrier and
        # transport), so a trunk holds one label text, not one per family.
        self._agent = f'agent="{escape_label_value(sources.agent)}",'
        # Trunk → its text, while columns are being made (then dropped: ~4 MB at 100,000).
        self._trunk_labels: dict[str, str] | None = None
        self._shared_labels: dict[tuple[tuple[str, str], ...], str] = {}
        self._info_texts = _TextColumn(self._info_label)  # carrier and transport
        self._info_trunks = _TextColumn(self._trunk_label)
        self._probe_texts = _TextColumn(self._probe_label)
        self._stat_trunks = _TextColumn(self._trunk_label)
        self._health_texts = _TextColumn(self._trunk_label)
        if prepare:  # else the owner awaits prepare_sliced() before the first scrape
            for _ in self._prepare_steps(self.snapshot(), step=sys.maxsize):
                pass

    async def prepare_sliced(self) -> None:
        """Make the label texts a slice at a time, handing the loop back to the probes
        (~0.7 s of texts at 100,000 trunks, made while the first probes go out)."""
        snap = await self.snapshot_sliced()
        await paced(self._prepare_steps(snap, step=SNAPSHOT_SLICE))

    # ---- the snapshot (event loop) ------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The whole snapshot in one step (tests, the legacy collector; holds the loop)."""
        snap = self._empty_snapshot()
        for _ in self._snapshot_steps(snap, step=sys.maxsize):
            pass
        return snap

    async def snapshot_sliced(self) -> Snapshot:
        """The snapshot in slices of SNAPSHOT_SLICE trunks, handing the loop back between
        them when a step is over (monitor.metrics.pacing)."""
        snap = self._empty_snapshot()
        await paced(self._snapshot_steps(snap, step=SNAPSHOT_SLICE))
        return snap

    def _empty_snapshot(self) -> Snapshot:
        src = self.src
        return Snapshot(
            # Config facts, never mutated: referenced, not copied.
            trunks=src.trunks,
            malformed=(src.malformed.parse_errors, src.malformed.mismatches),
            store_pending=src.store_pending(),
            store_errors=src.store_errors(),
            gaps_recorded=src.gaps_recorded(),
            samples_dropped=src.samples_dropped(),
            scheduler=_scheduler_figures(src.scheduler),
        )

    def _snapshot_steps(self, snap: Snapshot, *, step: int) -> Iterator[None]:
        """Fill `snap` a slice at a time; the caller runs the loop between yields.

        Slice k of the stats table and slice k of the health entries are copied in the same
        step: the app keeps both in config order, so a trunk's probe figures and its state
        come from the same instant. Figures are copied as array slices, never referenced;
        the health columns are C-level maps. Nothing allocates a per-trunk object.
        """
        cols = self.src.stats.columns()  # these column objects, whatever a reload does
        health = list(self.src.health.values())
        opened = self.src.outages_opened
        # (the table's column, the snapshot's copy) per outcome, in Outcome's order.
        outcomes = [
            (column, snap.outcomes.setdefault(o, array(column.typecode)))
            for o in Outcome
            if (column := cols.outcomes.get(o)) is not None
        ]
        snap.rtt_counts = array(cols.rtt_counts.typecode)
        width = RTT_WIDTH
        for start in range(0, max(cols.rows, len(health)), step):
            end = min(start + step, cols.rows)  # rows added since the snapshot began wait
            snap.stat_trunk += cols.trunk[start:end]
            snap.stat_probe += cols.probe[start:end]
            snap.last_success += cols.last_success[start:end]
            snap.last_status += cols.last_status[start:end]
            snap.last_duration_s += cols.last_duration_s[start:end]
            snap.rtt_sum += cols.rtt_sum[start:end]
            snap.rtt_counts += cols.rtt_counts[start * width : end * width]
            for column, copy in outcomes:
                copy += column[start:end]
            trunks = health[start : start + step]
            names = list(map(_get_trunk, trunks))
            snap.health_trunk += names
            snap.health_state += map(_get_state, trunks)
            snap.health_outage += map(_get_open_outage, trunks)
            snap.opened += map(opened.get, names)
            yield

    # ---- writing (reads only the snapshot and the prepared label texts) -----------------

    def render(self, snap: Snapshot, fmt: ExpositionFormat) -> Iterator[str]:
        """The exposition as pieces of about PIECE_LINES lines each."""
        yield BUILD_INFO.header(fmt)
        yield f"{BUILD_INFO.sample}{{{self._build_labels}}} 1.0\n"
        yield from self._info(snap, fmt)
        yield from self._probe_families(snap, fmt)
        yield from self._health_families(snap, fmt)
        self._trunk_labels = None  # the trunk columns' texts are made: none is looked up
        yield self._monitor_families(snap, fmt)
        for section in self.src.sections:
            yield section(fmt)
        if self.runtime is not None:
            yield collector_text(self.runtime, fmt)
        if fmt is ExpositionFormat.OPENMETRICS:
            yield EOF_LINE

    def expose(self, snap: Snapshot, fmt: ExpositionFormat) -> bytes:
        return "".join(self.render(snap, fmt)).encode()

    def _trunk_label(self, trunk: str) -> str:
        labels = self._trunk_labels
        if labels is None:  # a column is remade: its trunks' texts are those made before
            labels = self._trunk_labels = {}
            for column in self._trunk_columns:
                labels.update(column.pairs())
        label = labels.get(trunk)
        if label is None:
            label = labels[trunk] = f'trunk="{escape_label_value(trunk)}"}} '
        return label

    @property
    def _trunk_columns(self) -> tuple[_TextColumn, ...]:
        return (self._info_trunks, self._stat_trunks, self._health_texts)

    def _shared_label(self, **labels: str) -> str:
        """`name="value",` texts of labels many trunks share (a few distinct ones)."""
        key = tuple(labels.items())
        text = self._shared_labels.get(key)
        if text is None:
            text = self._shared_labels[key] = f"{label_text(**labels)},"
        return text

    def _info_label(self, carrier: str, transport: str) -> str:
        return self._shared_label(carrier=carrier, transport=transport)

    def _probe_label(self, probe: str) -> str:
        return self._shared_label(probe=probe)

    def _prepare_steps(self, snap: Snapshot, *, step: int) -> Iterator[None]:
        infos = snap.trunks
        yield from self._info_texts.fill(infos.carrier, infos.transport, step=step)
        yield from self._info_trunks.fill(infos.trunk, step=step)
        yield from self._probe_texts.fill(snap.stat_probe, step=step)
        yield from self._stat_trunks.fill(snap.stat_trunk, step=step)
        yield from self._health_texts.fill(snap.health_trunk, step=step)
        self._trunk_labels = None

    def _info(self, snap: Snapshot, fmt: ExpositionFormat) -> Iterator[str]:
        yield TRUNK_INFO.header(fmt)
        head = f"{TRUNK_INFO.sample}{{{self._agent}"
        labels = self._info_texts.texts(snap.trunks.carrier, snap.trunks.transport)
        trunks = self._info_trunks.texts(snap.trunks.trunk)
        for start, end in _spans(len(trunks)):
            parts = (head, labels[start:end], trunks[start:end], "1.0\n")
            yield rows_text(end - start, parts)

    def _probe_families(self, snap: Snapshot, fmt: ExpositionFormat) -> Iterator[str]:
        # A line is head + probe label + trunk label (ending with the label set's "} ") +
        # value + tail; with one probe label for all rows (all OPTIONS, the usual case) it is
        # a constant part of the row template, not a column.
        trunks = self._stat_trunks.texts(snap.stat_trunk)
        probes = self._probe_texts.texts(snap.stat_probe)
        single = probes[0] if probes and probes.count(probes[0]) == len(probes) else None

        def labels(start: int, end: int, keep: Sequence[Any]) -> tuple[Part, Sequence[str]]:
            """The probe label part and the trunk labels of rows start..end that `keep` marks."""
            chosen = _kept(trunks[start:end], keep)
            return (single if single is not None else _kept(probes[start:end], keep)), chosen

        n = len(trunks)
        agent = self._agent
        # Before its first result a probe shows only its outcome counts (if any); RTT only
        # for answered OPTIONS probes. Made a piece at a time: one pass over all trunks
        # holds the loop for milliseconds at 100,000 trunks, longer than the pacer's step.
        answered: list[bool] = []
        options: list[bool] = []
        for start, end in _spans(n):
            piece = list(map(_is_answered, snap.last_success[start:end]))
            answered += piece
            options += map(and_, piece, map(_is_options, snap.stat_probe[start:end]))
            yield ""

        gauges: tuple[tuple[Family, Sequence[Any], _Texts], ...] = (
            (PROBE_SUCCESS, snap.last_success, count_texts),
            (PROBE_DURATION, snap.last_duration_s, float_texts),
            (SIP_LAST_STATUS, snap.last_status, count_texts),
        )
        for fam, column, texts in gauges:
            yield from self._gauge(fam, fmt, labels, answered, column, texts)

        # Outcome by outcome (a trunk's lines are not together: the format does not ask it),
        # each for the probes that have had it.
        yield PROBE_OUTCOME.header(fmt)
        for outcome, column in snap.outcomes.items():
            head = f"{PROBE_OUTCOME.sample}{{{agent}{_OUTCOME_LABEL[outcome]}"
            for start, end in _spans(n):
                counts = column[start:end]
                values, tail = count_texts(_kept(counts, counts))
                probe, rows = labels(start, end, counts)
                yield rows_text(len(rows), (head, probe, rows, values, tail + "\n"))

        yield OPTIONS_RTT.header(fmt)
        heads = [f"{OPTIONS_RTT.name}_bucket{{{agent}{le}," for le in _RTT_LE]
        count_head = f"{OPTIONS_RTT.name}_count{{{agent}"
        sum_head = f"{OPTIONS_RTT.name}_sum{{{agent}"
        width = RTT_WIDTH
        for start, end in _spans(n, width + 1 + FLOAT_LINES):
            keep = options[start:end]
            rows = _kept(trunks[start:end], keep)
            counts = snap.rtt_counts[start * width : end * width]
            parts: list[Part] = []
            # Cumulative counts per bucket; a bucket empty for every row leaves them (and
            # their texts) as they were: the top buckets usually are.
            cumulative: list[Sequence[int]] = []
            for k in range(width):
                column = _kept(counts[k::width], keep)
                if not k or any(column):
                    column = list(map(add, cumulative[-1], column)) if k else column
                else:
                    column = cumulative[-1]
                cumulative.append(column)
            # Counts are unsigned, so when the +Inf bucket's are small, all are.
            total = cumulative[-1]
            small = bool(total) and max(total) < PLAIN_INT_LIMIT
            values = []
            tail = ""
            for k, bucket_head in enumerate(heads):
                if not k or cumulative[k] is not cumulative[k - 1]:
                    values, tail = count_texts(cumulative[k], small=small)
                parts += (bucket_head, rows, values, tail + "\n")
            # _count is the +Inf bucket's cumulative count: the same texts again.
            parts += (count_head, rows, values, tail + "\n")
            sums, _ = float_texts(_kept(snap.rtt_sum[start:end], keep))
            parts += (sum_head, rows, sums, "\n")
            yield rows_text(len(rows), parts)

    def _gauge(
        self,
        fam: Family,
        fmt: ExpositionFormat,
        labels: _Labels,
        keep: list[bool],
        column: Sequence[Any],
        texts: _Texts,
    ) -> Iterator[str]:
        """A per-probe gauge's lines for the probes `keep` selects."""
        yield fam.header(fmt)
        head = f"{fam.sample}{{{self._agent}"
        for start, end in _spans(len(keep), FLOAT_LINES if texts is float_texts else 1):
            probe, rows = labels(start, end, keep[start:end])
            values, tail = texts(_kept(column[start:end], keep[start:end]))
            yield rows_text(len(rows), (head, probe, rows, values, tail + "\n"))

    def _health_families(self, snap: Snapshot, fmt: ExpositionFormat) -> Iterator[str]:
        agent = self._agent
        labels = self._health_texts.texts(snap.health_trunk)
        n = len(labels)

        yield TRUNK_STATE.header(fmt)
        heads = [
            (state, f'{TRUNK_STATE.sample}{{{agent}state="{escape_label_value(state.value)}",')
            for state in TrunkState
        ]
        for start, end in _spans(n, len(heads)):
            rows = labels[start:end]
            current = snap.health_state[start:end]
            parts: list[Part] = []
            for state, head in heads:
                flags = map(is_, current, repeat(state))
                parts += (head, rows, map(BOOL_TEXTS.__getitem__, flags), "\n")
            yield rows_text(end - start, parts)

        yield OUTAGE_OPEN.header(fmt)
        head = f"{OUTAGE_OPEN.sample}{{{agent}"
        for start, end in _spans(n):
            flags = map(is_not, snap.health_outage[start:end], repeat(None))
            values = map(BOOL_TEXTS.__getitem__, flags)
            yield rows_text(end - start, (head, labels[start:end], values, "\n"))

        yield OUTAGES_OPENED.header(fmt)
        head = f"{OUTAGES_OPENED.sample}{{{agent}"
        for start, end in _spans(n):
            counts, tail = count_texts([v or 0 for v in snap.opened[start:end]])
            yield rows_text(end - start, (head, labels[start:end], counts, tail + "\n"))

    def _monitor_families(self, snap: Snapshot, fmt: ExpositionFormat) -> str:
        parse_errors, mismatches = snap.malformed
        name = SIP_MALFORMED.sample
        out = [
            SIP_MALFORMED.header(fmt),
            f'{name}{{kind="parse_error"}} {count_text(parse_errors)}\n',
            f'{name}{{kind="mismatch"}} {count_text(mismatches)}\n',
            _single(STORE_PENDING, fmt, snap.store_pending),
            _single(STORE_ERRORS, fmt, snap.store_errors),
            _single(MONITOR_GAPS, fmt, snap.gaps_recorded),
            _single(STORE_SAMPLES_DROPPED, fmt, snap.samples_dropped),
        ]
        sched = snap.scheduler
        if sched is not None:
            out.append(SCHEDULER_LAG.header(fmt))
            out.append(
                histogram_text(
                    SCHEDULER_LAG.name, sched.lag_bounds, sched.lag_counts, sched.lag_total
                )
            )
            out.append(_single(SCHEDULER_IN_FLIGHT, fmt, sched.in_flight))
            out.append(_single(SCHEDULER_MAX_IN_FLIGHT, fmt, sched.max_in_flight))
            out.append(_single(SCHEDULER_SKIPPED, fmt, sched.skipped))
            out.append(_single(SCHEDULER_ERRORS, fmt, sched.errors))
            out.append(_single(SCHEDULER_TARGETS, fmt, sched.targets))
        return "".join(out)


class _TextColumn:
    """Label texts for a column of rows, made once and reused while the rows stay the same.

    A scrape's columns hold the same string objects as the last one's, so the comparison
    is a pointer check per row (~0.1 ms for 10,000 rows) instead of a lookup per row.
    """

    __slots__ = ("_key", "_make", "_texts")

    def __init__(self, make: Callable[..., str]) -> None:
        self._make = make
        self._key: tuple[Sequence[Any], ...] | None = None
        self._texts: list[str] = []

    def pairs(self) -> Iterator[tuple[Any, str]]:
        """(row's first column, its text) of the rows the texts were made for."""
        return zip(self._key[0], self._texts, strict=True) if self._key else iter(())

    def texts(self, *columns: Sequence[Any]) -> list[str]:
        for _ in self.fill(*columns, step=sys.maxsize):
            pass
        return self._texts

    def fill(self, *columns: Sequence[Any], step: int) -> Iterator[None]:
        """Make the texts `step` rows at a time; the caller runs the loop between yields."""
        if columns == self._key:
            return
        # A list may be a live one that changes later: kept as a copy. A tuple cannot be.
        key = tuple(c if type(c) is tuple else list(c) for c in columns)
        texts: list[str] = []
        for start in range(0, len(key[0]), step):
            texts += map(self._make, *(column[start : start + step] for column in key))
            yield
        self._texts, self._key = texts, key


def _single(family: Family, fmt: ExpositionFormat, value: int) -> str:
    return f"{family.header(fmt)}{family.sample} {count_text(value)}\n"


def _kept(column: Sequence[_T], keep: Sequence[Any]) -> Sequence[_T]:
    """The rows of `column` whose `keep` is true (the column itself when all are)."""
    return column if all(keep) else list(compress(column, keep))


def _spans(rows: int, lines_per_row: int = 1) -> Iterator[tuple[int, int]]:
    """(start, end) runs of `rows` that write about PIECE_LINES lines each."""
    step = max(1, PIECE_LINES // lines_per_row)
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def _scheduler_figures(sched: Scheduler | None) -> SchedulerFigures | None:
    if sched is None:
        return None
    lag = sched.lag
    return SchedulerFigures(
        lag_bounds=tuple(lag.bounds),
        lag_counts=list(lag.counts),
        lag_total=lag.total,
        in_flight=sched.in_flight,
        max_in_flight=sched.max_in_flight,
        skipped=sched.skipped,
        errors=sched.errors,
        targets=len(sched.items),
    )


class TrunkwatchCollector(Collector):
    """trunkwatch's families as prometheus_client Metric objects, read back from the text.

    For code that wants metric families (a CollectorRegistry, the dashboards test): it
    parses what `Exporter` writes, so there is one computation of every number. It takes
    the whole snapshot in one step and is slow with thousands of trunks; /metrics uses
    `Exporter` directly.
    """

    def __init__(self, sources: ExportSources) -> None:
        self.exporter = Exporter(sources)

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families depend on config

    def collect(self) -> Iterator[Metric]:
        exporter = self.exporter
        text = exporter.expose(exporter.snapshot(), ExpositionFormat.TEXT).decode()
        yield from text_string_to_metric_families(text)


def loop_name() -> str:
    loop = asyncio.get_event_loop()
    module = type(loop).__module__.split(".")[0]
    return "uvloop" if module == "uvloop" else f"asyncio-{sys.implementation.name}"
