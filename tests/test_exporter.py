"""The direct /metrics writer: byte-for-byte what the prometheus_client families wrote,
valid for promtool and both prometheus_client parsers, one snapshot, gzip negotiated.

The reference is the previous exporter (TrunkwatchCollector building CounterMetricFamily,
GaugeMetricFamily and HistogramMetricFamily objects, rendered by prometheus_client),
kept here verbatim in `ReferenceCollector` as the oracle.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import re
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import Promtool
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _float_to_go_string

from monitor import __version__, heap
from monitor.events import Outage, OutageKind, TrunkState
from monitor.health import TrunkHealth
from monitor.metrics import exporter as exporter_module
from monitor.metrics import pacing
from monitor.metrics.columns import count_texts, float_texts, rows_text
from monitor.metrics.exporter import (
    FLOAT_LINES,
    PIECE_LINES,
    SNAPSHOT_SLICE,
    Exporter,
    ExportSources,
    TrunkInfos,
    TrunkwatchCollector,
    runtime_registry,
)
from monitor.metrics.exposition import (
    ExpositionFormat,
    collector_text,
    count_text,
    escape_label_value,
    go_float,
    negotiate,
)
from monitor.metrics.server import accepts_gzip, make_app
from monitor.metrics.stats import RTT_BUCKETS, RTT_WIDTH, StatsTable
from monitor.scheduler import Scheduler
from probes.options import MalformedCounter
from probes.result import Outcome, ProbeResult

TEXT = ExpositionFormat.TEXT
OPENMETRICS = ExpositionFormat.OPENMETRICS
Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# Carrier names with every character the exposition formats escape, and more.
ODD_CARRIERS = ('quote"carrier', "back\\slash", "new\nline", "Ünïcode ☎ carrier", "", "a,b=c}")


# ---- the reference: the previous exporter's collector, verbatim -------------------------


def _buckets(bounds: Iterable[float], counts: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(bounds, counts, strict=False):
        running += count
        out.append((repr(float(bound)), float(running)))
    running += counts[-1]
    out.append(("+Inf", float(running)))
    return out


class ReferenceCollector(Collector):
    """The exporter before issue 6: prometheus_client metric families, built per scrape."""

    def __init__(self, sources: ExportSources, python: str) -> None:
        self.src = sources
        self.python = python

    def collect(self) -> Iterator[Metric]:
        src = self.src
        build = GaugeMetricFamily(
            "trunkwatch_build_info",
            "trunkwatch version and runtime; always 1.",
            labels=["version", "python", "loop", "agent"],
        )
        build.add_metric([__version__, self.python, src.loop_name, src.agent], 1.0)
        yield build
        info = GaugeMetricFamily(
            "trunkwatch_trunk_info",
            "Configured trunks with their carrier and transport; always 1.",
            labels=["agent", "trunk", "carrier", "transport"],
        )
        for trunk, carrier, transport in src.trunks:
            info.add_metric([src.agent, trunk, carrier, transport], 1.0)
        yield info
        yield from self._probe_families()
        yield from self._health_families()
        yield from self._monitor_families()

    def _probe_families(self) -> Iterator[Metric]:
        labels = ["agent", "trunk", "probe"]
        success = GaugeMetricFamily(
            "trunkwatch_probe_success",
            "1 if the last probe found the trunk alive, 0 if not.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "trunkwatch_probe_duration_seconds",
            "How long the last probe took (DNS, connect and authentication included).",
            labels=labels,
        )
        status = GaugeMetricFamily(
            "trunkwatch_sip_last_status_code",
            "SIP status code of the last answer; 0 when the last probe got none.",
            labels=labels,
        )
        outcomes = CounterMetricFamily(
            "trunkwatch_probe_outcome", "Probe results by outcome.", labels=[*labels, "outcome"]
        )
        rtt = HistogramMetricFamily(
            "trunkwatch_sip_options_rtt_seconds",
            "Round-trip time of SIP OPTIONS, request sent to final response.",
            labels=["agent", "trunk"],
        )
        agent = self.src.agent
        table = self.src.stats
        for outcome in Outcome:  # outcome by outcome, each for the probes that had it
            for trunk, probe in zip(table.trunk, table.probe, strict=True):
                count = table.outcome_counts(trunk).get(outcome)
                if count:
                    outcomes.add_metric([agent, trunk, probe, outcome.value], float(count))
        for row, (trunk, probe) in enumerate(zip(table.trunk, table.probe, strict=True)):
            key = [agent, trunk, probe]
            if table.last_success[row] < 0:
                continue
            success.add_metric(key, float(table.last_success[row]))
            duration.add_metric(key, table.last_duration_s[row])
            status.add_metric(key, float(table.last_status[row]))
            if probe == "options":
                counts = table.rtt_bucket_counts(trunk)
                rtt.add_metric(
                    [agent, trunk], _buckets(RTT_BUCKETS, counts), sum_value=table.rtt_sum[row]
                )
        yield from (success, duration, status, outcomes, rtt)

    def _health_families(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "trunkwatch_trunk_state",
            "1 for the trunk's current state, 0 for the others.",
            labels=["agent", "trunk", "state"],
        )
        open_ = GaugeMetricFamily(
            "trunkwatch_outage_open",
            "1 while the trunk has an open outage.",
            labels=["agent", "trunk"],
        )
        opened = CounterMetricFamily(
            "trunkwatch_outages_opened",
            "Outages opened by this process since it started.",
            labels=["agent", "trunk"],
        )
        a = self.src.agent
        for name, health in self.src.health.items():
            for candidate in TrunkState:
                value = 1.0 if health.state is candidate else 0.0
                state.add_metric([a, name, candidate.value], value)
            open_.add_metric([a, name], 1.0 if health.open_outage is not None else 0.0)
            opened.add_metric([a, name], float(self.src.outages_opened.get(name, 0)))
        yield from (state, open_, opened)

    def _monitor_families(self) -> Iterator[Metric]:
        src = self.src
        malformed = CounterMetricFamily(
            "trunkwatch_sip_malformed_packets",
            "Packets received that were not a valid answer to a probe.",
            labels=["kind"],
        )
        malformed.add_metric(["parse_error"], float(src.malformed.parse_errors))
        malformed.add_metric(["mismatch"], float(src.malformed.mismatches))
        yield malformed
        pending = GaugeMetricFamily(
            "trunkwatch_store_pending_events", "Journal events waiting to be written."
        )
        pending.add_metric([], float(src.store_pending()))
        yield pending
        errors = CounterMetricFamily(
            "trunkwatch_store_write_errors", "Failed journal writes (retried)."
        )
        errors.add_metric([], float(src.store_errors()))
        yield errors
        gaps = CounterMetricFamily(
            "trunkwatch_monitor_gaps", "Monitoring gaps (unknown time) recorded at start-up."
        )
        gaps.add_metric([], float(src.gaps_recorded()))
        yield gaps
        dropped = CounterMetricFamily(
            "trunkwatch_store_samples_dropped",
            "Sample rows (evidence around transitions) dropped unwritten: the store fell too"
            " far behind.",
        )
        dropped.add_metric([], float(src.samples_dropped()))
        yield dropped
        sched = src.scheduler
        if sched is None:
            return
        lag = HistogramMetricFamily(
            "trunkwatch_scheduler_lag_seconds",
            "Probe send lateness: actual minus planned start time.",
        )
        lag.add_metric([], _buckets(sched.lag.bounds, sched.lag.counts), sum_value=sched.lag.total)
        yield lag
        in_flight = GaugeMetricFamily(
            "trunkwatch_scheduler_in_flight", "Probes started and not yet finished."
        )
        in_flight.add_metric([], float(sched.in_flight))
        yield in_flight
        cap = GaugeMetricFamily(
            "trunkwatch_scheduler_max_in_flight",
            "The in-flight cap: a probe due while this many are in flight is skipped.",
        )
        cap.add_metric([], float(sched.max_in_flight))
        yield cap
        skipped = CounterMetricFamily(
            "trunkwatch_scheduler_skipped_probes",
            "Probes not started because the previous one was still running or the cap was hit.",
        )
        skipped.add_metric([], float(sched.skipped))
        yield skipped
        errs = CounterMetricFamily(
            "trunkwatch_scheduler_errors", "Exceptions raised by probe code (bugs), caught."
        )
        errs.add_metric([], float(sched.errors))
        yield errs
        targets = GaugeMetricFamily("trunkwatch_scheduler_targets", "Probes on the schedule.")
        targets.add_metric([], float(len(sched.items)))
        yield targets


def reference(sources: ExportSources, fmt: ExpositionFormat) -> bytes:
    import platform

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReferenceCollector(sources, platform.python_version()))
    if fmt is TEXT:
        return generate_latest(registry)
    body: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return body


# ---- sources ------------------------------------------------------------------------------


def result(trunk: str, outcome: Outcome, rtt_s: float | None, status: int | None) -> ProbeResult:
    rtt_ns = None if rtt_s is None else round(rtt_s * 1e9)
    return ProbeResult(
        trunk, "options", outcome, 0, rtt_ns=rtt_ns, duration_ns=rtt_ns, status_code=status
    )


def outage(trunk: str) -> Outage:
    return Outage(
        id=f"o-{trunk}",
        trunk=trunk,
        kind=OutageKind.OUTAGE,
        first_failure_at=NOW - timedelta(minutes=2),
        confirmed_at=NOW,
        first_outcome="timeout",
    )


def make_sources(
    trunks: list[tuple[str, str, str]], *, scheduler: Scheduler | None = None
) -> ExportSources:
    return ExportSources(
        agent="agent-1",
        loop_name="asyncio-cpython",
        trunks=TrunkInfos.of(trunks),
        stats=StatsTable(t[0] for t in trunks),
        health={t[0]: TrunkHealth(t[0]) for t in trunks},
        scheduler=scheduler,
        malformed=MalformedCounter(),
        outages_opened={},
        store_pending=lambda: 3,
        store_errors=lambda: 1,
        gaps_recorded=lambda: 0,
        samples_dropped=lambda: 7,  # not 0: the reference must write the value too
    )


def rich_sources() -> ExportSources:
    """Every family populated, every branch of the old collector taken."""
    scheduler = Scheduler([], lambda r: None)
    for lag in (0.0, 0.0005, 0.0031, 0.2, 7.5):  # on a bound, between bounds, past the last
        scheduler.lag.observe(lag)
    scheduler.skipped, scheduler.errors, scheduler.in_flight = 4, 1, 2
    names = [f"trunk-{i}" for i in range(len(ODD_CARRIERS) + 2)]
    carriers = [*ODD_CARRIERS, "plain", "plain"]
    src = make_sources(
        [(n, c, t) for n, c, t in zip(names, carriers, ["udp", "tcp", "tls"] * 3, strict=False)],
        scheduler=scheduler,
    )
    stats = src.stats
    # trunk-0: answered on every bucket bound and beyond the last.
    for rtt in (*RTT_BUCKETS, 0.0001, 2.5, 0.0123):
        stats.record(result("trunk-0", Outcome.OK, rtt, 200))
    # trunk-1: failures after successes: last success 0, status of the last answer.
    stats.record(result("trunk-1", Outcome.OK, 0.02, 200))
    stats.record(result("trunk-1", Outcome.SIP_ERROR, 0.03, 503))
    stats.record(result("trunk-1", Outcome.TIMEOUT, None, None))
    # trunk-2: only a crash of the prober: outcome counted, nothing else shown.
    stats.record(result("trunk-2", Outcome.PROBE_CRASHED, None, None))
    # trunk-3: counters large enough for Go's exponent form (1e+06 and up).
    stats.record(result("trunk-3", Outcome.OK, 0.05, 200))
    stats.outcome_column(Outcome.OK)[3] = 123_456_789
    stats.outcome_column(Outcome.REFUSED)[3] = 1_000_000
    stats.rtt_counts[3 * RTT_WIDTH + 2] = 999_999
    stats.rtt_sum[3] = 1.5e7
    # trunk-4: no results at all (before the first probe).
    src.health["trunk-1"].state = TrunkState.DOWN
    src.health["trunk-1"].open_outage = outage("trunk-1")
    src.health["trunk-0"].state = TrunkState.UP
    src.outages_opened.update({"trunk-1": 3, "trunk-0": 1})  # trunk-2.. have no entry
    src.malformed.parse_errors, src.malformed.mismatches = 7, 2_000_000
    return src


# ---- number formatting and escaping ---------------------------------------------------


def floatToGoString(value: float) -> str:  # prometheus_client.utils.floatToGoString, typed
    text: str = _float_to_go_string(value)  # type: ignore[no-untyped-call]
    return text


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, 0.005, 1e-10, 123456.0, 1e6, 1234567.0, 1.5e7, 1e22, -2.5e8, 0.1 + 0.2],
)
def test_go_float_matches_prometheus_client(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


@pytest.mark.parametrize(
    ("value", "text"), [(math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN")]
)
def test_go_float_special_values(value: float, text: str) -> None:
    assert go_float(value) == floatToGoString(value) == text


@settings(max_examples=300)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_go_float_matches_prometheus_client_everywhere(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


@settings(max_examples=300)
@given(st.integers(min_value=-(10**17), max_value=10**17))
def test_count_text_is_the_float_rendering_of_the_count(value: int) -> None:
    assert count_text(value) == floatToGoString(float(value))


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ('say "hi"', 'say \\"hi\\"'),
        ("C:\\dir", "C:\\\\dir"),
        ("two\nlines", "two\\nlines"),
        ('\\"\n', '\\\\\\"\\n'),
        ("Ünïcode ☎", "Ünïcode ☎"),  # UTF-8 is allowed as is
    ],
)
def test_label_value_escaping(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped


# ---- negotiation ----------------------------------------------------------------------------

ACCEPT_HEADERS = [
    "",
    "*/*",
    "text/plain",
    "text/plain; version=0.0.4",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=0.0.1",
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.3",
    # Prometheus 2.42's default scrape Accept header:
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "text/plain;version=0.0.4;q=0.5, application/openmetrics-text; version=1.0.0",
]


@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_negotiation_picks_what_prometheus_client_picked(accept: str) -> None:
    _, content_type = choose_encoder(accept)
    expected = OPENMETRICS if content_type.startswith("application/openmetrics-text") else TEXT
    assert negotiate(accept) is expected


# RFC 9110 §12.5.3: a coding is acceptable if listed (or matched by *) with q > 0.
@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("gzip, deflate, br", True),
        ("deflate, gzip;q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, *", False),  # an explicit refusal beats the wildcard
        ("*;q=0", False),
        ("identity", False),
        ("deflate", False),
        ("", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding(header: str, gzip_ok: bool) -> None:
    assert accepts_gzip(header) is gzip_ok


# ---- the exposition equals the old one --------------------------------------------------------


@pytest.mark.parametrize("fmt", list(ExpositionFormat))
def test_byte_identical_to_prometheus_client_families(fmt: ExpositionFormat) -> None:
    src = rich_sources()
    exporter = Exporter(src)
    assert exporter.expose(exporter.snapshot(), fmt) == reference(src, fmt)


@pytest.mark.parametrize("fmt", list(ExpositionFormat))
def test_byte_identical_without_scheduler_and_without_trunks(fmt: ExpositionFormat) -> None:
    src = make_sources([])
    exporter = Exporter(src)
    assert exporter.expose(exporter.snapshot(), fmt) == reference(src, fmt)


@st.composite
def random_sources(draw: st.DrawFn) -> ExportSources:
    n = draw(st.integers(min_value=0, max_value=6))
    carrier = st.text(max_size=12)
    trunks = [
        (f"t{i}", draw(carrier), draw(st.sampled_from(["udp", "tcp", "tls"]))) for i in range(n)
    ]
    src = make_sources(trunks, scheduler=Scheduler([], lambda r: None))
    rtt = st.one_of(st.none(), st.sampled_from(RTT_BUCKETS), st.floats(0, 5))
    for trunk in src.stats.trunk:
        for _ in range(draw(st.integers(0, 6))):
            outcome = draw(st.sampled_from(list(Outcome)))
            status = draw(st.sampled_from([None, 200, 404, 503]))
            src.stats.record(result(trunk, outcome, draw(rtt), status))
    for health in src.health.values():
        health.state = draw(st.sampled_from(list(TrunkState)))
        if draw(st.booleans()):
            health.open_outage = outage(health.trunk)
        if draw(st.booleans()):
            src.outages_opened[health.trunk] = draw(st.integers(0, 10**9))
    for lag in draw(st.lists(st.floats(0, 3), max_size=5)):
        assert src.scheduler is not None
        src.scheduler.lag.observe(lag)
    return src


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_sources())
def test_byte_identical_for_any_sources(src: ExportSources) -> None:
    exporter = Exporter(src)
    snap = exporter.snapshot()
    for fmt in ExpositionFormat:
        assert exporter.expose(snap, fmt) == reference(src, fmt)


def mixed_sources(n: int) -> ExportSources:
    """n trunks cycling through every case the column writer treats apart: unanswered and
    crashed-only probes, a non-OPTIONS probe, empty and full RTT buckets, counts past a
    million, sums that are inf, nan or past 1e6, every state, outages and opened counts."""
    src = make_sources([(f"t{i}", f"c{i % 3}", "udp") for i in range(n)])
    stats = src.stats
    stats.probe[7 % n] = "register"  # gauges and outcomes, no RTT histogram
    for i, trunk in enumerate(stats.trunk):
        case = i % 9
        first, last = i * RTT_WIDTH, (i + 1) * RTT_WIDTH - 1  # the row's first and +Inf bucket
        if case == 0:
            continue  # no result yet: nothing but (no) outcome counts
        if case == 1:
            stats.record(result(trunk, Outcome.PROBE_CRASHED, None, None))
            continue
        for k, rtt in enumerate((*RTT_BUCKETS[: 1 + i % len(RTT_BUCKETS)], 0.0042 * i)):
            outcome = Outcome.OK if k % 4 else Outcome.TIMEOUT
            stats.record(result(trunk, outcome, rtt, 200 if k % 4 else None))
        if case == 3:
            stats.outcome_column(Outcome.OK)[i] = 1_000_000 + i  # Go's exponent form
            stats.rtt_counts[last] = 999_999
        if case == 4:
            stats.rtt_sum[i] = (math.inf, math.nan, 2.5e6, -math.inf)[i % 4]
        if case == 5:
            stats.last_duration_s[i] = 1e-7 * i
        if case == 6:  # past 32 bits: the table's RTT counts become 64-bit
            stats.rtt_counts[first] = 2**32 - 1
            stats.record(result(trunk, Outcome.OK, 0.001, 200))
    for i, health in enumerate(src.health.values()):
        health.state = list(TrunkState)[i % len(TrunkState)]
        if i % 4 == 1:
            health.open_outage = outage(health.trunk)
        if i % 3:
            src.outages_opened[health.trunk] = (0, 2, 10**7)[i % 3]
    return src


@pytest.mark.parametrize("piece_lines", [1, 13, 100, 5_000])
def test_byte_identical_across_pieces(monkeypatch: pytest.MonkeyPatch, piece_lines: int) -> None:
    # Pieces of a few lines: the fast paths (all rows kept, every bucket empty, every
    # count below a million, plain floats) hold in some pieces and not in their neighbours.
    monkeypatch.setattr(exporter_module, "PIECE_LINES", piece_lines)
    src = mixed_sources(60)
    exporter = Exporter(src)
    snap = exporter.snapshot()
    for fmt in ExpositionFormat:
        pieces = list(exporter.render(snap, fmt))
        assert "".join(pieces).encode() == reference(src, fmt)
    assert len(pieces) > 8 if piece_lines < 100 else len(pieces) > 1


def test_pieces_are_small_and_float_pieces_smaller() -> None:
    # A piece is the shortest hold of the loop a scrape can make: no piece writes more than
    # PIECE_LINES lines, a float gauge's no more than PIECE_LINES / FLOAT_LINES, and no
    # pass over every trunk runs in one piece (it would hold the loop for milliseconds).
    n = PIECE_LINES * 3
    exporter = Exporter(many_sources(n))
    snap = exporter.snapshot()
    pieces = list(exporter.render(snap, TEXT))
    for piece in pieces:
        lines = piece.count("\n")
        if piece.startswith("trunkwatch_probe_duration_seconds{"):
            assert lines <= PIECE_LINES // FLOAT_LINES
        elif not piece.startswith(("# ", "process_", "python_")):
            assert lines <= PIECE_LINES + 1
    assert any(p.startswith("trunkwatch_probe_duration_seconds{") for p in pieces)
    success = [p for p in pieces if p.startswith("trunkwatch_probe_success{")]
    first = pieces.index(success[0])
    # Before the first probe_success line: the answered pass, a piece per span of trunks.
    assert pieces[first - 4 : first - 1] == ["", "", ""]


def test_column_texts_are_the_grammar_s_texts() -> None:
    ints = [0, 7, -3, 999_999, -999_999]
    assert count_texts(ints) == ([str(v) for v in ints], ".0")
    big = [*ints, 1_000_000, -1_000_000, 123_456_789]
    texts, tail = count_texts(big)
    assert [t + tail for t in texts] == [count_text(v) for v in big]
    plain = [0.0, -0.0, 1e-7, 0.1, 999_999.9, -5e20]
    assert float_texts(plain) == ([repr(v) for v in plain], "")
    for odd in (math.inf, -math.inf, math.nan, 1e6, 1.5e300, 1.5e308):
        column = [*plain, odd, 1.5e308]  # the last two overflow the sum to inf
        assert float_texts(column) == ([go_float(v) for v in column], "")
    assert float_texts([0.5, 3]) == (["0.5", "3.0"], "")  # an int among floats


def test_rows_text_interleaves_columns_and_checks_their_length() -> None:
    assert rows_text(2, ("a", ["1", "2"], "", "b", iter("xy"), "\n")) == "a1bx\na2by\n"
    assert rows_text(0, ("a", [])) == ""
    with pytest.raises(ValueError):
        rows_text(3, ("a", ["1", "2"]))


def parse_openmetrics_typed(text: str) -> Iterable[Metric]:
    parsed: Iterable[Metric] = parse_openmetrics(text)  # type: ignore[no-untyped-call]
    return parsed


def families(parse: Callable[[str], Iterable[Metric]], body: bytes) -> list[Metric]:
    return list(parse(body.decode()))


def test_both_parsers_read_the_same_families_as_the_reference() -> None:
    src = rich_sources()
    exporter = Exporter(src)
    snap = exporter.snapshot()
    text = families(parse_text, exporter.expose(snap, TEXT))
    assert text == families(parse_text, reference(src, TEXT))
    openmetrics = families(parse_openmetrics_typed, exporter.expose(snap, OPENMETRICS))
    assert openmetrics == families(parse_openmetrics_typed, reference(src, OPENMETRICS))
    # The odd carrier names come back exactly as configured.
    info = next(f for f in openmetrics if f.name == "trunkwatch_trunk_info")
    assert [s.labels["carrier"] for s in info.samples][: len(ODD_CARRIERS)] == list(ODD_CARRIERS)


def test_odd_carrier_names_are_escaped_in_the_text() -> None:
    src = make_sources([("t1", 'a"b\\c\nd', "udp")])
    body = Exporter(src).expose(Exporter(src).snapshot(), TEXT).decode()
    assert (
        'trunkwatch_trunk_info{agent="agent-1",carrier="a\\"b\\\\c\\nd",'
        'transport="udp",trunk="t1"} 1.0\n' in body
    )


def test_legacy_collector_yields_the_reference_families() -> None:
    src = rich_sources()
    got = list(TrunkwatchCollector(src).collect())
    assert got == families(parse_text, reference(src, TEXT))


def test_trunks_added_after_construction_are_exported() -> None:
    src = make_sources([("t1", "c", "udp")])
    exporter = Exporter(src)
    exporter.expose(exporter.snapshot(), TEXT)  # labels prepared for t1
    src.trunks = TrunkInfos.of([*src.trunks, ("t2", "c2", "tls")])  # as a reload does
    src.stats.add("t2")
    src.stats.record(result("t2", Outcome.OK, 0.01, 200))
    src.health["t2"] = TrunkHealth("t2", state=TrunkState.UP)
    for fmt in ExpositionFormat:
        assert exporter.expose(exporter.snapshot(), fmt) == reference(src, fmt)


# ---- validity: promtool and the OpenMetrics structure -------------------------------------


def test_text_passes_promtool(promtool: Promtool) -> None:
    src = rich_sources()
    exporter = Exporter(src, runtime=runtime_registry())
    rc, out = promtool.check_metrics(exporter.expose(exporter.snapshot(), TEXT).decode())
    assert rc == 0, out


def test_openmetrics_passes_promtool_but_for_its_text_format_counter_lint(
    promtool: Promtool,
) -> None:
    # promtool 2.42 `check metrics` reads only the text format: an OpenMetrics counter's
    # HELP names the family (`foo`), its samples are `foo_total`, which promtool's linter
    # reports as "no help text" (prometheus_client's own process_cpu_seconds too). Any
    # other complaint, or a parse error (exit code 1), would be a real problem.
    src = rich_sources()
    exporter = Exporter(src, runtime=runtime_registry())
    body = exporter.expose(exporter.snapshot(), OPENMETRICS).decode()
    rc, out = promtool.check_metrics(body)
    counters = set(re.findall(r"^# TYPE (\S+) counter$", body, re.MULTILINE))
    assert rc in (0, 3), out
    for line in out.splitlines():
        name, _, problem = line.partition(" ")
        assert problem == "no help text" and name.removesuffix("_total") in counters, line


def test_openmetrics_has_one_eof_at_the_very_end_after_the_runtime_families() -> None:
    exporter = Exporter(rich_sources(), runtime=runtime_registry())
    body = exporter.expose(exporter.snapshot(), OPENMETRICS).decode()
    assert body.endswith("\n# EOF\n")
    assert body.count("# EOF") == 1
    names = [f.name for f in parse_openmetrics_typed(body)]  # strict: raises on violations
    assert names[0] == "trunkwatch_build_info"
    assert {"process_cpu_seconds", "python_info", "python_gc_collections"} <= set(names)
    text = exporter.expose(exporter.snapshot(), TEXT).decode()
    assert "# EOF" not in text
    assert "process_cpu_seconds_total" in text


# ---- the snapshot ---------------------------------------------------------------------------


def test_render_reads_only_the_snapshot() -> None:
    src = rich_sources()
    exporter = Exporter(src)
    before = exporter.expose(exporter.snapshot(), TEXT)
    snap = exporter.snapshot()
    # The hot path goes on after the snapshot: new results, a new outcome, a state change.
    src.stats.record(result("trunk-0", Outcome.OK, 0.007, 200))
    src.stats.record(result("trunk-4", Outcome.DNS, None, None))
    src.health["trunk-0"].state = TrunkState.DOWN
    src.outages_opened["trunk-0"] = 9
    src.malformed.parse_errors += 1
    assert src.scheduler is not None
    src.scheduler.lag.observe(0.004)
    assert exporter.expose(snap, TEXT) == before
    assert exporter.expose(exporter.snapshot(), TEXT) != before


def many_sources(n: int) -> ExportSources:
    src = make_sources([(f"t{i}", f"c{i % 7}", "udp") for i in range(n)])
    for i, trunk in enumerate(src.stats.trunk):
        src.stats.record(result(trunk, Outcome.OK if i % 5 else Outcome.TIMEOUT, 0.01, 200))
    return src


@pytest.fixture
def every_slice(monkeypatch: pytest.MonkeyPatch) -> int:
    """Steps of no time at all: the loop is handed back after every slice. Returns a
    trunk count that fills three slices and part of a fourth."""
    monkeypatch.setattr(pacing, "STEP_S", 0.0)
    monkeypatch.setattr(pacing, "MAX_STEP_S", 0.0)
    return SNAPSHOT_SLICE * 3 + 7


async def test_sliced_snapshot_equals_the_whole_one_and_yields_between_slices(
    every_slice: int,
) -> None:
    n = every_slice
    exporter = Exporter(many_sources(n))
    turns = LoopTurns()
    sliced = await exporter.snapshot_sliced()
    during = turns.count
    assert sliced == exporter.snapshot()
    assert during >= math.ceil(n / SNAPSHOT_SLICE)


async def test_a_compaction_during_a_sliced_snapshot_leaves_it_whole(every_slice: int) -> None:
    # A reload removes trunks while a scrape copies the stats table a slice at a time: the
    # snapshot keeps reading the columns it began with, every row of them.
    n = every_slice
    src = make_sources([(f"t{i}", "c", "udp") for i in range(n)])
    table = src.stats
    for i, trunk in enumerate(table.trunk):
        table.record(result(trunk, Outcome.OK, (1 + i % 900) / 1000, 200))
    exporter = Exporter(src)
    whole = exporter.snapshot()

    async def reload() -> None:
        await asyncio.sleep(0)  # the snapshot has copied its first slice
        for trunk in table.trunk[::2]:
            table.remove(trunk)
        table.compact()
        table.add("late")

    sliced, _ = await asyncio.gather(exporter.snapshot_sliced(), reload())
    assert len(table) == n - (n + 1) // 2 + 1
    assert sliced.stat_trunk == whole.stat_trunk
    assert sliced.rtt_counts == whole.rtt_counts
    assert sliced.outcomes == whole.outcomes
    # The next scrape shows the table as it is now.
    after = exporter.snapshot()
    assert after.stat_trunk == table.trunk and len(after.rtt_counts) == len(table) * RTT_WIDTH
    lines = exporter.expose(after, TEXT).decode().splitlines()
    probe_lines = [line for line in lines if line.startswith(PROBE_FAMILIES)]
    assert not [line for line in probe_lines if 't0"' in line]
    t1 = [line for line in probe_lines if 'trunk="t1"' in line]
    bucket = f'trunkwatch_sip_options_rtt_seconds_bucket{{agent="agent-1",le="{RTT_BUCKETS[0]!r}"'
    assert f'{bucket},trunk="t1"}} 1.0' in t1  # t1's 2 ms, kept through the compaction


PROBE_FAMILIES = ("trunkwatch_probe_", "trunkwatch_sip_")


class LoopTurns:
    """Counts the event loop's turns from now on (a callback that schedules itself)."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._loop.call_soon(self._tick)


