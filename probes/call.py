"""G.711 test call probe: one call through a trunk, placed by a pjsua2 worker of the pool.

The worker reports what it saw (probes/pjsua/protocol.py CallReport: SIP timings, 10 Hz
samples of the stream counters, RTCP figures, the tone heard); the pure functions here turn
that into an outcome and CallMeasurements with probes.media (windows, E-model, thresholds).
A probe never raises: a failure of the worker machinery is `probe_crashed`.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field, replace

import structlog

from probes.clock import Clock, SystemClock
from probes.instants import NS_PER_S
from probes.media.emodel import burst_r_from_mean_burst, g711
from probes.media.rfc6076 import CallAttempt
from probes.media.rtp import G711_DEFAULT_PTIME_S, RtpReceiverStats, Snapshot
from probes.media.thresholds import Measurements, ThresholdProfile, Violation, evaluate
from probes.media.windows import MediaQuality, WindowSpec, measure_packets, measure_snapshots
from probes.pjsua.pool import PoolSettings, WorkerPool
from probes.pjsua.process import PoolError
from probes.pjsua.protocol import G711_CODECS, CallCommand, CallReport, CaptureReport, Sample
from probes.pjsua.sdp import SdpError, audio_streams
from probes.probe import ResultCallback, run_once
from probes.result import (
    CallMeasurements,
    Disconnect,
    JitterSource,
    MediaDirection,
    Outcome,
    ProbeResult,
    RttSource,
)

log = structlog.get_logger("probes.call")

PROBE_KIND = "call"
# A BYE from the far end this close to the planned end is a normal end (a responder whose own
# maximum matches ours); earlier it is a dropped call.
EARLY_BYE_TOLERANCE_S = 1.0
# What the E-model adds to the network's one-way delay for G.711: one packet time of
# packetization (pjsua sends 20 ms frames); the jitter buffer's delay comes from the stream.
PACKETIZATION_S = G711_DEFAULT_PTIME_S
# pjmedia keeps its running jitter at 0 until it has received this many packets
# (PJMEDIA_RTCP_IGNORE_FIRST_PACKETS, rtcp.c): samples before that measure nothing, and
# averaging them in read 0.8-1.2 ms low at 15-25 ms of jitter on a 5 s call
# (docs/benchmarks.md, issue #14).
PJMEDIA_JITTER_SETTLE_PACKETS = 25
# Final statuses with an outcome of their own (RFC 3261 §21); others are sip_error.
STATUS_OUTCOMES: dict[int, Outcome] = {
    404: Outcome.NOT_FOUND,
    604: Outcome.NOT_FOUND,
    486: Outcome.BUSY,
    600: Outcome.BUSY,
    503: Outcome.SERVICE_UNAVAILABLE,
    488: Outcome.CODEC_MISMATCH,  # Not Acceptable Here: no common media (RFC 3261 §21.4.26)
    606: Outcome.CODEC_MISMATCH,
    401: Outcome.AUTH,  # still challenged after pjsua answered with our credentials
    407: Outcome.AUTH,
    408: Outcome.NO_ANSWER,  # from the far end: it rang out
    480: Outcome.NO_ANSWER,  # Temporarily Unavailable: nobody took the call
}
# Hang-up causes that were the monitor's doing, not the trunk's: the measurement is incomplete.
OUR_HANGUPS = frozenset({"parent", "shutdown"})
# Untrusted text in results is cut here.
MAX_DETAIL_CHARS = 160


@dataclass(slots=True, frozen=True)
class CallSettings:
    """What one trunk's call probe needs (config: `probes.call` of a trunk)."""

    trunk: str
    uri: str  # the test number or URI the call goes to, e.g. sip:+5255...@sbc.carrier.example
    codecs: tuple[str, ...] = G711_CODECS  # offered in this order; PCMU and/or PCMA only
    max_call_s: float = 20.0  # the call is hung up this long after the answer
    answer_timeout_s: float = 30.0  # cancelled (no_answer) if not answered by then
    from_uri: str | None = None  # our identity (From, account); None: the worker's own URI
    username: str | None = None  # digest credentials for challenges and registration
    password: str | None = field(default=None, repr=False)
    realm: str | None = None  # None: answer any realm
    registrar: str | None = None  # REGISTER here first (kept registered by the worker)
    proxy: str | None = None  # outbound proxy URI (loose route)
    expect_tone: bool = True  # the far end echoes or plays the reference tone (a responder)
    profile: ThresholdProfile | None = None  # judge the media against it (violations)

    def __post_init__(self) -> None:
        if not self.uri.lower().startswith(("sip:", "sips:")):
            raise ValueError(f"call uri must be a sip: or sips: URI, got {self.uri!r}")
        if not self.codecs or len(set(self.codecs)) != len(self.codecs):
            raise ValueError("codecs must list PCMU and/or PCMA, each once")
        if not set(self.codecs) <= set(G711_CODECS):
            raise ValueError(f"codecs must be G.711 ({', '.join(G711_CODECS)}): {self.codecs}")
        if not self.max_call_s > 0 or not self.answer_timeout_s > 0:
            raise ValueError("max_call_s and answer_timeout_s must be positive")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")

    @property
    def windows(self) -> WindowSpec:
        return self.profile.windows if self.profile is not None else WindowSpec()

    def command(self) -> CallCommand:
        """The worker command (the pool assigns its id)."""
        return CallCommand(
            id=0,
            uri=self.uri,
            from_uri=self.from_uri,
            codecs=self.codecs,
            answer_timeout_s=self.answer_timeout_s,
            max_call_s=self.max_call_s,
            play_tone=True,
            detect_tone=self.expect_tone,
            username=self.username,
            password=self.password,
            realm=self.realm,
            registrar=self.registrar,
            proxy=self.proxy,
        )


