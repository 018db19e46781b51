"""RTT and receive jitter from our own RTP, against SIPp's `-rtp_echo` through the seeded relay.

SIPp reflects every RTP packet byte for byte and sends no RTCP, so RTCP gives no RTT here
(notes/pjsua2.md): the RTT must come from the worker's capture of our packets and their echoes.
SIPp binds its media on 127.0.0.1 and its answer SDP names a loopback alias where the relay
sits (the relay topology of tests/calls/relay.py). All settings run at once; calls last 5 s.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from callpeers import alias, answer_scenario, call_pool, running_sipp
from peers import missing_peer
from relay import DirectionTruth, Impairment, Relay

from probes.call import CallProbe, CallSettings
from probes.probe import run_once
from probes.result import JitterSource, Outcome, ProbeResult, RttSource

pytestmark = pytest.mark.peers

CALL_S = 5.0
# The goals: RTT within ±3 ms of the injected round trip, jitter within ±1 ms of
# RFC 3550 computed from the relay's own log of the packets it delivered.
RTT_TOLERANCE_S = 0.003
JITTER_TOLERANCE_S = 0.001
# SIPp's media port block: audio RTP/RTCP and video RTP/RTCP.
SIPP_MEDIA_PORTS = 4


@dataclass(frozen=True)
class Setting:
    name: str
    each_way: Impairment  # the same impairment on both directions


SETTINGS = [
    Setting("rtt0", Impairment()),
    Setting("rtt30", Impairment(delay_s=0.015)),
    Setting("rtt120", Impairment(delay_s=0.060)),
    Setting("jitter15", Impairment(delay_s=0.010, jitter_s=0.015)),
    Setting("jitter25", Impairment(delay_s=0.010, jitter_s=0.025)),
]


@dataclass
class Run:
    setting: Setting
    result: ProbeResult
    rx_truth: DirectionTruth  # b2a: the echo as the relay delivered it to the probe
    applied_rtt_s: float  # median round trip the relay really applied to the echoed packets


def echo_sdp(media_alias: str) -> str:
    """SIPp's answer naming the relay's alias (SIPp itself binds 127.0.0.1)."""
    return (
        f"v=0\no=sipp 1 1 IN IP4 {media_alias}\ns=-\nc=IN IP4 {media_alias}\nt=0 0\n"
        "m=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    )


async def run_setting(index: int, setting: Setting, workdir: Path) -> Run:
    caller_alias, callee_alias = alias(120 + 2 * index), alias(121 + 2 * index)
    async with call_pool(max_calls=1, media_public_address=caller_alias) as pool:
        with running_sipp(
            workdir / setting.name, scenario=answer_scenario(sdp=echo_sdp(callee_alias)), echo=True
        ) as sipp:
            relay = Relay(
                caller_alias=caller_alias,
                callee_alias=callee_alias,
                caller_ports=pool.settings.rtp_ports(0),
                callee_ports=range(sipp.media_port, sipp.media_port + SIPP_MEDIA_PORTS),
                a2b=setting.each_way,
                b2a=setting.each_way,
                seed=index + 11,
            )
            with relay:
                probe = CallProbe(
                    CallSettings(trunk=setting.name, uri=sipp.uri, max_call_s=CALL_S), pool
                )
                result = await run_once(probe)
            trips = sorted(relay.echo_round_trips_ns())
            applied = trips[len(trips) // 2] / 1e9 if trips else float("nan")
            return Run(setting, result, relay.truth("b2a"), applied)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    if os.geteuid() != 0:
        missing_peer("capturing RTP needs CAP_NET_RAW (root here)")
    workdir = tmp_path_factory.mktemp("echo-rtt")

    async def all_settings() -> list[Run]:
        return await asyncio.gather(*(run_setting(i, s, workdir) for i, s in enumerate(SETTINGS)))

    return {run.setting.name: run for run in asyncio.run(all_settings())}


@pytest.mark.parametrize("name", ["rtt0", "rtt30", "rtt120"])
def test_rtt_from_the_echo_matches_the_injected_round_trip(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.result.outcome is Outcome.OK, run.result
    m = run.result.call
    assert m is not None and m.rtt_s is not None
    # SIPp sends no RTCP: the echo is the only source.
    assert m.rtt_source is RttSource.RTP_ECHO and m.rtcp_rtt_s is None
    assert m.rtt_samples >= (CALL_S - 1) / 0.02, m.rtt_samples  # about every packet sent
    injected = run.setting.each_way.delay_s * 2
    # Against what the relay really did to these packets: on a loaded machine its thread
    # forwards late, and that lateness is real round-trip time the probe must see too.
    applied = run.applied_rtt_s
    assert injected <= applied, (applied, injected)  # the relay never delivers early
    assert abs(m.rtt_s - applied) <= RTT_TOLERANCE_S, (m.rtt_s, applied, injected)
    assert m.rtt_p95_s is not None and m.rtt_max_s is not None
    assert m.rtt_s <= m.rtt_p95_s <= m.rtt_max_s
    assert m.one_way_latency_s == pytest.approx(m.rtt_s / 2)


@pytest.mark.parametrize("name", ["jitter15", "jitter25"])
def test_jitter_matches_rfc3550_from_the_relay_log(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.result.outcome is Outcome.OK, run.result
    m = run.result.call
    assert m is not None and m.rx is not None and m.rx.jitter_mean_s is not None
    assert m.rx_jitter_source is JitterSource.CAPTURE
    truth = run.rx_truth
    assert truth.jitter_mean_s > 0.005  # the relay really jittered the stream
    assert abs(m.rx.jitter_mean_s - truth.jitter_mean_s) <= JITTER_TOLERANCE_S, (
        m.rx.jitter_mean_s,
        truth.jitter_mean_s,
    )
    # (Not the final running value: it swings by several ms from one packet to the next, and
    # the relay also logs the few packets that arrive after the probe stopped capturing.)
    # The worst window the profile judges, over the same packets.
    assert m.rx.jitter_worst_s is not None and truth.quality.worst_jitter_s is not None
    assert abs(m.rx.jitter_worst_s - truth.quality.worst_jitter_s) <= JITTER_TOLERANCE_S