async def test_label_texts_prepared_in_slices_while_the_loop_runs(
    every_slice: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The monitor builds its exporter after the scheduler has started: the texts of
    # 100,000 trunks (~0.7 s) are made a slice at a time, the probes running between.
    n = every_slice
    src = many_sources(n)
    made: list[tuple[str, str]] = []
    late = Exporter(src, prepare=False)
    make = late._info_texts._make

    def counted(carrier: str, transport: str) -> str:
        made.append((carrier, transport))
        return make(carrier, transport)

    monkeypatch.setattr(late._info_texts, "_make", counted)
    turns = LoopTurns()
    await late.prepare_sliced()
    during = turns.count
    assert len(made) == n  # every trunk's text made once, while the loop went on
    assert during >= 4 * math.ceil(n / SNAPSHOT_SLICE)  # the snapshot's slices and the texts'
    snap = late.snapshot()
    assert late.expose(snap, TEXT) == Exporter(src).expose(snap, TEXT)
    assert len(made) == n  # a scrape reuses the prepared texts


def test_a_trunk_holds_one_label_text_for_all_its_families() -> None:
    # Each line's labels are laid from the trunk's own `trunk="…"} ` and texts shared by
    # many trunks (probe, carrier, transport): a trunk info line and a probe label set of
    # their own per trunk made the prepared texts ~370 bytes a trunk here, now ~130.
    n = 5_000
    src = many_sources(n)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        exporter = Exporter(src)
        per_trunk = (tracemalloc.get_traced_memory()[0] - start) / n
    finally:
        tracemalloc.stop()
    assert per_trunk < 160, per_trunk
    text = exporter.expose(exporter.snapshot(), TEXT)
    assert text == reference(src, TEXT)
    assert len(exporter._shared_labels) == 7 + 1  # 7 carriers on udp, and "options"
    # One text object per trunk in all three columns; no trunk → text map kept beside them.
    columns = (exporter._info_trunks, exporter._stat_trunks, exporter._health_texts)
    first = [c._texts[0] for c in columns]
    assert first[0] is first[1] is first[2] and exporter._trunk_labels is None
    # A reload's new column is remade with the texts made before for the trunks it keeps.
    src.trunks = TrunkInfos.of([*src.trunks, ("t-new", "c", "udp")])
    text = exporter.expose(exporter.snapshot(), TEXT)
    assert text == reference(src, TEXT) and 'trunk="t-new"} ' in exporter._info_trunks._texts
    assert exporter._info_trunks._texts[0] is first[0] and exporter._trunk_labels is None


async def test_a_new_scrape_keeps_short_steps_however_busy_the_loop() -> None:
    loop = asyncio.get_running_loop()
    pacer = pacing.Pacer()
    assert pacer.budget == pacing.STEP_S
    loop.call_soon(time.sleep, 0.006)  # the rest of the loop's iteration takes 6 ms
    await pacer.hand_back()
    assert pacer.budget == pacing.STEP_S  # the probes first: their lateness is the step's
    await asyncio.sleep(pacer.budget)
    assert pacer.due()


async def test_a_slow_scrape_steps_grow_with_a_busy_loop_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pacing, "SLOW_AFTER_S", 0.0)  # a scrape past its first seconds
    loop = asyncio.get_running_loop()
    pacer = pacing.Pacer()
    assert pacer.budget == pacing.STEP_S
    loop.call_soon(time.sleep, 0.006)
    await pacer.hand_back()
    assert 0.006 <= pacer.budget <= pacing.MAX_STEP_S
    assert not pacer.due()  # a step of ~6 ms has just begun
    loop.call_soon(time.sleep, 0.030)
    await pacer.hand_back()
    assert pacer.budget == pacing.MAX_STEP_S
    await pacer.hand_back()  # an idle loop: back to short steps
    assert pacer.budget < 0.006
    await asyncio.sleep(pacer.budget)
    assert pacer.due()


