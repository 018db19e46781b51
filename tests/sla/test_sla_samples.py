"""Probe samples around transitions and test-call figures: stored, reported, in the bundle."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sla_world import NOW, worked_example
from sqlalchemy import select

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState
from monitor.sla.evidence import export_bundle, verify_bundle
from monitor.sla.reports import make_report, render_csv, render_html, render_json
from monitor.sla.reports.i18n import t
from monitor.sla.reports.quality import PERCENTILES, percentile, quality_of
from monitor.sla.service import SlaContext
from monitor.store import Store
from monitor.store import samples as samples_module
from monitor.store.samples import CallSample, ProbeSample, insert_samples, query_probe_samples
from monitor.store.schema import probe_samples
from monitor.transition_samples import TransitionSampler, sample_rows
from probes.instants import utc_from_ns
from probes.responder import ResponderMode, SipResponder
from probes.result import Outcome

INTERVAL = 0.05
RING = 30


@pytest.fixture
async def responder() -> AsyncIterator[SipResponder]:
    resp = SipResponder("127.0.0.1", 0)
    await resp.start()
    try:
        yield resp
    finally:
        await resp.stop()


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_sampler_keeps_ring_before_and_results_after() -> None:
    sampler = TransitionSampler("a", ring=3, after=2)
    base = 1_700_000_000 * 10**9
    for i in range(5):
        assert sampler.record("t", (base + i * 10**9, "ok", 1_000_000 * (i + 1), 200)) is None
    at = datetime.fromtimestamp(1_700_000_004, UTC)
    before = sample_rows(sampler.transition("t", "trunk_state", at))
    # Only the last 3 (the ring), oldest first, each tagged with the transition.
    assert [s.at for s in before] == [
        datetime.fromtimestamp(1_700_000_000 + i, UTC) for i in (2, 3, 4)
    ]
    assert {(s.transition_kind, s.transition_at) for s in before} == {("trunk_state", at)}
    assert before[-1].rtt_s == pytest.approx(0.005)
    assert sampler.record("t", (base + 5 * 10**9, "timeout", None, None)) is None
    done = sampler.record("t", (base + 6 * 10**9, "ok", 2_000_000, 200))
    assert done is not None
    after = sample_rows(done)
    assert [(s.outcome, s.rtt_s) for s in after] == [("timeout", None), ("ok", 0.002)]
    assert {(s.transition_kind, s.transition_at) for s in after} == {("trunk_state", at)}
    # The capture is complete: further results are not kept, nothing is left to drain.
    assert sampler.record("t", (base + 7 * 10**9, "ok", 1, 200)) is None
    assert sampler.drain() == []


def test_overlapping_captures_each_get_the_results_after_their_own_transition() -> None:
    """The results after a transition are read from the ring when the capture completes
    (no copy per capture): two transitions close together each get their own, a removed
    trunk and a shutdown give what was gathered, and a split run keeps its rows."""
    sampler = TransitionSampler("a", ring=5, after=3)
    at_a, at_b = (datetime.fromtimestamp(1_700_000_000 + s, UTC) for s in (4, 5))

    def rec(trunk: str, n: int) -> list[tuple[str, datetime, float]] | None:
        """Record result n (sent at second n); the (kind, transition, second) rows done."""
        done = sampler.record(trunk, (n * 10**9, "ok", n, 200))
        if done is None:
            return None
        return [(r.transition_kind, r.transition_at, r.at.timestamp()) for r in sample_rows(done)]

    for n in range(5):
        assert rec("t", n) is None
    sampler.transition("t", "outage_opened", at_a)
    assert rec("t", 5) is None
    sampler.transition("t", "outage_closed", at_b)
    assert rec("t", 6) is None
    assert rec("t", 7) == [("outage_opened", at_a, n) for n in (5, 6, 7)]
    assert rec("t", 8) == [("outage_closed", at_b, n) for n in (6, 7, 8)]
    # Removed or stopped part-way: the results gathered so far.
    sampler.record("u", (1, "ok", 1, 200))
    sampler.transition("u", "outage_opened", at_a)
    sampler.transition("v", "outage_opened", at_a)  # never reported: nothing to keep
    sampler.record("u", (2, "timeout", None, None))
    (gone,) = sampler.forget("u")
    assert [(r.outcome, r.rtt_s, r.status) for r in gone.rows()] == [("timeout", None, None)]
    assert sampler.forget("u") == []
    sampler.transition("t", "trunk_state", at_b)
    rec("t", 9)
    rec("t", 10)
    (partial,) = sampler.drain()
    assert [r.at for r in partial.rows()] == [utc_from_ns(9 * 10**9), utc_from_ns(10 * 10**9)]
    assert sampler.drain() == []
    head, rest = partial.split(1)
    assert head.rows() + rest.rows() == partial.rows() and len(head) == len(rest) == 1
    with pytest.raises(ValueError, match="after"):
        TransitionSampler("a", ring=2, after=3)


def test_the_results_after_a_transition_are_handed_out_a_chunk_at_a_time() -> None:
    """A stop (or a crash) leaves fewer than a chunk of each open capture unwritten."""
    sampler = TransitionSampler("a", ring=8, after=7, chunk=3)
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    sampler.record("t", (0, "ok", 1, 200))
    sampler.transition("t", "outage_opened", at)
    handed: list[list[float]] = []
    for n in range(1, 10):
        done = sampler.record("t", (n * 10**9, "timeout", None, None))
        if done is not None:
            handed.append([r.at.timestamp() for r in sample_rows(done)])
    assert handed == [[1, 2, 3], [4, 5, 6], [7]]  # 7 after it: two chunks and the rest
    sampler.transition("t", "outage_closed", at)
    for n in range(10, 15):
        sampler.record("t", (n * 10**9, "ok", n, 200))
    (left,) = sampler.drain()  # 10-12 went as a chunk: only 13 and 14 are left
    assert [r.at.timestamp() for r in left.rows()] == [13, 14]


def test_rings_of_many_trunks_stay_apart_and_forgotten_slots_are_reused() -> None:
    """The rings share arrays (struct-of-arrays): 3,000 trunks (three growths of the
    arrays), each with its own wrapped ring; a forgotten trunk's slot starts empty."""
    sampler = TransitionSampler("a", ring=4, after=1)
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    for n in range(6):  # six results each: the rings wrap
        for k in range(3000):
            status = 200 + (k + n) % 400
            sampler.record(f"t{k}", (k * 1000 + n, "ok" if n % 2 else "timeout", n or None, status))
    for k in (0, 1023, 1024, 2999):
        rows = sample_rows(sampler.transition(f"t{k}", "outage_opened", at))
        assert [r.at for r in rows] == [utc_from_ns(k * 1000 + n) for n in (2, 3, 4, 5)]
        assert [r.outcome for r in rows] == ["timeout", "ok", "timeout", "ok"]
        assert [r.status for r in rows] == [200 + (k + n) % 400 for n in (2, 3, 4, 5)]
        assert [r.rtt_s for r in rows] == [n / 1e9 for n in (2, 3, 4, 5)]
    assert sampler.forget("t5") == []
    sampler.record("new", (42, "refused", None, None))  # takes the slot t5 left
    (row,) = sample_rows(sampler.transition("new", "outage_opened", at))
    assert (row.at, row.outcome, row.rtt_s, row.status) == (utc_from_ns(42), "refused", None, None)
    assert sampler.transition("never", "outage_opened", at) == []


