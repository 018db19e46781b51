"""RTT and jitter of test calls against an echo peer, through the seeded relay (issue #14).

Usage: .venv/bin/python bench/echo_rtt.py [--seconds 5] [--repeat 3]   (as root: the worker's
RTP capture needs CAP_NET_RAW)

A pjsua2 caller (the pool) calls SIPp `-sn`-style answer + `-rtp_echo` through the test relay
(tests/calls/relay.py), which delays and jitters RTP both ways with a fixed seed. For each
setting it prints the injected round trip, the RTT the probe measured from its echoed RTP
(p50/p95, samples), RTCP's RTT (SIPp sends none), and receive jitter three ways against the
relay's own RFC 3550 figure over the packets it delivered: the capture's (what the probe now
reports), pjmedia's (what it reported before), and the relay log recomputed with pjmedia's rule
(jitter only from a packet whose sequence number directly follows the previous one), which shows
where pjmedia's shortfall comes from.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "calls"))
sys.path.insert(0, str(ROOT / "tests"))

from callpeers import alias, answer_scenario, call_pool, running_sipp  # noqa: E402
from relay import DirectionTruth, Impairment, Relay  # noqa: E402

from probes.call import CallSettings, call_result, snapshots  # noqa: E402
from probes.media.rtp import NS_PER_S, PacketKind, PacketRecord, ts_delta  # noqa: E402
from probes.media.windows import measure_snapshots  # noqa: E402
from probes.result import ProbeResult  # noqa: E402

SETTINGS: dict[str, Impairment] = {
    "rtt0": Impairment(),
    "rtt30": Impairment(delay_s=0.015),
    "rtt120": Impairment(delay_s=0.060),
    "jitter15": Impairment(delay_s=0.010, jitter_s=0.015),
    "jitter20": Impairment(delay_s=0.010, jitter_s=0.020),
    "jitter25": Impairment(delay_s=0.010, jitter_s=0.025),
}
SIPP_MEDIA_PORTS = 4


@dataclass
class Row:
    name: str
    injected_rtt_s: float
    result: ProbeResult
    pjmedia_jitter_mean_s: float | None
    pjmedia_packet_mean_s: float | None
    truth: DirectionTruth


def pjmedia_rule_jitter_mean(records: tuple[PacketRecord, ...], clock_rate: int = 8000) -> float:
    """RFC 3550 A.8 from the relay's log, updated only for a packet whose sequence number is
    the previous one + 1 (pjmedia rtcp.c: `seq_st.diff == 1`); mean of the running value."""
    jitter = 0.0
    values = []
    prev: PacketRecord | None = None
    for r in records:
        follows = prev is not None and r.ext_seq == (prev.ext_seq or 0) + 1
        if r.kind is PacketKind.IN_ORDER and prev is not None and follows:
            arrival = (r.arrival_ns - prev.arrival_ns) * clock_rate / NS_PER_S
            d = abs(arrival - ts_delta(r.rtp_timestamp, prev.rtp_timestamp))
            jitter += (d - jitter) / 16
            values.append(jitter)
        if r.kind in (PacketKind.IN_ORDER, PacketKind.FIRST):
            prev = r
    return statistics.fmean(values) / clock_rate if values else 0.0


def echo_sdp(media_alias: str) -> str:
    return (
        f"v=0\no=sipp 1 1 IN IP4 {media_alias}\ns=-\nc=IN IP4 {media_alias}\nt=0 0\n"
        "m=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
    )


async def one(index: int, name: str, imp: Impairment, seconds: float, workdir: Path) -> Row:
    caller_alias, callee_alias = alias(200 + 2 * index), alias(201 + 2 * index)
    async with call_pool(max_calls=1, media_public_address=caller_alias) as pool:
        with running_sipp(
            workdir / name, scenario=answer_scenario(sdp=echo_sdp(callee_alias)), echo=True
        ) as sipp:
            relay = Relay(
                caller_alias=caller_alias,
                callee_alias=callee_alias,
                caller_ports=pool.settings.rtp_ports(0),
                callee_ports=range(sipp.media_port, sipp.media_port + SIPP_MEDIA_PORTS),
                a2b=imp,
                b2a=imp,
                seed=index + 11,
            )
            settings = CallSettings(trunk=name, uri=sipp.uri, max_call_s=seconds)
            with relay:
                report = await pool.call(settings.command())
            result = call_result(settings, report, started_wall_ns=0, duration_ns=0)
            pj_mean = None
            if report.samples:
                pj_mean = measure_snapshots(snapshots(report.samples)).jitter_mean_s
            pj_packet = report.final.rx_jitter_mean_us / 1e6 if report.final else None
            return Row(name, 2 * imp.delay_s, result, pj_mean, pj_packet, relay.truth("b2a"))


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        "| setting | injected RTT | RTT p50 / p95 (samples) | RTCP RTT | "
        "jitter: relay log | capture | pjmedia (10 Hz) | pjmedia (per packet) | "
        "relay log, pjmedia's rule |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-echo-") as tmp:
        for rep in range(args.repeat):
            rows = await asyncio.gather(
                *(
                    one(i, name, imp, args.seconds, Path(tmp) / str(rep))
                    for i, (name, imp) in enumerate(SETTINGS.items())
                )
            )
            for row in rows:
                m = row.result.call
                assert m is not None and m.rx is not None
                print(
                    f"| {row.name} | {ms(row.injected_rtt_s)} | {ms(m.rtt_s)} / {ms(m.rtt_p95_s)}"
                    f" ({m.rtt_samples} {m.rtt_source}) | {ms(m.rtcp_rtt_s)} | "
                    f"{ms(row.truth.jitter_mean_s)} | {ms(m.rx.jitter_mean_s)} | "
                    f"{ms(row.pjmedia_jitter_mean_s)} | {ms(row.pjmedia_packet_mean_s)} | "
                    f"{ms(pjmedia_rule_jitter_mean(row.truth.records))} |"
                )


if __name__ == "__main__":
    asyncio.run(main())
