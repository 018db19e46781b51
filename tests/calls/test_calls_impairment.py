"""Impaired calls through the seeded relay: the probe's figures against the relay's own log.

Caller (the pool) and callee (the responder, echoing) each advertise a loopback alias in SDP,
the relay sits on the aliases (tests/calls/relay.py). All settings run at once, each with its
own aliases, ports and processes; calls last 11 s so RTCP has produced an RTT (notes/pjsua2.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from callpeers import alias, call_pool, call_responder
from relay import Burst, DirectionTruth, Impairment, Relay

from probes.call import CallSettings, call_result
from probes.media.thresholds import CLIENT_TO_EDGE, Metric
from probes.pjsua.pool import RTP_PORTS_PER_WORKER
from probes.pjsua.protocol import CallReport
from probes.result import Outcome, ProbeResult

pytestmark = pytest.mark.peers

CALL_S = 11.0
LOSS_TOLERANCE = 0.01  # ±1 percentage point
JITTER_TOLERANCE_S = 0.002
RTT_TOLERANCE_S = 0.003
CALLER_LATENESS_MAX_S = 0.05  # scheduling lateness of one pjsua process on the loaded machine


@dataclass(frozen=True)
class Setting:
    name: str
    a2b: Impairment  # caller -> callee
    b2a: Impairment  # callee -> caller (what the probe receives)
    responder_tx_drop_pct: int = 0  # pjmedia's own loss injection, the second loss source
    # With reordering, pjsua computes jitter only over in-sequence packets while RFC 3550
    # A.8 (the truth) takes every packet in arrival order: not comparable.
    compare_jitter: bool = True


def both(imp: Impairment) -> tuple[Impairment, Impairment]:
    return imp, imp


SETTINGS = [
    Setting("delay20-jitter20-loss2", *both(Impairment(delay_s=0.02, jitter_s=0.02, loss=0.02))),
    Setting("delay40-jitter10-loss5", *both(Impairment(delay_s=0.04, jitter_s=0.01, loss=0.05))),
    Setting("delay15-pjmedia-drop3", *both(Impairment(delay_s=0.015)), responder_tx_drop_pct=3),
    Setting(
        "burst30-in-200ms",
        Impairment(delay_s=0.005),
        Impairment(delay_s=0.005, bursts=(Burst(start_s=4.0, duration_s=0.2, loss=0.3),)),
    ),
    Setting(
        "reorder-duplicate",
        *both(Impairment(delay_s=0.01, jitter_s=0.04, reorder=0.02, duplicate=0.01)),
        compare_jitter=False,
    ),
    Setting("clean", *both(Impairment(delay_s=0.005))),
]


@dataclass
class Run:
    setting: Setting
    result: ProbeResult
    incoming: CallReport
    report: CallReport  # the caller's own worker report, which the result was made from
    rx_truth: DirectionTruth  # b2a, what the probe received
    tx_truth: DirectionTruth  # a2b, what the responder received
    rtcp_trips_ns: list[int]  # per report block the caller received, its round trip on the wire


async def run_setting(index: int, setting: Setting) -> Run:
    caller_alias, callee_alias = alias(20 + 2 * index), alias(21 + 2 * index)
    async with (
        call_pool(max_calls=1, media_public_address=caller_alias) as pool,
        call_responder(
            media_public_address=callee_alias, tx_drop_pct=setting.responder_tx_drop_pct
        ) as responder,
    ):
        caller_ports = pool.settings.rtp_ports(0)
        assert len(caller_ports) == RTP_PORTS_PER_WORKER
        callee = responder.settings
        relay = Relay(
            caller_alias=caller_alias,
            callee_alias=callee_alias,
            caller_ports=caller_ports,
            callee_ports=range(callee.rtp_port, callee.rtp_port + callee.rtp_port_range),
            a2b=setting.a2b,
            b2a=setting.b2a,
            seed=index + 1,
        )
        with relay:
            # What CallProbe does, keeping the worker's report for the per-report RTT check.
            settings = CallSettings(
                trunk=setting.name, uri=responder.uri, max_call_s=CALL_S, profile=CLIENT_TO_EDGE
            )
            start_ns = time.monotonic_ns()
            report = await pool.call(settings.command())
            result = call_result(
                settings,
                report,
                started_wall_ns=time.time_ns(),
                duration_ns=time.monotonic_ns() - start_ns,
            )
            [incoming] = await responder.wait_calls(1, timeout_s=5)
        return Run(
            setting,
            result,
            incoming,
            report,
            relay.truth("b2a", CLIENT_TO_EDGE.windows),
            relay.truth("a2b"),
            relay.rtcp_round_trips_ns(),
        )


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """All settings, concurrently (each call is 11 s; together they take ~13 s)."""

    async def all_settings() -> list[Run]:
        return await asyncio.gather(*(run_setting(i, s) for i, s in enumerate(SETTINGS)))

    return {run.setting.name: run for run in asyncio.run(all_settings())}


@pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.name != "burst30-in-200ms"])
def test_impaired_calls_still_succeed(runs: dict[str, Run], name: str) -> None:
    result = runs[name].result
    assert result.outcome is Outcome.OK, result


LOSS_SETTINGS = [s.name for s in SETTINGS if s.name != "reorder-duplicate"]


@pytest.mark.parametrize("name", LOSS_SETTINGS)
def test_loss_in_both_directions_matches_the_relay(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    m = run.result.call
    assert m is not None and m.rx is not None and m.rx.loss_ratio is not None
    truth = run.rx_truth
    # Sequence-number loss at the relay's delivery covers both loss sources (relay, pjmedia).
    assert abs(m.rx.loss_ratio - truth.quality.loss_ratio) <= LOSS_TOLERANCE, (m.rx, truth)
    if not run.setting.responder_tx_drop_pct:
        assert abs(m.rx.loss_ratio - truth.injected_loss_ratio) <= LOSS_TOLERANCE
    # The other direction, as the responder measured it.
    last = run.incoming.samples[-1]
    measured = last.rx_lost / (last.rx_packets + last.rx_lost)
    assert abs(measured - run.tx_truth.injected_loss_ratio) <= LOSS_TOLERANCE


def test_the_pjmedia_drop_is_a_real_second_loss_source(runs: dict[str, Run]) -> None:
    run = runs["delay15-pjmedia-drop3"]
    assert run.rx_truth.dropped == 0  # the relay dropped nothing...
    assert run.rx_truth.quality.loss_ratio > 0.01  # ...yet ~3 % never reached it
    assert run.result.call is not None and run.result.call.rx is not None
    # Within two packets: the relay also saw what came after the probe's last sample (one
    # packet usually; two once, with other test runs loading the 2-core machine).
    assert abs(run.result.call.rx.lost - run.rx_truth.quality.lost) <= 2  # type: ignore[operator]


@pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.compare_jitter])
def test_jitter_matches_rfc3550_from_the_relay_log(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    m = run.result.call
    assert m is not None and m.rx is not None
    assert m.rx.jitter_mean_s is not None and m.rx.jitter_worst_s is not None
    truth = run.rx_truth
    assert truth.quality.worst_jitter_s is not None
    assert abs(m.rx.jitter_mean_s - truth.jitter_mean_s) <= JITTER_TOLERANCE_S, (m.rx, truth)
    assert abs(m.rx.jitter_worst_s - truth.quality.worst_jitter_s) <= JITTER_TOLERANCE_S


def pjmedia_rtt_resolution_s(rtt_us: int) -> float:
    """How far below the wire pjmedia's RTT may read: its NTP arithmetic is in 1/65536 s (a few
    truncations of ~15 µs), and from 4294/65536 s (~65.5 ms) up it truncates to whole ms."""
    return 0.001 if rtt_us >= 65_000 else 0.0001


def rtcp_rtts_us(report: CallReport) -> list[int]:
    """pjmedia's RTT of each receiver report it processed, in order, from the 10 Hz samples."""
    rtts, seen = [], 0
    for s in report.samples:
        # Reports come ~5 s apart: two within one 100 ms sample would hide the first.
        assert s.rtt_samples - seen <= 1, report.samples
        if s.rtt_samples > seen:
            rtts.append(s.rtt_last_us)
            seen = s.rtt_samples
    return rtts


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_rtcp_rtt_is_twice_the_injected_delay(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    m = run.result.call
    assert m is not None and m.rtt_s is not None and m.rtt_samples >= 1
    # The probe's RTT is pjmedia's mean over the reports it processed.
    rtts = rtcp_rtts_us(run.report)
    assert len(rtts) == m.rtt_samples
    assert m.rtt_s == pytest.approx(sum(rtts) / len(rtts) / 1e6, abs=1e-6)
    assert m.one_way_latency_s == pytest.approx(m.rtt_s / 2)
    # Each against its exchange as timed on the wire: the first rtt_samples reports the relay
    # delivered (later ones came with the hang-up). A late relay thread (~5 ms) or a late callee
    # (~18 ms once, on the loaded 2-core machine) is in both. The caller's own lateness, between
    # stamping its SR and handling the RR, only pjmedia sees: it only ever adds, and reached
    # ~15 ms on one report in a full CI run, so it is bounded per report by the smallest
    # difference, not by the mean.
    injected = run.setting.a2b.delay_s + run.setting.b2a.delay_s
    trips = run.rtcp_trips_ns[: m.rtt_samples]
    assert len(trips) == m.rtt_samples, (run.rtcp_trips_ns, m.rtt_samples)
    assert min(trips) / 1e9 >= injected, (trips, injected)  # the relay never delivers early
    excess_s = [rtt / 1e6 - trip / 1e9 for rtt, trip in zip(rtts, trips, strict=True)]
    for rtt, excess in zip(rtts, excess_s, strict=True):
        assert excess >= -pjmedia_rtt_resolution_s(rtt), (rtts, trips)
    assert min(excess_s) <= RTT_TOLERANCE_S, (rtts, trips)
    assert max(excess_s) <= CALLER_LATENESS_MAX_S, (rtts, trips)


def test_a_30_percent_burst_over_200ms_trips_the_burst_rule(runs: dict[str, Run]) -> None:
    run = runs["burst30-in-200ms"]
    # The relay drops 3 in 10 of the packets that reach it inside the 200 ms window; on a
    # loaded machine packets arrive bunched and the window holds fewer of them, so its own
    # record of the worst 200 ms shows 0.2-0.4 (measured: 0.3, and 0.2 under a full CI run).
    truth = run.rx_truth.quality.worst_burst_loss_ratio
    assert truth is not None and 0.2 <= truth <= 0.4, truth
    m = run.result.call
    assert m is not None
    metrics = {v.metric for v in m.violations}
    assert Metric.BURST_LOSS in metrics, m.violations
    assert Metric.RTT not in metrics and Metric.JITTER not in metrics


def test_a_clean_call_trips_nothing(runs: dict[str, Run]) -> None:
    m = runs["clean"].result.call
    assert m is not None and m.violations == () and m.profile == "client_to_edge"
    assert m.rx is not None and m.rx.lost == 0


def test_duplicates_are_counted_and_reordering_is_not_claimed(runs: dict[str, Run]) -> None:
    run = runs["reorder-duplicate"]
    m = run.result.call
    assert m is not None and m.rx is not None
    truth = run.rx_truth.quality
    assert truth.reorder_ratio is not None and truth.reorder_ratio > 0  # it did reorder
    assert m.rx.duplicates == truth.duplicates and truth.duplicates
    assert m.rx.lost == truth.lost == 0
    # pjsua2 cannot count reordering (notes/pjsua2.md): unknown, never a made-up 0.
    assert m.rx.reorder_ratio is None


def test_mos_falls_with_loss(runs: dict[str, Run]) -> None:
    mos = {name: run.result.call.mos for name, run in runs.items() if run.result.call}
    assert all(v is not None for v in mos.values()), mos
    assert mos["clean"] >= 4.3  # type: ignore[operator]
    assert mos["clean"] > mos["delay20-jitter20-loss2"] > mos["delay40-jitter10-loss5"]  # type: ignore[operator]