_RESULT = st.tuples(
    st.integers(0, 2**62),
    st.sampled_from([o.value for o in Outcome]),
    # RTTs and statuses past the ring's 32 and 10 bits too: those are kept beside it.
    st.none() | st.integers(0, 2**40) | st.sampled_from([0, 2**32 - 2, 2**32 - 1, 2**32]),
    st.none() | st.integers(0, 2000),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.none() | _RESULT), min_size=1, max_size=60
    ),
    st.integers(1, 5),
)
def test_compact_rings_give_back_exactly_what_was_recorded(
    steps: list[tuple[str, tuple[int, str, int | None, int | None] | None]], size: int
) -> None:
    """The ring packs an RTT in 32 bits and outcome with status in 16; every result comes
    back as it went in, the wide ones included, also across a forgotten trunk's slot."""
    sampler = TransitionSampler("a", ring=size, after=size)
    kept: dict[str, list[tuple[int, str, int | None, int | None]]] = {}
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    for trunk, raw in steps:
        if raw is None:  # a reload removed the trunk: its ring starts again
            sampler.forget(trunk)
            kept.pop(trunk, None)
            continue
        sampler.record(trunk, raw)
        kept.setdefault(trunk, []).append(raw)
    for trunk, results in kept.items():
        rows = sample_rows(sampler.transition(trunk, "outage_opened", at))
        expected = [
            (utc_from_ns(sent), outcome, None if rtt is None else rtt / 1e9, status or None)
            for sent, outcome, rtt, status in results[-size:]
        ]
        assert [(r.at, r.outcome, r.rtt_s, r.status) for r in rows] == expected
        sampler.forget(trunk)
    assert not sampler._rings.wide and not sampler._rings.far  # gone with their slots


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(2**33), 2**33), min_size=1, max_size=40),
    st.integers(1, 6),
    st.integers(0, 2**61),
)
def test_sent_instants_come_back_across_the_rings_32_bit_window(
    steps_us: list[int], size: int, start_ns: int
) -> None:
    """Sent instants are kept as 32-bit µs past a base per trunk (71 minutes): results hours
    apart, or with the wall clock stepped back, still come back to the microsecond."""
    sampler = TransitionSampler("a", ring=size, after=size)
    sent, now = [], start_ns
    for step in steps_us:
        now = max(0, now + step * 1000 + step % 997)  # and a few ns beside the microsecond
        sampler.record("t", (now, "ok", 1, 200))
        sent.append(now)
    rows = sample_rows(sampler.transition("t", "outage_opened", datetime.now(UTC)))
    assert [r.at for r in rows] == [utc_from_ns(ns) for ns in sent[-size:]]