# ---- the HTTP endpoint ----------------------------------------------------------------------


@pytest.fixture
def exporter() -> Exporter:
    return Exporter(rich_sources())


@pytest.fixture
async def client(aiohttp_client: ClientFactory, exporter: Exporter) -> Client:
    # auto_decompress off: the test sees the bytes on the wire.
    return await aiohttp_client(make_app(exporter, lambda: True), auto_decompress=False)


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [("", TEXT), ("application/openmetrics-text; version=1.0.0", OPENMETRICS)],
)
async def test_gzip_when_asked(
    client: Client, exporter: Exporter, accept: str, fmt: ExpositionFormat
) -> None:
    r = await client.get("/metrics", headers={"Accept": accept, "Accept-Encoding": "gzip"})
    assert r.status == 200
    assert r.headers["Content-Type"] == fmt.content_type
    assert r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["Vary"]
    raw = await r.read()
    assert raw[:2] == b"\x1f\x8b"  # gzip magic (RFC 1952 §2.3.1)
    assert gzip.decompress(raw) == exporter.expose(exporter.snapshot(), fmt)


@pytest.mark.parametrize("encoding", ["identity", "gzip;q=0", "br"])
async def test_plain_when_gzip_not_accepted(
    client: Client, exporter: Exporter, encoding: str
) -> None:
    r = await client.get("/metrics", headers={"Accept-Encoding": encoding})
    assert r.status == 200
    assert "Content-Encoding" not in r.headers
    assert await r.read() == exporter.expose(exporter.snapshot(), TEXT)