# --- pure: report -> outcome ------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "…"


def _media_failure(settings: CallSettings, report: CallReport) -> tuple[Outcome, str]:
    """Why an answered call has no audio stream: no common G.711 codec, or bad SDP."""
    if report.remote_sdp is None:
        return Outcome.BAD_SDP, "answer without SDP"
    try:
        streams = audio_streams(report.remote_sdp)
    except SdpError as exc:
        return Outcome.BAD_SDP, f"malformed SDP: {exc}"
    if not streams:
        return Outcome.CODEC_MISMATCH, "no audio stream in the answer"
    if all(s.port == 0 for s in streams):
        return Outcome.CODEC_MISMATCH, "the far end rejected the audio stream (port 0)"
    offered = {c.upper() for c in settings.codecs}
    answered = {c for s in streams for c in s.codecs}
    if not offered & answered:
        return Outcome.CODEC_MISMATCH, f"answered with {', '.join(sorted(answered))} only"
    return Outcome.BAD_SDP, report.media_error or "media negotiation failed"


def classify(settings: CallSettings, report: CallReport) -> tuple[Outcome, str | None]:
    """The outcome of one call and a short reason."""
    if report.hangup_cause in OUR_HANGUPS or report.ended_by == "shutdown":
        return Outcome.PROBE_CRASHED, f"call interrupted by the monitor ({report.hangup_cause})"
    if not report.placed:
        reg = report.registration_status
        if report.error and report.error.startswith("registration"):
            if reg in (401, 403, 407):
                return Outcome.AUTH, _cut(report.error)
            if reg is None or reg == 408:
                return Outcome.TIMEOUT, _cut(report.error)
            return Outcome.SIP_ERROR, _cut(report.error)
        return Outcome.PROBE_CRASHED, _cut(f"call not placed: {report.error}")
    status = report.final_status
    if report.answer_s is None:
        if report.hangup_cause == "answer_timeout":
            if report.first_response_s is None:
                return Outcome.TIMEOUT, "no response to the INVITE"
            # pjsua ends the call when it sends CANCEL; the far end's 487 comes after.
            return Outcome.NO_ANSWER, f"not answered within {settings.answer_timeout_s:g} s"
        if status is None:
            if report.first_response_s is None:
                return Outcome.TIMEOUT, "no response to the INVITE"
            return Outcome.NO_ANSWER, "no final answer"
        outcome = STATUS_OUTCOMES.get(status, Outcome.SIP_ERROR)
        return outcome, _cut(f"{status} {report.final_reason or ''}".strip())
    # Answered.
    if not report.media_active:
        outcome, why = _media_failure(settings, report)
        return outcome, _cut(why)
    planned_end = report.answer_s + settings.max_call_s
    if (
        report.ended_by == "remote"
        and report.end_s is not None
        and report.end_s < planned_end - EARLY_BYE_TOLERANCE_S
    ):
        held = report.end_s - report.answer_s
        return Outcome.DROPPED, f"the far end hung up after {held:.1f} s"
    last = report.samples[-1] if report.samples else None
    if last is None or last.rx_packets == 0:
        if last is not None and last.tx_updates > 0:
            return Outcome.ONE_WAY_AUDIO, "no RTP received, but the far end reports ours"
        return Outcome.NO_AUDIO, "answered, but no RTP in either direction"
    if settings.expect_tone and report.tone is not None and not report.tone.found:
        return Outcome.ONE_WAY_AUDIO, (
            f"RTP arrives but the reference tone is missing "
            f"(heard in {report.tone.coverage:.0%} of the call)"
        )
    return Outcome.OK, None