def test_utc_from_ns_rounds_to_the_nearest_microsecond_exactly() -> None:
    base = 1_764_950_000 * 10**9
    assert (
        utc_from_ns(base + 499) == utc_from_ns(base) == datetime.fromtimestamp(1_764_950_000, UTC)
    )
    assert utc_from_ns(base + 500) == utc_from_ns(base + 1_499) == utc_from_ns(base + 1000)
    assert (utc_from_ns(base + 1000) - utc_from_ns(base)).microseconds == 1
    # Where a float of seconds is ~1 µs apart (year 2116), the integer path is still exact.
    late = 2**62 - 2**62 % 1000
    assert utc_from_ns(late) - utc_from_ns(late - 1000) == timedelta(microseconds=1)


async def test_monitor_persists_samples_around_an_outage(
    responder: SipResponder, tmp_path: Path
) -> None:
    db = tmp_path / "tw.db"
    config = config_from_text(
        f"""
agent: samples
store: {{url: "sqlite:///{db}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: {INTERVAL}, timeout: 0.04, down_after: 3, up_after: 2}}
trunks:
  - name: resp
    carrier: local
    uri: "sip:127.0.0.1:{responder.port}"
""",
        source="<samples>",
    )
    monitor = Monitor(config)
    await monitor.start()
    try:
        health = monitor.health["resp"]
        await wait_for(lambda: health.state is TrunkState.UP, 5, "trunk up")
        responder.mode = ResponderMode.SILENT
        await wait_for(lambda: health.state is TrunkState.DOWN, 5, "trunk down")
        down_at = datetime.now(UTC)
        responder.mode = ResponderMode.NORMAL
        await wait_for(lambda: health.state is TrunkState.UP, 5, "trunk up again")
        # 30 results after the recovery complete its capture and get written.
        await asyncio.sleep(INTERVAL * (RING + 8))
    finally:
        await monitor.stop()

    store = await Store.open(f"sqlite:///{db}", agent="samples")
    try:
        start = down_at - timedelta(hours=1)
        samples = await query_probe_samples(store.engine, start, datetime.now(UTC))
        async with store.engine.connect() as conn:
            total = len((await conn.execute(select(probe_samples.c.id))).all())
    finally:
        await store.close()
    assert total == len(samples)
    kinds = {s.transition_kind for s in samples}
    assert {"outage_opened", "outage_closed"} == kinds  # not the start-up UNKNOWN -> UP
    opened = [s for s in samples if s.transition_kind == "outage_opened"]
    transition_at = opened[0].transition_at
    before = [s for s in opened if s.at <= transition_at]
    after = [s for s in opened if s.at > transition_at]
    # The failures that opened it are among the samples before; the recovery after.
    assert [s.outcome for s in before[-3:]] == ["timeout"] * 3
    assert before[-1].rtt_s is None
    assert 3 <= len(before) <= RING
    assert len(after) == RING
    assert any(s.outcome == "ok" and s.rtt_s is not None and s.status == 200 for s in after)
    closed = [s for s in samples if s.transition_kind == "outage_closed"]
    assert [s.outcome for s in closed if s.at <= closed[0].transition_at][-2:] == ["ok", "ok"]


# ---- percentiles, report, bundle --------------------------------------------------------