async def test_each_scrape_hands_its_freed_pages_back(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glibc keeps a scrape's freed buffers resident until the next scrape (~15 MB at
    # 100,000 trunks): each scrape asks for malloc_trim, on its thread, once it is written.
    trims = threading.Semaphore(0)
    real_trim = heap.trim
    monkeypatch.setattr(heap, "trim", lambda: (real_trim(), trims.release())[0])
    for _ in range(2):
        r = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert r.status == 200
        await r.read()
        assert await asyncio.to_thread(trims.acquire, timeout=5)
    assert not trims.acquire(blocking=False)  # one trim a scrape, not more


async def test_scrape_yields_to_the_loop_while_writing(
    aiohttp_client: ClientFactory, every_slice: int
) -> None:
    # Steps of no time (every_slice): a hand-back is due after every piece. With the real
    # 2 ms steps a fast machine writes several pieces a step (this once saw 16 turns for
    # 27 pieces), which is right, but not what this counts.
    exporter = Exporter(many_sources(2000))
    client = await aiohttp_client(make_app(exporter, lambda: True))
    pieces = sum(1 for _ in exporter.render(exporter.snapshot(), TEXT))
    ticks = 0
    loop = asyncio.get_running_loop()
    running = True

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if running:
            loop.call_soon(tick)

    loop.call_soon(tick)
    r = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    body = await r.read()  # decompressed by the client
    running = False
    assert body == exporter.expose(exporter.snapshot(), TEXT)
    # Every piece of output and every snapshot slice gave the loop a turn.
    assert ticks >= pieces


async def test_health_endpoints(aiohttp_client: ClientFactory, exporter: Exporter) -> None:
    ready = False
    client = await aiohttp_client(make_app(exporter, lambda: ready))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 503
    ready = True
    assert (await client.get("/readyz")).status == 200


@pytest.mark.parametrize("fmt", [TEXT, OPENMETRICS])
def test_runtime_collectors_go_through_the_same_writer_and_parse_as_prometheus_clients(
    fmt: ExpositionFormat,
) -> None:
    registry = runtime_registry()
    ours = collector_text(registry, fmt)
    if fmt is TEXT:
        theirs = generate_latest(registry).decode()
        parse: Callable[[str], Iterable[Metric]] = parse_text
    else:
        theirs = generate_openmetrics(registry).decode()  # type: ignore[no-untyped-call]
        parse = parse_openmetrics
        ours += "# EOF\n"

    def shape(text: str) -> list[tuple[str, str, list[tuple[str, tuple[str, ...]]]]]:
        # Names, types and label sets: values (CPU seconds, GC counts) move between calls.
        return sorted(
            (m.name, m.type, sorted((s.name, tuple(sorted(s.labels))) for s in m.samples))
            for m in parse(text)
        )

    assert shape(ours) == shape(theirs)
    assert "process_cpu_seconds_total" in ours


def test_every_per_trunk_series_carries_the_agent() -> None:
    """Two agents scraped by one Prometheus: the same trunk's series stay apart by `agent`."""
    bodies = {}
    for agent in ("agent-1", "agent-2"):
        src = rich_sources()
        src.agent = agent
        exporter = Exporter(src)
        bodies[agent] = exporter.expose(exporter.snapshot(), TEXT).decode()
    per_trunk = [
        line
        for line in bodies["agent-2"].splitlines()
        if 'trunk="' in line and not line.startswith("#")
    ]
    assert len(per_trunk) > 100
    assert all(line.startswith(f'{line.split("{")[0]}{{agent="agent-2",') for line in per_trunk)
    assert (
        'trunkwatch_trunk_state{agent="agent-2",state="down",trunk="trunk-1"} 1.0'
        in bodies["agent-2"]
    )
    assert (
        'trunkwatch_trunk_state{agent="agent-1",state="down",trunk="trunk-1"} 1.0'
        in bodies["agent-1"]
    )
    families = {f.name for f in parse_text(bodies["agent-2"])}
    labelled = {
        f.name
        for f in parse_text(bodies["agent-2"])
        for sample in f.samples
        if sample.labels.get("agent") == "agent-2"
    }
    expected = {"trunk_state", "probe_success", "sip_options_rtt_seconds", "probe_outcome",
                "outage_open", "outages_opened", "trunk_info"}  # fmt: skip
    assert {f"trunkwatch_{name}" for name in expected} <= labelled <= families