# --- pure: report -> measurements -------------------------------------------------------------


def snapshots(samples: tuple[Sample, ...]) -> list[Snapshot]:
    """The worker's samples as probes.media snapshots (receive side)."""
    return [
        Snapshot(
            t_ns=round(s.t_s * NS_PER_S),
            received=s.rx_packets,
            lost=s.rx_lost,
            jitter_s=s.rx_jitter_us / 1e6,
            # pjsua2's counters cannot tell reordering: its `reorder` equals the loss count, and
            # packets the relay tests delayed past their successors were counted neither as
            # reordered nor as lost (notes/pjsua2.md). Unknown, so never judged.
            reordered=None,
            duplicates=s.rx_dup,
        )
        for s in samples
    ]


def _tx_direction(report: CallReport) -> MediaDirection | None:
    """Our stream as the far end's RTCP receiver reports describe it (None if none came)."""
    if not report.samples or report.samples[-1].tx_updates == 0:
        return None
    last = report.samples[-1]
    # The loss is as of the last report: divide by what we had sent when it came.
    at_report = next(
        (s for s in report.samples if s.tx_updates == last.tx_updates), report.samples[-1]
    )
    sent = at_report.tx_packets
    ratio = max(0, last.tx_lost) / sent if sent > 0 else None
    final = report.final
    return MediaDirection(
        lost=last.tx_lost,
        loss_ratio=ratio,
        jitter_s=last.tx_jitter_us / 1e6,
        jitter_mean_s=final.tx_jitter_mean_us / 1e6 if final is not None else None,
    )


@dataclass(slots=True, frozen=True)
class _Rtt:
    rtt_s: float | None = None
    samples: int = 0
    source: RttSource | None = None
    p95_s: float | None = None
    max_s: float | None = None
    rtcp_s: float | None = None


def _rtt(report: CallReport) -> _Rtt:
    """The call's RTT: our echoed RTP's median when the far end echoes it, else RTCP's mean.

    The echo times every packet (hundreds of samples a call); RTCP gives one sample per ~5 s
    report and none at all from a far end that only reflects RTP (notes/pjsua2.md)."""
    final = report.final
    rtcp_n = report.samples[-1].rtt_samples if report.samples else 0
    rtcp_s = final.rtt_mean_us / 1e6 if final is not None and rtcp_n > 0 else None
    cap = report.capture
    if cap is not None and cap.rtt_samples > 0 and cap.rtt_p50_us is not None:
        return _Rtt(
            rtt_s=cap.rtt_p50_us / 1e6,
            samples=cap.rtt_samples,
            source=RttSource.RTP_ECHO,
            p95_s=None if cap.rtt_p95_us is None else cap.rtt_p95_us / 1e6,
            max_s=None if cap.rtt_max_us is None else cap.rtt_max_us / 1e6,
            rtcp_s=rtcp_s,
        )
    if rtcp_s is not None:
        return _Rtt(rtt_s=rtcp_s, samples=rtcp_n, source=RttSource.RTCP, rtcp_s=rtcp_s)
    return _Rtt()


def _pjmedia_jitter_mean(report: CallReport) -> float | None:
    """Mean of pjmedia's running jitter over the samples after it started measuring."""
    settled = [
        s.rx_jitter_us for s in report.samples if s.rx_packets > PJMEDIA_JITTER_SETTLE_PACKETS
    ]
    return statistics.fmean(settled) / 1e6 if settled else None