LATENCY_LIMIT = 0.050


def call(
    i: int, latency: float, *, trunk: str = "sbc-mx-1", at: datetime | None = None
) -> CallSample:
    return CallSample(
        agent="agent-1",
        trunk=trunk,
        at=at or datetime(2026, 10, 10, tzinfo=UTC) + timedelta(minutes=5 * i),
        outcome="ok",
        mos=4.3,
        rx_jitter_s=0.001 * i,
        tx_jitter_s=0.002 * i,  # the worse direction: what the report shows
        loss_ratio=0.0,
        burst_loss_ratio=None,  # never measured: no percentiles
        rtt_s=2 * latency,
        one_way_latency_s=latency,
        violations=(),
        profile="client_to_edge",
        limits={"one_way_latency": LATENCY_LIMIT, "rtt": 0.1, "jitter": 0.03, "loss": 0.01},
        rtt_source="rtp_echo",
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # nearest rank: the ceil(p/100 × n)-th smallest value
        ([0.3, 0.1, 0.2], (0.2, 0.3, 0.3, 0.3)),
        ([5.0], (5.0, 5.0, 5.0, 5.0)),
        ([float(v) for v in range(100, 0, -1)], (50.0, 95.0, 99.0, 100.0)),
        ([float(v) for v in range(1, 201)], (100.0, 190.0, 198.0, 200.0)),
    ],
)
def test_percentiles_nearest_rank(values: list[float], expected: tuple[float, ...]) -> None:
    ordered = sorted(values)
    assert (*(percentile(ordered, p) for p in PERCENTILES), ordered[-1]) == expected


def test_quality_of_known_rows() -> None:
    # 100 calls, latencies 1..100 ms in scrambled order; one call of another trunk.
    order = [(i * 37) % 100 + 1 for i in range(100)]
    calls = [call(n, ms / 1000) for n, ms in enumerate(order)]
    calls.append(call(0, 9.0, trunk="other"))
    at = datetime(2026, 10, 10, tzinfo=UTC)
    probes = [
        ProbeSample(
            "a", "sbc-mx-1", "trunk_state", at, at + timedelta(seconds=i), "ok", i / 100, 200
        )
        for i in range(1, 11)
    ]
    # The same result kept for a second transition counts once; failures have no RTT.
    probes += [replace(p, transition_kind="outage_opened") for p in probes[:5]]
    probes.append(replace(probes[0], at=at + timedelta(minutes=1), outcome="timeout", rtt_s=None))
    (q,) = quality_of(["sbc-mx-1", "idle"], calls, probes)
    assert (q.trunk, q.profile, q.calls, q.options_samples) == (
        "sbc-mx-1",
        "client_to_edge",
        100,
        10,
    )
    by = {m.metric: m for m in q.metrics}
    assert set(by) == {"one_way_latency", "rtt", "jitter", "loss", "options_rtt"}
    lat = by["one_way_latency"]
    assert (lat.p50, lat.p95, lat.p99, lat.max) == (0.050, 0.095, 0.099, 0.100)
    assert lat.limit == LATENCY_LIMIT and lat.samples == 100
    assert by["rtt"].p95 == pytest.approx(0.190) and by["rtt"].limit == 0.1
    assert by["jitter"].max == pytest.approx(0.002 * 99)  # tx, the worse direction
    assert by["loss"].max == 0.0
    opt = by["options_rtt"]
    assert (opt.samples, opt.p50, opt.max, opt.limit) == (10, 0.05, 0.10, None)


async def _world_with_samples(tmp_path: Path) -> tuple[Store, SlaContext]:
    store, ctx = await worked_example(tmp_path)
    calls = [call(n, ms / 1000) for n, ms in enumerate(range(1, 21))]
    # Outside October in the contract's zone (Mexico City): not this month's.
    calls.append(call(99, 5.0, at=datetime(2026, 10, 1, 5, 59, tzinfo=UTC)))
    at = datetime(2026, 10, 3, 20, 0, tzinfo=UTC)
    # 3 timeouts just before the transition, 5 answers (40..80 ms) before them.
    probes = [
        ProbeSample("agent-1", "sbc-mx-1", "outage_opened", at, at - timedelta(seconds=i),
                    "ok" if i > 3 else "timeout", 0.01 * i if i > 3 else None,
                    200 if i > 3 else None)
        for i in range(1, 9)
    ]  # fmt: skip
    await insert_samples(store.engine, probes, calls)
    return store, ctx


