"""Where the RTT came from, in /metrics and in stored samples (bounded: two sources)."""

from __future__ import annotations

from monitor.metrics.calls import CallMetrics
from monitor.metrics.exposition import ExpositionFormat
from monitor.pipeline import call_sample
from probes.result import CallMeasurements, Disconnect, Outcome, ProbeResult, RttSource


def result(trunk: str, rtt_s: float | None, source: RttSource | None) -> ProbeResult:
    return ProbeResult(
        trunk=trunk,
        probe="call",
        outcome=Outcome.OK,
        sent_wall_ns=1_790_000_000_000_000_000,
        status_code=200,
        call=CallMeasurements(
            disconnect=Disconnect.LOCAL, rtt_s=rtt_s, rtt_samples=250, rtt_source=source
        ),
    )


def test_the_rtt_gauge_is_labelled_with_its_source() -> None:
    metrics = CallMetrics({"echo": None, "reports": None, "neither": None}, agent="a-1")
    metrics.record(result("echo", 0.0305, RttSource.RTP_ECHO))
    metrics.record(result("reports", 0.040, RttSource.RTCP))
    metrics.record(result("neither", None, None))
    text = metrics.render(ExpositionFormat.TEXT)
    rtt = [line for line in text.splitlines() if line.startswith("trunkwatch_rtp_rtt_seconds{")]
    assert sorted(rtt) == [
        'trunkwatch_rtp_rtt_seconds{agent="a-1",source="rtcp",trunk="reports"} 0.04',
        'trunkwatch_rtp_rtt_seconds{agent="a-1",source="rtp_echo",trunk="echo"} 0.0305',
    ]


def test_a_stored_call_sample_says_where_its_rtt_came_from() -> None:
    echo = call_sample("agent-1", result("echo", 0.0305, RttSource.RTP_ECHO), {})
    assert (echo.rtt_s, echo.rtt_source) == (0.0305, "rtp_echo")
    none = call_sample("agent-1", result("neither", None, None), {})
    assert (none.rtt_s, none.rtt_source) == (None, None)