def _captured_quality(cap: CaptureReport | None, windows: WindowSpec) -> MediaQuality | None:
    """Window figures from the captured packets of the far end's stream (None: not captured)."""
    if (
        cap is None
        or not cap.rx_seq
        or not len(cap.rx_seq) == len(cap.rx_ts) == len(cap.rx_arrival_us)
    ):
        return None
    stats = RtpReceiverStats()
    try:
        records = [
            stats.receive(seq, ts, us * 1000)
            for seq, ts, us in zip(cap.rx_seq, cap.rx_ts, cap.rx_arrival_us, strict=True)
        ]
        return measure_packets(records, windows)
    except ValueError as exc:  # out-of-range numbers, time going back: the worker's bug
        log.error("call_capture_inconsistent", error=str(exc))
        return None


def _mos(
    loss_ratio: float | None, one_way_s: float, burst_r: float = 1.0
) -> tuple[float | None, float | None]:
    if loss_ratio is None:
        return None, None
    result = g711(one_way_s, min(1.0, max(0.0, loss_ratio)), burst_r=burst_r)
    return result.r, result.mos


def measure(settings: CallSettings, report: CallReport) -> CallMeasurements:
    """CallMeasurements from a worker's report (no outcome logic here)."""
    srd = report.first_provisional_s
    rx_quality: MediaQuality | None = None
    if report.samples:
        try:
            rx_quality = measure_snapshots(snapshots(report.samples), settings.windows)
        except ValueError as exc:  # counters went backwards: a worker bug, not the trunk's
            log.error("call_samples_inconsistent", trunk=settings.trunk, error=str(exc))
    final = report.final
    rtt = _rtt(report)
    rtt_s = rtt.rtt_s
    one_way = rtt_s / 2 if rtt_s is not None else None
    jbuf_s = final.jbuf_avg_delay_ms / 1000 if final is not None else 0.0
    delay = (one_way or 0.0) + PACKETIZATION_S + jbuf_s  # mouth-to-ear, G.107 Ta

    rx: MediaDirection | None = None
    if rx_quality is not None:
        burst_r = 1.0
        if (
            final is not None
            and rx_quality.lost > 0
            and final.rx_loss_periods > 0
            and 0 < rx_quality.loss_ratio < 1
        ):
            mean_burst = max(1.0, final.rx_loss_period_mean_us / 1e6 / PACKETIZATION_S)
            burst_r = burst_r_from_mean_burst(rx_quality.loss_ratio, mean_burst)
        r, mos = _mos(rx_quality.loss_ratio, delay, burst_r)
        tone = report.tone
        jitter_last, jitter_mean = rx_quality.jitter_last_s, _pjmedia_jitter_mean(report)
        cap = report.capture
        jitter_source = JitterSource.PJMEDIA
        captured = _captured_quality(report.capture, settings.windows)
        if captured is not None:
            # Every packet, timed by the kernel (probes/media/echo.py own_rtp says why pjmedia's
            # figure reads low): the windows the profile judges too.
            rx_quality = replace(
                rx_quality,
                jitter_last_s=captured.jitter_last_s,
                jitter_mean_s=captured.jitter_mean_s,
                worst_jitter_s=captured.worst_jitter_s,
            )
            jitter_last, jitter_mean = captured.jitter_last_s, captured.jitter_mean_s
            jitter_source = JitterSource.CAPTURE
        elif cap is not None and cap.rx_jitter_mean_us is not None:
            jitter_last = (cap.rx_jitter_last_us or 0.0) / 1e6  # a call too long to carry
            jitter_mean = cap.rx_jitter_mean_us / 1e6  # its packets: the summary only
            jitter_source = JitterSource.CAPTURE
        rx = MediaDirection(
            packets=rx_quality.received,
            lost=rx_quality.lost,
            loss_ratio=rx_quality.loss_ratio,
            worst_loss_ratio=rx_quality.worst_loss_ratio,
            burst_loss_ratio=rx_quality.worst_burst_loss_ratio,
            jitter_s=jitter_last,
            jitter_mean_s=jitter_mean,
            jitter_worst_s=rx_quality.worst_jitter_s,
            reorder_ratio=rx_quality.reorder_ratio,
            duplicates=rx_quality.duplicates,
            r_factor=r,
            mos=mos,
            tone_found=tone.found if tone is not None else None,
            tone_coverage=tone.coverage if tone is not None else None,
        )
    tx = _tx_direction(report)
    if tx is not None:
        r, mos = _mos(tx.loss_ratio, delay)
        tx = MediaDirection(
            lost=tx.lost,
            loss_ratio=tx.loss_ratio,
            jitter_s=tx.jitter_s,
            jitter_mean_s=tx.jitter_mean_s,
            r_factor=r,
            mos=mos,
        )
    known = [d for d in (rx, tx) if d is not None and d.mos is not None]
    worst = min(known, key=lambda d: d.mos or 0.0) if known else None
    violations: tuple[Violation, ...] = ()
    if settings.profile is not None and rx_quality is not None and report.answer_s is not None:
        violations = tuple(
            evaluate(
                settings.profile,
                Measurements.from_quality(rx_quality, one_way_latency_s=one_way, rtt_s=rtt_s),
            )
        )
    duration = None
    if report.answer_s is not None and report.end_s is not None:
        duration = max(0.0, report.end_s - report.answer_s)
    return CallMeasurements(
        disconnect=_disconnect(report),
        srd_s=srd,
        pdd_s=report.first_18x_s,
        setup_s=report.answer_s,
        duration_s=duration,
        disconnect_status=report.disconnect_status,
        disconnect_reason=report.disconnect_reason,
        codec=report.codec,
        rx=rx,
        tx=tx,
        rtt_s=rtt_s,
        rtt_samples=rtt.samples,
        rtt_source=rtt.source,
        rtt_p95_s=rtt.p95_s,
        rtt_max_s=rtt.max_s,
        rtcp_rtt_s=rtt.rtcp_s,
        one_way_latency_s=one_way,
        rx_jitter_source=jitter_source if rx is not None else None,
        mos=worst.mos if worst is not None else None,
        r_factor=worst.r_factor if worst is not None else None,
        reinvites=report.reinvites,
        profile=settings.profile.name if settings.profile is not None else None,
        violations=violations,
    )


