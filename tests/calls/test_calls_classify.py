"""From a worker's CallReport to an outcome and CallMeasurements (probes/call.py, pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from probes.call import (
    CallSettings,
    call_attempt,
    call_result,
    classify,
    measure,
    summary_lines,
)
from probes.media.rfc6076 import CallAttempt, SessionMetricsWindow
from probes.media.thresholds import CLIENT_TO_EDGE, EDGE_TO_EDGE, Metric
from probes.pjsua.protocol import CallReport, CaptureReport, Sample, StreamFinal, ToneReport
from probes.result import Disconnect, JitterSource, Outcome, RttSource

SETTINGS = CallSettings(trunk="carrier-a", uri="sip:echo@127.0.0.1:5070", max_call_s=10.0)
PKT_PER_SAMPLE = 5  # 20 ms packets, samples every 100 ms


def samples(
    seconds: float = 10.0,
    *,
    start: float = 0.5,
    lost_at: dict[int, int] | None = None,
    rr_every: int = 0,
    rx: bool = True,
    jitter_us: int = 300,
) -> tuple[Sample, ...]:
    """Cumulative 10 Hz samples of a steady stream; `lost_at` = {sample index: packets lost}."""
    out = []
    received = lost = 0
    for k in range(round(seconds * 10) + 1):
        missing = (lost_at or {}).get(k, 0)
        if k:
            received += PKT_PER_SAMPLE - missing if rx else 0
            lost += missing
        updates = k // rr_every if rr_every else 0
        out.append(
            Sample(
                t_s=start + k / 10,
                rx_packets=received,
                rx_lost=lost,
                rx_dup=0,
                rx_jitter_us=jitter_us if rx else 0,
                tx_packets=k * PKT_PER_SAMPLE,
                tx_lost=updates,  # one packet lost per receiver report, for a known tx ratio
                tx_jitter_us=500 if updates else 0,
                tx_updates=updates,
                rtt_samples=updates,
                rtt_last_us=40_000 if updates else 0,
            )
        )
    return tuple(out)


FINAL = StreamFinal(
    rx_jitter_mean_us=300,
    rx_jitter_max_us=400,
    rx_loss_period_mean_us=0,
    rx_loss_periods=0,
    tx_jitter_mean_us=500,
    tx_jitter_max_us=600,
    rtt_mean_us=40_000,
    rtt_min_us=39_000,
    rtt_max_us=41_000,
    jbuf_avg_delay_ms=40,
)

ANSWERED = CallReport(
    id=1,
    placed=True,
    invite_wall_ns=1_790_000_000_000_000_000,
    first_response_s=0.01,
    first_provisional_s=0.04,
    first_18x_s=0.04,
    first_18x_status=180,
    final_s=0.5,
    answer_s=0.5,
    confirmed_s=0.5,
    end_s=10.5,
    final_status=200,
    final_reason="OK",
    disconnect_status=200,
    disconnect_reason="OK",
    ended_by="local",
    hangup_cause="max_call",
    codec="PCMU",
    media_active=True,
    remote_sdp="v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
    samples=samples(),
    final=FINAL,
    tone=ToneReport(seconds=9.5, coverage=0.95, found=True, level_dbov=-10.0),
)
UNANSWERED = CallReport(
    id=2,
    placed=True,
    invite_wall_ns=ANSWERED.invite_wall_ns,
    first_response_s=0.01,
    ended_by="rejected",
)


def test_a_clean_answered_call_is_ok() -> None:
    assert classify(SETTINGS, ANSWERED) == (Outcome.OK, None)


REJECTIONS = [
    (486, "Busy Here", Outcome.BUSY),
    (600, "Busy Everywhere", Outcome.BUSY),
    (404, "Not Found", Outcome.NOT_FOUND),
    (604, "Does Not Exist Anywhere", Outcome.NOT_FOUND),
    (503, "Service Unavailable", Outcome.SERVICE_UNAVAILABLE),
    (488, "Not Acceptable Here", Outcome.CODEC_MISMATCH),
    (606, "Not Acceptable", Outcome.CODEC_MISMATCH),
    (401, "Unauthorized", Outcome.AUTH),
    (407, "Proxy Authentication Required", Outcome.AUTH),
    (408, "Request Timeout", Outcome.NO_ANSWER),
    (480, "Temporarily Unavailable", Outcome.NO_ANSWER),
    (403, "Forbidden", Outcome.SIP_ERROR),
    (500, "Server Internal Error", Outcome.SIP_ERROR),
    (603, "Decline", Outcome.SIP_ERROR),
]


@pytest.mark.parametrize(("status", "reason", "outcome"), REJECTIONS)
def test_final_statuses(status: int, reason: str, outcome: Outcome) -> None:
    report = replace(UNANSWERED, final_status=status, final_reason=reason, final_s=0.2)
    got, detail = classify(SETTINGS, report)
    assert got is outcome
    assert detail == f"{status} {reason}"
    result = call_result(SETTINGS, report, started_wall_ns=0, duration_ns=1)
    assert result.status_code == status and result.reason == reason
    assert result.rtt_ns == 200_000_000
    assert result.call is not None and result.call.disconnect is Disconnect.REJECTED


def test_no_response_at_all_is_a_timeout() -> None:
    report = replace(UNANSWERED, first_response_s=None, ended_by="timeout")
    assert classify(SETTINGS, report)[0] is Outcome.TIMEOUT
    cancelled = replace(report, hangup_cause="answer_timeout")
    assert classify(SETTINGS, cancelled)[0] is Outcome.TIMEOUT


def test_ringing_until_the_answer_timeout_is_no_answer() -> None:
    report = replace(
        UNANSWERED,
        first_18x_s=0.05,
        hangup_cause="answer_timeout",
        ended_by="cancel",
        disconnect_status=487,
    )
    outcome, detail = classify(SETTINGS, report)
    assert outcome is Outcome.NO_ANSWER
    assert detail == "not answered within 30 s"
    assert measure(SETTINGS, report).disconnect is Disconnect.CANCELLED
    # A provisional answer and then silence: no answer either.
    assert classify(SETTINGS, replace(UNANSWERED, ended_by="error"))[0] is Outcome.NO_ANSWER


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (401, Outcome.AUTH),
        (403, Outcome.AUTH),
        (407, Outcome.AUTH),
        (None, Outcome.TIMEOUT),
        (408, Outcome.TIMEOUT),
        (500, Outcome.SIP_ERROR),
    ],
)
def test_registration_failures(status: int | None, outcome: Outcome) -> None:
    report = CallReport(id=3, error=f"registration failed: {status}", registration_status=status)
    assert classify(SETTINGS, report)[0] is outcome


def test_a_call_the_worker_could_not_place_is_our_fault() -> None:
    report = CallReport(id=4, error="Too many objects of the specified type", error_status=70010)
    outcome, detail = classify(SETTINGS, report)
    assert outcome is Outcome.PROBE_CRASHED
    assert detail is not None and "Too many" in detail
    assert measure(SETTINGS, report).disconnect is Disconnect.ERROR


@pytest.mark.parametrize("cause", ["parent", "shutdown"])
def test_a_call_the_monitor_interrupted_is_never_the_trunks_fault(cause: str) -> None:
    report = replace(ANSWERED, hangup_cause=cause, end_s=3.0)
    assert classify(SETTINGS, report)[0] is Outcome.PROBE_CRASHED


MEDIA_FAILURES = [
    (None, Outcome.BAD_SDP, "answer without SDP"),
    ("v=0\r\nthis is not sdp\r\n", Outcome.BAD_SDP, "malformed SDP"),
    ("v=0\r\nm=audio 4000 RTP/AVP 9\r\n", Outcome.CODEC_MISMATCH, "answered with G722 only"),
    ("v=0\r\nm=audio 0 RTP/AVP 0\r\n", Outcome.CODEC_MISMATCH, "port 0"),
    ("v=0\r\ns=-\r\n", Outcome.CODEC_MISMATCH, "no audio stream"),
    ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", Outcome.BAD_SDP, "media negotiation failed"),
]


@pytest.mark.parametrize(("sdp", "outcome", "why"), MEDIA_FAILURES)
def test_answered_without_media(sdp: str | None, outcome: Outcome, why: str) -> None:
    report = replace(
        ANSWERED,
        media_active=False,
        media_error="media negotiation failed",
        remote_sdp=sdp,
        samples=(),
        tone=None,
        ended_by="remote",
        end_s=0.51,
    )
    got, detail = classify(SETTINGS, report)
    assert got is outcome
    assert detail is not None and why in detail
    assert measure(SETTINGS, report).disconnect is Disconnect.ERROR


def test_an_early_bye_is_a_dropped_call_and_one_at_the_end_is_not() -> None:
    early = replace(ANSWERED, ended_by="remote", hangup_cause=None, end_s=3.5)
    outcome, detail = classify(SETTINGS, early)
    assert outcome is Outcome.DROPPED
    assert detail == "the far end hung up after 3.0 s"
    m = measure(SETTINGS, early)
    assert m.disconnect is Disconnect.REMOTE and m.duration_s == pytest.approx(3.0)
    at_end = replace(early, end_s=ANSWERED.answer_s + SETTINGS.max_call_s - 0.5)  # type: ignore[operator]
    assert classify(SETTINGS, at_end)[0] is Outcome.OK


def test_no_rtp_either_way_is_no_audio() -> None:
    report = replace(ANSWERED, samples=samples(rx=False), tone=None)
    assert classify(SETTINGS, report) == (
        Outcome.NO_AUDIO,
        "answered, but no RTP in either direction",
    )
    assert classify(SETTINGS, replace(report, samples=()))[0] is Outcome.NO_AUDIO


def test_no_rtp_here_while_the_far_end_reports_ours_is_one_way_audio() -> None:
    report = replace(ANSWERED, samples=samples(rx=False, rr_every=30), tone=None)
    assert classify(SETTINGS, report)[0] is Outcome.ONE_WAY_AUDIO


def test_rtp_without_the_reference_tone_is_one_way_audio_only_when_a_tone_is_expected() -> None:
    silent = ToneReport(seconds=9.5, coverage=0.02, found=False, level_dbov=-90.0)
    report = replace(ANSWERED, tone=silent)
    outcome, detail = classify(SETTINGS, report)
    assert outcome is Outcome.ONE_WAY_AUDIO
    assert detail is not None and "2%" in detail
    plain_number = replace(SETTINGS, expect_tone=False)
    assert classify(plain_number, report) == (Outcome.OK, None)


# --- measurements ---------------------------------------------------------------------------


def test_signalling_times() -> None:
    m = measure(SETTINGS, ANSWERED)
    assert m.srd_s == 0.04 and m.pdd_s == 0.04 and m.setup_s == 0.5
    assert m.duration_s == pytest.approx(10.0)
    assert m.disconnect is Disconnect.LOCAL and m.codec == "PCMU"
    result = call_result(SETTINGS, ANSWERED, started_wall_ns=5, duration_ns=11 * 10**9)
    assert result.sent_wall_ns == ANSWERED.invite_wall_ns
    assert result.rtt_ns == 500_000_000 and result.duration_ns == 11 * 10**9
    assert result.probe == "call" and result.trunk == "carrier-a"


def test_a_clean_call_measures_clean_and_trips_no_threshold() -> None:
    for profile in (CLIENT_TO_EDGE, EDGE_TO_EDGE):
        m = measure(replace(SETTINGS, profile=profile), ANSWERED)
        assert m.rx is not None
        assert m.rx.packets == 500 and m.rx.lost == 0 and m.rx.loss_ratio == 0
        assert m.rx.burst_loss_ratio == 0 and m.rx.jitter_s == pytest.approx(0.0003)
        assert m.rx.reorder_ratio is None  # pjsua2 cannot count it (notes/pjsua2.md)
        assert m.rx.tone_found is True and m.rx.tone_coverage == 0.95
        assert m.mos is not None and m.mos >= 4.3
        assert m.violations == () and m.profile == profile.name


def test_a_loss_burst_is_windowed_and_trips_the_burst_rule() -> None:
    # 3 of the 10 packets in one 200 ms window (2 samples) lost.
    report = replace(ANSWERED, samples=samples(lost_at={50: 2, 51: 1}))
    m = measure(replace(SETTINGS, profile=CLIENT_TO_EDGE), report)
    assert m.rx is not None
    assert m.rx.lost == 3 and m.rx.loss_ratio == pytest.approx(3 / 500)
    assert m.rx.burst_loss_ratio == pytest.approx(0.3)
    metrics = {v.metric for v in m.violations}
    assert metrics == {Metric.BURST_LOSS}
    [burst] = m.violations
    assert burst.window_s == 0.2 and burst.value == pytest.approx(0.3) and burst.limit == 0.1


def test_rtt_one_way_delay_and_the_transmit_direction_from_receiver_reports() -> None:
    report = replace(ANSWERED, samples=samples(rr_every=50))
    m = measure(SETTINGS, report)
    assert m.rtt_s == pytest.approx(0.040) and m.rtt_samples == 2
    assert m.rtt_source is RttSource.RTCP and m.rtcp_rtt_s == pytest.approx(0.040)
    assert m.rtt_p95_s is None  # RTCP gives a mean of few samples, no distribution
    assert m.one_way_latency_s == pytest.approx(0.020)
    assert m.tx is not None
    # 2 lost as of the second report, which came when 500 packets had been sent.
    assert m.tx.lost == 2 and m.tx.loss_ratio == pytest.approx(2 / 500)
    assert m.tx.jitter_s == pytest.approx(0.0005) and m.tx.jitter_mean_s == pytest.approx(0.0005)
    assert m.tx.mos is not None and m.rx is not None and m.rx.mos is not None
    assert m.mos == min(m.tx.mos, m.rx.mos)


ECHO = CaptureReport(
    tx_packets=500,
    rx_packets=498,
    rtt_samples=498,
    rtt_p50_us=300_000,
    rtt_p95_us=320_000,
    rtt_max_us=350_000,
    rtt_min_us=290_000,
    rx_jitter_last_us=6_000,
    rx_jitter_mean_us=5_000,
    rx_jitter_max_us=9_000,
)


def test_the_echo_rtt_wins_over_rtcp_and_feeds_the_e_model_delay() -> None:
    rtcp_only = measure(SETTINGS, replace(ANSWERED, samples=samples(rr_every=50)))
    echoed = measure(SETTINGS, replace(ANSWERED, samples=samples(rr_every=50), capture=ECHO))
    assert echoed.rtt_source is RttSource.RTP_ECHO
    assert echoed.rtt_s == pytest.approx(0.300) and echoed.rtt_samples == 498
    assert (echoed.rtt_p95_s, echoed.rtt_max_s) == (pytest.approx(0.32), pytest.approx(0.35))
    assert echoed.rtcp_rtt_s == pytest.approx(0.040)  # still reported alongside
    assert echoed.one_way_latency_s == pytest.approx(0.150)
    # G.107: 150 ms + 20 ms packetization + 40 ms jitter buffer = 210 ms mouth-to-ear costs
    # delay impairment (Id) that RTCP's 20 + 20 + 40 = 80 ms does not.
    assert echoed.r_factor is not None and rtcp_only.r_factor is not None
    assert echoed.r_factor < rtcp_only.r_factor - 2
    assert echoed.rx is not None and echoed.rx_jitter_source is JitterSource.CAPTURE
    assert echoed.rx.jitter_mean_s == pytest.approx(0.005)
    assert echoed.rx.jitter_s == pytest.approx(0.006)


def test_captured_packets_give_the_jitter_windows_the_profile_judges() -> None:
    # 10 s of packets alternately 0 and 18 ms late: |D| = 18 ms each, RFC 3550 jitter -> 18 ms.
    n = 500
    seqs = tuple((65000 + i) % 65536 for i in range(n))  # across the wrap
    tss = tuple(160 * i for i in range(n))
    arrivals = tuple(20_000 * i + (18_000 if i % 2 else 0) for i in range(n))
    cap = replace(ECHO, rx_seq=seqs, rx_ts=tss, rx_arrival_us=arrivals)
    m = measure(replace(SETTINGS, profile=EDGE_TO_EDGE), replace(ANSWERED, capture=cap))
    assert m.rx is not None and m.rx_jitter_source is JitterSource.CAPTURE
    assert m.rx.jitter_s == pytest.approx(0.018, abs=0.0005)
    assert m.rx.jitter_worst_s is not None and m.rx.jitter_worst_s > 0.015
    # pjmedia's samples say 0.3 ms; the profile (< 15 ms) is judged on the captured packets.
    assert Metric.JITTER in {v.metric for v in m.violations}


def test_pjmedia_jitter_mean_leaves_out_the_samples_before_it_measures() -> None:
    # pjmedia reports 0 until 25 packets arrived (0.5 s), then its running value.
    steady = samples(jitter_us=8_000)
    ramp = tuple(replace(s, rx_jitter_us=0) if s.rx_packets <= 25 else s for s in steady)
    m = measure(SETTINGS, replace(ANSWERED, samples=ramp))
    assert m.rx is not None and m.rx_jitter_source is JitterSource.PJMEDIA
    assert m.rx.jitter_mean_s == pytest.approx(0.008)  # not 7.6 ms: the zeros are no samples


def test_without_echo_or_rtcp_there_is_no_rtt_and_pjmedia_jitter() -> None:
    quiet = CaptureReport(tx_packets=500, rx_packets=0)  # the far end sent nothing we could use
    m = measure(SETTINGS, replace(ANSWERED, capture=quiet))
    assert (m.rtt_s, m.rtt_source, m.rtt_samples, m.one_way_latency_s) == (None, None, 0, None)
    assert m.rx is not None and m.rx_jitter_source is JitterSource.PJMEDIA
    assert m.rx.jitter_mean_s == pytest.approx(0.0003)


def test_loss_lowers_mos_and_bursty_loss_lowers_it_more() -> None:
    lost = {k: 1 for k in range(1, 101, 2)}  # 50 single losses in 500 packets: 10 %
    random_loss = replace(ANSWERED, samples=samples(lost_at=lost))
    bursty = replace(
        random_loss,
        final=replace(FINAL, rx_loss_period_mean_us=100_000, rx_loss_periods=10),
    )
    clean = measure(SETTINGS, ANSWERED).mos
    spread = measure(SETTINGS, random_loss).mos
    bunched = measure(SETTINGS, bursty).mos
    assert clean is not None and spread is not None and bunched is not None
    assert clean > spread > bunched


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match=r"G\.711"):
        CallSettings(trunk="t", uri="sip:x@y", codecs=("G722",))
    with pytest.raises(ValueError, match="each once"):
        CallSettings(trunk="t", uri="sip:x@y", codecs=("PCMU", "PCMU"))
    with pytest.raises(ValueError, match="sip: or sips:"):
        CallSettings(trunk="t", uri="tel:+15551234")
    with pytest.raises(ValueError, match="username"):
        CallSettings(trunk="t", uri="sip:x@y", password="p")
    with pytest.raises(ValueError, match="positive"):
        CallSettings(trunk="t", uri="sip:x@y", max_call_s=0)
    cmd = CallSettings(trunk="t", uri="sip:x@y", codecs=("PCMA",), expect_tone=False).command()
    assert cmd.codecs == ("PCMA",) and cmd.detect_tone is False and cmd.play_tone is True


def test_summary_lines_show_every_figure_per_direction() -> None:
    report = replace(ANSWERED, samples=samples(rr_every=50))
    result = call_result(
        replace(SETTINGS, profile=EDGE_TO_EDGE), report, started_wall_ns=0, duration_ns=1
    )
    text = "\n".join(summary_lines(result))
    assert "outcome ok  status 200 OK" in text
    assert "PDD 40.0 ms" in text and "answer 500.0 ms" in text and "SRD 40.0 ms" in text
    assert "RTT 40.0 ms (2 rtcp samples)" in text
    assert "rx (far end -> us): packets 500  lost 0 (0.00 %)" in text
    assert "reorder -" in text and "tone heard" in text
    assert "tx (us -> far end): packets -  lost 2 (0.40 %)" in text
    busy = call_result(
        SETTINGS,
        replace(UNANSWERED, final_status=486, final_reason="Busy Here"),
        started_wall_ns=0,
        duration_ns=1,
    )
    lines = summary_lines(busy)
    assert lines[0] == "outcome busy  status 486 Busy Here"
    assert "rx (far end -> us): not known" in lines


def test_pjsua2_presence_is_reported_for_check_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from probes import pjsua

    assert pjsua.pjsua2_missing() is None  # installed here (the calls extra)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    message = pjsua.pjsua2_missing()
    assert message is not None and "trunkwatch[calls]" in message and "2.15.1" in message


def test_rfc6076_attempts_from_results() -> None:
    def attempt(report: CallReport) -> CallAttempt | None:
        return call_attempt(call_result(SETTINGS, report, started_wall_ns=0, duration_ns=1), 5)

    ok = attempt(ANSWERED)
    assert ok == CallAttempt(t_ns=5, final_status=200, srd_s=0.04, completed=True)
    busy = attempt(replace(UNANSWERED, final_status=486, final_reason="Busy Here"))
    assert busy == CallAttempt(t_ns=5, final_status=486, srd_s=None, completed=False)
    silent = attempt(replace(UNANSWERED, first_response_s=None, ended_by="timeout"))
    assert silent is not None and silent.status == 408 and not silent.completed
    no_media = attempt(
        replace(ANSWERED, media_active=False, remote_sdp=None, samples=(), tone=None)
    )
    assert no_media is not None and no_media.answered and not no_media.completed
    ours = attempt(replace(ANSWERED, hangup_cause="shutdown"))
    assert ours is None  # the monitor's own failure is not an attempt on the trunk
    window = SessionMetricsWindow()
    for a in (ok, busy, silent, no_media):
        assert a is not None
        window.add(a)
    metrics = window.metrics()
    assert metrics.attempts == 4 and metrics.ser == 0.5 and metrics.scr == 0.25