async def test_report_json_and_csv_carry_percentiles(tmp_path: Path) -> None:
    store, ctx = await _world_with_samples(tmp_path)
    try:
        report = await make_report(ctx, "voice-mx", "2026-10", NOW, lang="en")
    finally:
        await store.close()
    quality = json.loads(render_json(report))["quality"]
    assert quality["available"] is True
    (trunk,) = quality["trunks"]
    assert (trunk["trunk"], trunk["calls"], trunk["options_samples"]) == ("sbc-mx-1", 20, 5)
    lat = trunk["metrics"]["one_way_latency"]
    # 1..20 ms: nearest-rank p50 = 10th, p95 = 19th, p99 = 20th.
    assert lat == {
        "unit": "s", "samples": 20, "p50": "0.010000", "p95": "0.019000", "p99": "0.020000",
        "max": "0.020000", "limit": "0.050000",
    }  # fmt: skip
    assert trunk["metrics"]["options_rtt"]["max"] == "0.080000"
    assert quality["samples"] == 25
    rows = list(csv.DictReader(io.StringIO(render_csv(report).decode())))
    assert all(json.loads(r["quality"]) == quality["trunks"] for r in rows)
    html = render_html(report).decode()
    assert "One-way latency" in html and "19.0 ms" in html and "50.0 ms" in html
    assert t("quality_missing", "en") not in html


async def test_report_without_samples_says_so(tmp_path: Path) -> None:
    store, ctx = await worked_example(tmp_path)
    try:
        report = await make_report(ctx, "voice-mx", "2026-10", NOW, lang="es")
    finally:
        await store.close()
    assert json.loads(render_json(report))["quality"] == {
        "available": False, "samples": 0, "trunks": [],
    }  # fmt: skip
    assert escape(t("quality_missing", "es")) in render_html(report).decode()


async def test_bundle_carries_samples_and_names_a_flipped_byte(tmp_path: Path) -> None:
    store, ctx = await _world_with_samples(tmp_path)
    try:
        bundle = await export_bundle(
            ctx, "2026-10", tmp_path / "bundle", NOW, key_path=ctx.settings.signing_key_file,
            include_pdf=False,
        )  # fmt: skip
    finally:
        await store.close()
    result = verify_bundle(bundle)
    assert result.ok, result.problems
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert not any(m.startswith(("probe_samples", "media_quality")) for m in manifest["missing"])
    for name in ("probe_samples", "call_samples"):
        for ext in ("csv", "json"):
            assert f"records/{name}.{ext}" in manifest["files"]
    calls = json.loads((bundle / "records/call_samples.json").read_text())
    assert len(calls) == 20 and {c["trunk"] for c in calls} == {"sbc-mx-1"}
    assert calls[0]["limits"]["one_way_latency"] == LATENCY_LIMIT
    assert calls[0]["rtt_source"] == "rtp_echo"  # stored, read back and carried as evidence
    probes = list(csv.DictReader(io.StringIO((bundle / "records/probe_samples.csv").read_text())))
    assert len(probes) == 8 and {p["transition_kind"] for p in probes} == {"outage_opened"}

    path = bundle / "records/call_samples.csv"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify_bundle(bundle).problems
    assert any(p.startswith("records/call_samples.csv") for p in problems), problems
    assert not any("probe_samples" in p for p in problems)


def test_insert_parameters_are_every_field_of_a_sample_uncopied() -> None:
    """The insert's rows carry what `dataclasses.asdict` gave (every field, same values)
    without its deep copies (80 % of a mass outage's insert time on the loop)."""
    at = datetime(2026, 12, 4, 12, tzinfo=UTC)
    probe = ProbeSample("a", "t1", "outage_opened", at, at, "timeout", None, 503)
    call = CallSample(
        "a", "t1", at, "ok", 4.2, 0.01, 0.02, 0.0, 0.0, 0.05, 0.025,
        ("jitter",), "lan", {"jitter": 0.03}, "rtcp",
    )  # fmt: skip
    for sample in (probe, call):
        row = samples_module._row(sample)
        assert row == dataclasses.asdict(sample)
        assert all(row[name] is getattr(sample, name) for name in row)
    iso = at.isoformat()
    assert probe.to_dict() == {**dataclasses.asdict(probe), "transition_at": iso, "at": iso}
    exported = call.to_dict()
    assert exported == {**dataclasses.asdict(call), "at": iso, "violations": ["jitter"]}
    assert exported["limits"] is not call.limits  # the caller may change its copy