def _disconnect(report: CallReport) -> Disconnect:
    if not report.placed:
        return Disconnect.ERROR
    if report.answer_s is not None and not report.media_active:
        return Disconnect.ERROR
    return {
        "local": Disconnect.LOCAL,
        "remote": Disconnect.REMOTE,
        "cancel": Disconnect.CANCELLED,
        "timeout": Disconnect.TIMEOUT,
        "rejected": Disconnect.REJECTED,
        "shutdown": Disconnect.LOCAL,
    }.get(report.ended_by, Disconnect.ERROR)


def call_result(
    settings: CallSettings, report: CallReport, *, started_wall_ns: int, duration_ns: int
) -> ProbeResult:
    """The ProbeResult of one call from its worker report."""
    outcome, detail = classify(settings, report)
    final_s = report.final_s if report.final_s is not None else report.answer_s
    return ProbeResult(
        trunk=settings.trunk,
        probe=PROBE_KIND,
        outcome=outcome,
        sent_wall_ns=report.invite_wall_ns or started_wall_ns,
        rtt_ns=round(final_s * NS_PER_S) if final_s is not None else None,
        duration_ns=duration_ns,
        status_code=report.final_status,
        reason=_cut(report.final_reason) if report.final_reason else None,
        detail=detail,
        call=measure(settings, report),
    )


def call_attempt(result: ProbeResult, t_ns: int) -> CallAttempt | None:
    """The RFC 6076 attempt one call result counts as (None: the monitor's own failure, which
    says nothing about the trunk). `t_ns` is the monotonic instant the monitor files it under.

    completed (§4.9): answered and ended by a BYE, whoever sent it; media quality is judged
    separately (outcomes, violations).
    """
    if result.outcome is Outcome.PROBE_CRASHED or result.probe != PROBE_KIND:
        return None
    m = result.call
    status = result.status_code
    if status is not None and not 200 <= status <= 699:
        status = None
    completed = (
        status == 200 and m is not None and m.disconnect in (Disconnect.LOCAL, Disconnect.REMOTE)
    )
    return CallAttempt(
        t_ns=t_ns,
        final_status=status,
        srd_s=m.srd_s if m is not None else None,
        completed=completed,
    )


# --- the probe --------------------------------------------------------------------------------


class CallProbe:
    """One trunk's test call; `start` runs one call on the pool and calls back once."""

    kind = PROBE_KIND

    def __init__(
        self, settings: CallSettings, pool: WorkerPool, *, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.trunk = settings.trunk
        self.pool = pool
        self.clock = clock or SystemClock()
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, on_done: ResultCallback) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(on_done), name=f"call-probe-{self.trunk}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, on_done: ResultCallback) -> None:
        start_ns = self.clock.monotonic_ns()
        wall_ns = self.clock.wall_ns()
        try:
            report = await self.pool.call(self.settings.command())
            result = call_result(
                self.settings,
                report,
                started_wall_ns=wall_ns,
                duration_ns=self.clock.monotonic_ns() - start_ns,
            )
        except PoolError as exc:
            result = self._crashed(wall_ns, start_ns, str(exc))
        except Exception as exc:  # a bug: still one result, never a silent gap
            log.exception("call_probe_bug", trunk=self.trunk)
            result = self._crashed(wall_ns, start_ns, f"bug: {exc!r}")
        on_done(result)

    def _crashed(self, wall_ns: int, start_ns: int, detail: str) -> ProbeResult:
        return ProbeResult(
            trunk=self.trunk,
            probe=PROBE_KIND,
            outcome=Outcome.PROBE_CRASHED,
            sent_wall_ns=wall_ns,
            duration_ns=self.clock.monotonic_ns() - start_ns,
            detail=_cut(detail),
        )

    async def close(self) -> None:
        """Cancel calls in progress (their workers hang them up); no result is delivered."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass


# --- one-shot use (the CLI's `trunkwatch probe call URI`) ---------------------------------------


async def one_call(
    settings: CallSettings, pool_settings: PoolSettings | None = None
) -> ProbeResult:
    """Place a single call with a one-worker pool started and stopped around it."""
    pool = WorkerPool(pool_settings or PoolSettings(max_calls=1))
    try:
        await pool.start()
    except PoolError as exc:
        return ProbeResult(
            trunk=settings.trunk,
            probe=PROBE_KIND,
            outcome=Outcome.PROBE_CRASHED,
            sent_wall_ns=SystemClock().wall_ns(),
            detail=_cut(str(exc)),
        )
    try:
        return await run_once(CallProbe(settings, pool))
    finally:
        await pool.stop()


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def summary_lines(result: ProbeResult) -> list[str]:
    """A call's result as the lines `trunkwatch probe call` prints (per direction where known)."""
    status = f"{result.status_code} {result.reason or ''}".strip() if result.status_code else "-"
    lines = [f"outcome {result.outcome.value}  status {status}"]
    if result.detail:
        lines.append(f"detail  {result.detail}")
    m = result.call
    if m is None:
        return lines
    lines.append(
        f"SRD {_ms(m.srd_s)}  PDD {_ms(m.pdd_s)}  answer {_ms(m.setup_s)}  "
        f"duration {'-' if m.duration_s is None else f'{m.duration_s:.1f} s'}  "
        f"ended {m.disconnect.value}  codec {m.codec or '-'}"
    )
    lines.append(
        f"MOS {'-' if m.mos is None else f'{m.mos:.2f}'}  "
        f"RTT {_ms(m.rtt_s)} ({m.rtt_samples} {m.rtt_source or 'no'} samples"
        f"{f', p95 {_ms(m.rtt_p95_s)}' if m.rtt_p95_s is not None else ''})"
    )
    for name, d in (("rx (far end -> us)", m.rx), ("tx (us -> far end)", m.tx)):
        if d is None:
            lines.append(f"{name}: not known")
            continue
        tone = "-" if d.tone_found is None else ("heard" if d.tone_found else "NOT heard")
        lines.append(
            f"{name}: packets {d.packets if d.packets is not None else '-'}  "
            f"lost {d.lost if d.lost is not None else '-'} ({_ratio(d.loss_ratio)})  "
            f"burst {_ratio(d.burst_loss_ratio)}  jitter mean {_ms(d.jitter_mean_s)} "
            f"worst {_ms(d.jitter_worst_s)}  reorder {_ratio(d.reorder_ratio)}  "
            f"MOS {'-' if d.mos is None else f'{d.mos:.2f}'}  tone {tone}"
        )
    for v in m.violations:
        lines.append(f"violation ({m.profile}): {v}")
    return lines
