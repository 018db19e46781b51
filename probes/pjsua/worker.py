"""The pjsua2 worker process: one Endpoint, at most 4 calls, JSON lines on stdin/stdout.

Run as `python -m probes.pjsua.worker`; the protocol is in protocol.py. Everything pjsua2 runs
on this process's main thread: `uaConfig.threadCnt = 0` and `mainThreadOnly`, so callbacks
happen only inside `libHandleEvents` and no lock is needed (notes/pjsua2.md, pitfall 4). RTP
itself is handled by pjmedia's own thread, so Python's pace does not touch the media timing.

pjsua2 objects (calls, recorders) are dropped here on the main thread, outside callbacks, after
their call is DISCONNECTED; at exit the process leaves with `os._exit` without `libDestroy`,
because a pjsua2 object alive at `libDestroy` (or a late garbage collection) aborts the
interpreter (pitfall 3). Native stdout is redirected to stderr so pjsip's own printing can
never corrupt the protocol stream.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import wave
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pjsua2 as pj  # type: ignore[import-untyped]

from probes.media.echo import own_rtp
from probes.media.tone import (
    DEFAULT_BLOCK_S,
    FULL_SCALE_SINE_POWER,
    REFERENCE_TONE_HZ,
    reference_tone,
    signal_power,
    tone_coverage,
)
from probes.pjsua.capture import RtpCapture, open_capture
from probes.pjsua.protocol import (
    MAX_CAPTURED_RX,
    PJSUA_MAX_CALLS,
    AnswerConfig,
    CallCommand,
    CallReport,
    CaptureReport,
    Count,
    Counts,
    EndedBy,
    Event,
    Fatal,
    Hangup,
    Init,
    Log,
    ProtocolError,
    Ready,
    Sample,
    Shutdown,
    StreamFinal,
    ToneReport,
    decode_command,
    encode,
)

# Longest wait inside libHandleEvents: a command on stdin waits at most this long. SIP timers
# and packets wake the poll earlier; 50 ms keeps an idle worker at 20 wake-ups a second.
POLL_MAX_MS = 50
# The parent must send `init` within this long after starting us.
INIT_TIMEOUT_S = 10.0
# After we hang up, a call pjsua has not ended by then (a CANCEL waiting for a provisional,
# a BYE never answered) is reported anyway; its pjsua2 object is kept until pjsua ends it.
HANGUP_GRACE_S = 3.0
# On shutdown, calls are hung up and given this long to end before the process exits.
SHUTDOWN_GRACE_S = 3.0
# The reference tone file is this long and looped: 1004 Hz x 1 s is a whole number of periods,
# so the loop has no phase jump.
TONE_FILE_S = 1.0
# Received audio before this is not judged: the echo of our own tone needs a round trip plus
# the far end's jitter buffer to come back.
TONE_SETTLE_S = 0.5
# The tone counts as heard when found in at least this fraction of 100 ms blocks: loss and
# concealment may blank single blocks, silence or noise blanks nearly all.
TONE_FOUND_MIN_COVERAGE = 0.5
# A dropped recorder is closed by the conference bridge's next tick (~20 ms); wait this long,
# looking every RECORDER_POLL_NS.
RECORDER_CLOSE_TIMEOUT_S = 1.0
RECORDER_POLL_NS = 10_000_000
# The far end's SDP is kept (for classifying bad SDP) up to this length.
MAX_SDP_CHARS = 2_000
# Untrusted text (reasons, errors) carried in reports is cut here.
MAX_TEXT_CHARS = 200
# pjsua's PJSUA_MAX_ACC is 8; the default account takes one, call-specific accounts the rest.
MAX_EXTRA_ACCOUNTS = 6
# Registration lifetime asked of a registrar (RFC 3261 §10.2.1 Expires), renewed by pjsua.
REGISTRATION_EXPIRES_S = 300
# The conference bridge runs at G.711's rate so no call is resampled (notes pitfall 5).
CLOCK_RATE = 8000
# A WAV file's RIFF size field (bytes 4..8) stays 0 until the writer closes the file.
_RIFF_SIZE = struct.Struct("<I")
# SIP status for incoming calls a worker without an AnswerConfig refuses (RFC 3261 §21.6.2).
DECLINE = 603
# pjsua's status for "too many calls" (PJ_ETOOMANY): a bug in the pool if it ever happens.
PJ_ETOOMANY = 70010


def _cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _body(whole_msg: str) -> str | None:
    """The body of a SIP message as pjsip printed it (after the blank line), or None."""
    _, sep, body = whole_msg.partition("\r\n\r\n")
    if not sep:
        _, sep, body = whole_msg.partition("\n\n")
    return _cut(body, MAX_SDP_CHARS) if sep and body.strip() else None


# --- the I/O channel --------------------------------------------------------------------------


class Channel:
    """stdin commands (non-blocking, line-buffered) and stdout events."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buffer = b""
        self.eof = False
        os.set_blocking(0, False)

    def emit(self, message: Event) -> None:
        self.out.write(encode(message))
        self.out.flush()

    def read_lines(self, timeout_s: float = 0.0) -> list[bytes]:
        """Complete lines available now (waiting up to `timeout_s` for the first byte)."""
        if self.eof:
            return []
        ready, _, _ = select.select([0], [], [], timeout_s)
        if not ready:
            return []
        try:
            chunk = os.read(0, 65_536)
        except BlockingIOError:
            return []
        if not chunk:
            self.eof = True
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line for line in lines if line.strip()]


# --- per-call state (plain Python) ------------------------------------------------------------


@dataclass(slots=True)
class CallState:
    """What the worker knows of one call; becomes a CallReport."""

    id: int
    direction: str  # "out" / "in"
    start_ns: int  # monotonic: INVITE sent (out) or received (in)
    command: CallCommand | None = None
    invite_wall_ns: int | None = None
    placed: bool = False
    error: str | None = None
    error_status: int | None = None
    first_response_s: float | None = None
    first_provisional_s: float | None = None
    first_18x_s: float | None = None
    first_18x_status: int | None = None
    final_s: float | None = None
    answer_s: float | None = None
    confirmed_s: float | None = None
    end_s: float | None = None
    final_status: int | None = None
    final_reason: str | None = None
    disconnect_status: int | None = None
    disconnect_reason: str | None = None
    ended_by: EndedBy | None = None
    hangup_cause: str | None = None
    hangup_ns: int | None = None
    registration_status: int | None = None
    codec: str | None = None
    media_active: bool = False
    media_error: str | None = None
    remote_sdp: str | None = None
    reinvites: int = 0
    remote_bye: bool = False
    stream_restarts: int = 0
    samples: list[Sample] = field(default_factory=list)
    final: StreamFinal | None = None
    tone: ToneReport | None = None
    remote_uri: str | None = None
    local_uri: str | None = None
    # media plumbing
    audio_index: int | None = None
    conf_port: int | None = None
    play_tone: bool = False
    detect_tone: bool = False
    echo: bool = False
    recording: Path | None = None
    rtp_port: int | None = None  # our RTP port, watched by the capture
    capture: CaptureReport | None = None
    capture_error: str | None = None
    next_sample_ns: int = 0
    carry: tuple[int, int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0, 0)
    last_raw: tuple[int, int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0, 0)
    # timers (monotonic ns; None = not armed)
    answer_deadline_ns: int | None = None  # out: cancel if unanswered by then
    planned_end_ns: int | None = None  # hang up at the planned end of the call
    ring_answer_ns: int | None = None  # in: send the final answer then
    give_up_ns: int | None = None  # report even if pjsua has not ended the call
    waiting_registration: bool = False
    disconnected: bool = False
    finished: bool = False  # DISCONNECTED seen, or given up on
    reported: bool = False
    silent: bool = False  # refused incoming call of a caller-only worker: never reported

    def rel(self, now_ns: int) -> float:
        return (now_ns - self.start_ns) / 1e9

    def report(self) -> CallReport:
        ended_by: EndedBy = self.ended_by or "error"
        return CallReport(
            id=self.id,
            direction="in" if self.direction == "in" else "out",
            placed=self.placed,
            error=self.error,
            error_status=self.error_status,
            invite_wall_ns=self.invite_wall_ns,
            first_response_s=self.first_response_s,
            first_provisional_s=self.first_provisional_s,
            first_18x_s=self.first_18x_s,
            first_18x_status=self.first_18x_status,
            final_s=self.final_s,
            answer_s=self.answer_s,
            confirmed_s=self.confirmed_s,
            end_s=self.end_s,
            final_status=self.final_status,
            final_reason=self.final_reason,
            disconnect_status=self.disconnect_status,
            disconnect_reason=self.disconnect_reason,
            ended_by=ended_by,
            hangup_cause=self.hangup_cause,
            registration_status=self.registration_status,
            codec=self.codec,
            media_active=self.media_active,
            media_error=self.media_error,
            remote_sdp=self.remote_sdp,
            reinvites=self.reinvites,
            stream_restarts=self.stream_restarts,
            samples=tuple(self.samples),
            final=self.final,
            tone=self.tone,
            capture=self.capture,
            capture_error=self.capture_error,
            remote_uri=self.remote_uri,
            local_uri=self.local_uri,
        )


def analyse_recording(path: Path, settle_s: float = TONE_SETTLE_S) -> ToneReport | None:
    """Look for the reference tone in a recorded call (16-bit mono WAV); None if unreadable."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                return None
            rate = w.getframerate()
            samples = array("h", w.readframes(w.getnframes()))
    except (OSError, EOFError, wave.Error):
        return None
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    judged = samples[round(settle_s * rate) :]
    seconds = len(judged) / rate if rate else 0.0
    if len(judged) < round(DEFAULT_BLOCK_S * rate):
        return ToneReport(seconds=seconds, coverage=0.0, found=False, level_dbov=-120.0)
    coverage = tone_coverage(judged, rate, REFERENCE_TONE_HZ)
    power = signal_power(judged)
    level = 10 * math.log10(power / FULL_SCALE_SINE_POWER) if power > 0 else -120.0
    return ToneReport(
        seconds=seconds,
        coverage=coverage,
        found=coverage >= TONE_FOUND_MIN_COVERAGE,
        level_dbov=max(-120.0, level),
    )


def _recorder_closed(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        return True  # nothing to wait for
    return len(head) == 8 and _RIFF_SIZE.unpack(head[4:8])[0] != 0


# --- pjsua2 subclasses: thin, every callback guarded -------------------------------------------


class _PjCall(pj.Call):  # type: ignore[misc]
    """A pjsua2 Call forwarding its callbacks to the worker (exceptions never reach SWIG)."""

    def __init__(self, worker: Worker, acc: Any, state: CallState, call_id: int) -> None:
        super().__init__(acc, call_id)
        self.worker = worker
        self.state = state
        self.account: _PjAccount | None = None
        self.recorder: Any = None

    def onCallState(self, prm: Any) -> None:
        self.worker.guard(self.worker.on_call_event, self, prm.e)
        self.worker.guard(self.worker.on_call_state, self)

    def onCallTsxState(self, prm: Any) -> None:
        self.worker.guard(self.worker.on_call_event, self, prm.e)

    def onCallMediaState(self, prm: Any) -> None:
        self.worker.guard(self.worker.on_call_media, self)

    def onStreamDestroyed(self, prm: Any) -> None:
        self.worker.guard(self.worker.on_stream_destroyed, self, prm.streamIdx)


class _PjAccount(pj.Account):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker
        self.reg_status: int | None = None
        self.reg_reason = ""
        self.registering = False

    def onIncomingCall(self, prm: Any) -> None:
        self.worker.guard(self.worker.on_incoming, self, prm)

    def onRegState(self, prm: Any) -> None:
        self.reg_status = int(prm.code)
        self.reg_reason = _cut(str(prm.reason))


# --- the worker -------------------------------------------------------------------------------


class Worker:
    """One pjsua2 Endpoint and its calls."""

    def __init__(self, init: Init, channel: Channel) -> None:
        self.init = init
        self.channel = channel
        self.calls: dict[int, _PjCall] = {}  # by protocol id (outgoing) or negative (incoming)
        self.zombies: list[_PjCall] = []  # reported, waiting for pjsua to end them
        self.accounts: dict[tuple[str | None, ...], _PjAccount] = {}
        self.stopping = False
        self.next_incoming_id = -1
        self.tmp = Path(
            tempfile.mkdtemp(
                prefix="trunkwatch-pjsua-",
                dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
            )
        )
        self.codec_ids: list[str] = []
        self.current_codecs: tuple[str, ...] = ()
        self.ep: Any = None
        self.account: Any = None
        self.player: Any = None
        self.transport_id = -1
        self.sip_port = 0
        self.sip_host = ""
        self.capture: RtpCapture | None = None
        self.capture_error: str | None = None

    # --- setup ----------------------------------------------------------------------------

    def start(self) -> Ready:
        init = self.init
        ep = pj.Endpoint()
        ep.libCreate()
        self.ep = ep
        cfg = pj.EpConfig()
        cfg.logConfig.level = init.pj_log_level
        cfg.logConfig.consoleLevel = init.pj_log_level
        cfg.uaConfig.maxCalls = PJSUA_MAX_CALLS
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = init.user_agent
        cfg.medConfig.clockRate = CLOCK_RATE
        cfg.medConfig.sndClockRate = CLOCK_RATE
        cfg.medConfig.noVad = True  # VAD would stop RTP in silence and fake loss
        cfg.medConfig.ecTailLen = 0
        # The null device keeps clocking the conference bridge when idle; otherwise queued port
        # removals (a dropped recorder) wait for the next call and its WAV is never closed.
        cfg.medConfig.sndAutoCloseTime = -1
        cfg.medConfig.rxDropPct = init.rx_drop_pct
        cfg.medConfig.txDropPct = init.tx_drop_pct
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = init.sip_port
        tcfg.boundAddress = init.sip_address
        tcfg.publicAddress = init.sip_public_address or init.sip_address
        self.transport_id = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        info = ep.transportGetInfo(self.transport_id)
        host, _, port = str(info.localName).rpartition(":")
        self.sip_host, self.sip_port = host.strip("[]"), int(port)
        ep.libStart()
        ep.audDevManager().setNullDev()
        self.codec_ids = [str(c.codecId) for c in ep.codecEnum2()]
        self.set_codecs(init.codecs)
        tone_path = self.tmp / "reference-tone.wav"
        with wave.open(str(tone_path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(CLOCK_RATE)
            pcm = reference_tone(TONE_FILE_S, sample_rate=CLOCK_RATE)
            if sys.byteorder == "big":
                pcm.byteswap()
            w.writeframes(pcm.tobytes())
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(str(tone_path), 0)  # 0: loop
        self.account = self.create_account(None, None, None, None, None, None)
        if init.capture_rtp:
            low = init.rtp_port or 1
            high = min(0xFFFF, low + init.rtp_port_range - 1) if init.rtp_port_range else 0xFFFF
            self.capture, self.capture_error = open_capture(low, high, init.media_address)
            if self.capture_error is not None:
                self.log("warning", "pjsua_rtp_capture_unavailable", error=self.capture_error)
        return Ready(
            pid=os.getpid(),
            sip_address=self.sip_host,
            sip_port=self.sip_port,
            pjsip_version=str(ep.libVersion().full),
        )

    def resolve_codecs(self, names: tuple[str, ...]) -> list[str]:
        """pjsua codec ids for names like "PCMU" or "G722/16000"; ValueError if unknown."""
        out = []
        for name in names:
            matches = [c for c in self.codec_ids if c.lower().startswith(name.lower() + "/")]
            if not matches:
                raise ValueError(f"codec {name!r} is not available (have {self.codec_ids})")
            out.append(matches[0])
        return out

    def set_codecs(self, names: tuple[str, ...]) -> None:
        """Offer exactly these codecs in this order (pjsua priorities are endpoint-wide)."""
        if names == self.current_codecs:
            return
        wanted = self.resolve_codecs(names)
        for codec_id in self.codec_ids:
            self.ep.codecSetPriority(codec_id, 0)  # 0 disables the codec
        for rank, codec_id in enumerate(wanted):
            self.ep.codecSetPriority(codec_id, 255 - rank)
        self.current_codecs = names

    def create_account(
        self,
        from_uri: str | None,
        username: str | None,
        password: str | None,
        realm: str | None,
        registrar: str | None,
        proxy: str | None,
    ) -> _PjAccount:
        init = self.init
        acfg = pj.AccountConfig()
        acfg.idUri = from_uri or f"sip:{init.user}@{self.sip_host}:{self.sip_port}"
        acfg.sipConfig.transportId = self.transport_id
        if proxy:
            acfg.sipConfig.proxies.append(proxy)
        if username is not None:
            cred = pj.AuthCredInfo("digest", realm or "*", username, 0, password or "")
            acfg.sipConfig.authCreds.append(cred)
        if registrar:
            acfg.regConfig.registrarUri = registrar
            acfg.regConfig.registerOnAdd = True
            acfg.regConfig.timeoutSec = REGISTRATION_EXPIRES_S
        else:
            acfg.regConfig.registerOnAdd = False
        media = acfg.mediaConfig
        media.lockCodecEnabled = False  # no re-INVITE to "lock" one codec after the answer
        media.transportConfig.port = init.rtp_port
        media.transportConfig.portRange = init.rtp_port_range
        media.transportConfig.boundAddress = init.media_address
        media.transportConfig.publicAddress = init.media_public_address or init.media_address
        acc = _PjAccount(self)
        acc.registering = bool(registrar)
        acc.create(acfg)
        return acc

    def account_for(self, cmd: CallCommand) -> _PjAccount:
        key = (cmd.from_uri, cmd.username, cmd.password, cmd.realm, cmd.registrar, cmd.proxy)
        if key == (None,) * 6:
            return self.account  # type: ignore[no-any-return]
        acc = self.accounts.get(key)
        if acc is None:
            if len(self.accounts) >= MAX_EXTRA_ACCOUNTS:
                # Drop the oldest account no call is using (pjsua has 8 account slots).
                in_use = {id(c.account) for c in [*self.calls.values(), *self.zombies]}
                for old_key, old in list(self.accounts.items()):
                    if id(old) not in in_use:
                        del self.accounts[old_key]
                        with contextlib.suppress(pj.Error):
                            old.shutdown()
                        break
            acc = self.create_account(*key)
            self.accounts[key] = acc
        elif acc.registering and acc.reg_status is not None and not 200 <= acc.reg_status < 300:
            acc.reg_status = None  # the last attempt failed: try again for this call
            with contextlib.suppress(pj.Error):
                acc.setRegistration(True)
        return acc

    # --- guarded callbacks ----------------------------------------------------------------

    def guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a callback body; an exception is logged, never thrown back into SWIG."""
        try:
            fn(*args)
        except Exception as exc:  # a bug here must not abort the process via the director
            self.log("error", "pjsua_callback_failed", callback=fn.__name__, error=_cut(repr(exc)))

    def log(self, level: str, event: str, **fields: str | int | float | bool | None) -> None:
        lvl = level if level in ("debug", "info", "warning", "error") else "error"
        self.channel.emit(Log(level=lvl, event=event, fields=fields))  # type: ignore[arg-type]

    def on_call_state(self, call: _PjCall) -> None:
        st = call.state
        ci = call.getInfo()
        now = time.monotonic_ns()
        state = ci.state
        if state == pj.PJSIP_INV_STATE_CONFIRMED and st.confirmed_s is None:
            st.confirmed_s = st.rel(now)
            if st.answer_s is None:
                st.answer_s = st.confirmed_s
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not st.disconnected:
            st.disconnected = True
            st.disconnect_status = int(ci.lastStatusCode)
            st.disconnect_reason = _cut(str(ci.lastReason))
            if st.end_s is None:
                st.end_s = st.rel(now)
            if st.direction == "in" and st.final_status is None:
                st.final_status = st.disconnect_status
            st.finished = True  # ended_by is decided after all of this event's callbacks ran

    @staticmethod
    def _ended_by(st: CallState) -> EndedBy:
        if st.hangup_cause is not None:
            if st.answer_s is None:
                return "timeout" if st.first_response_s is None else "cancel"
            return "local"
        if st.answer_s is not None:
            return "remote"
        if st.final_status is not None and st.final_status >= 300:
            return "rejected"
        if st.direction == "in":
            return "remote"  # the caller cancelled
        return "timeout" if st.first_response_s is None else "error"

    def on_call_event(self, call: _PjCall, e: Any) -> None:
        """A message received in a transaction of the call. pjsua reports some responses only
        with the call state change they cause (a 486 that ends the call), others only as
        transaction events: both callbacks come here, and each figure is set once."""
        if e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        body = e.body.tsxState
        if body.type != pj.PJSIP_EVENT_RX_MSG:
            return
        tsx = body.tsx
        st = call.state
        now = time.monotonic_ns()
        method = str(tsx.method)
        if tsx.role == pj.PJSIP_ROLE_UAC and method == "INVITE" and st.direction == "out":
            if st.final_status is not None:
                return  # a response to a later INVITE of ours (none expected)
            code = int(tsx.statusCode)
            rel = st.rel(now)
            if st.first_response_s is None:
                st.first_response_s = rel
            if code != 100 and st.first_provisional_s is None:
                st.first_provisional_s = rel
            if 180 <= code <= 189 and st.first_18x_s is None:
                st.first_18x_s = rel
                st.first_18x_status = code
            if code >= 200:
                st.final_status = code
                st.final_s = rel
                st.final_reason = _cut(str(tsx.statusText))
                if 200 <= code < 300:
                    st.answer_s = rel
            sdp = _body(str(body.src.rdata.wholeMsg))
            if sdp is not None:
                st.remote_sdp = sdp
        elif tsx.role == pj.PJSIP_ROLE_UAS:
            is_new = int(tsx.state) == pj.PJSIP_TSX_STATE_TRYING  # once per request
            if (
                method in ("INVITE", "UPDATE")
                and (st.confirmed_s is not None or method == "UPDATE")
                and is_new
            ):
                st.reinvites += 1
                sdp = _body(str(body.src.rdata.wholeMsg))
                if sdp is not None:
                    st.remote_sdp = sdp
            elif method == "BYE":
                st.remote_bye = True
                if st.end_s is None:
                    st.end_s = st.rel(now)

    def on_call_media(self, call: _PjCall) -> None:
        st = call.state
        ci = call.getInfo()  # keep the CallInfo alive while reading its media vector
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                am = call.getAudioMedia(mi.index)
                port = int(am.getPortId())
                if st.conf_port != port:
                    self._connect_media(call, am, mi.index, port)
                st.media_active = True
                st.media_error = None
                with contextlib.suppress(pj.Error):
                    st.codec = str(call.getStreamInfo(mi.index).codecName)
            elif mi.status == pj.PJSUA_CALL_MEDIA_ERROR:
                st.media_error = "media negotiation failed"
            break
        if not st.media_active and st.media_error is None:
            st.media_error = "no active audio stream"

    def _connect_media(self, call: _PjCall, am: Any, index: int, port: int) -> None:
        st = call.state
        if st.audio_index is not None:
            st.stream_restarts += 1  # media renegotiated (re-INVITE, UPDATE): a new stream
        st.audio_index = index
        st.conf_port = port
        if st.play_tone:
            self.player.startTransmit(am)
        if st.echo:
            am.startTransmit(am)  # the conference bridge loops the call's audio back to it
        if st.detect_tone and call.recorder is None:
            path = self.tmp / f"rx-{st.direction}-{abs(st.id)}.wav"
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(path))
            call.recorder = recorder
            st.recording = path
        if call.recorder is not None:
            am.startTransmit(call.recorder)
        if st.next_sample_ns == 0:
            st.next_sample_ns = time.monotonic_ns()
        self._watch_rtp(call, index)

    def _watch_rtp(self, call: _PjCall, index: int) -> None:
        """Have the capture record this call's RTP (by our RTP port)."""
        st = call.state
        if self.capture is None:
            st.capture_error = self.capture_error if self.init.capture_rtp else None
            return
        try:
            name = str(call.getMedTransportInfo(index).localRtpName)
            port = int(name.rpartition(":")[2])
        except (pj.Error, ValueError) as exc:
            why = exc.info() if isinstance(exc, pj.Error) else str(exc)
            st.capture_error = _cut(f"no local RTP port: {why}")
            return
        if 0 < port <= 0xFFFF and port != st.rtp_port:
            if st.rtp_port is not None:
                self.capture.take(st.rtp_port)  # renegotiated onto another port: start over
            st.rtp_port = port
            self.capture.watch(port)

    def _capture_report(self, st: CallState) -> None:
        """The call's captured RTP, summarised (echo RTT, receive jitter)."""
        if self.capture is None or st.rtp_port is None:
            return
        packets = self.capture.take(st.rtp_port)
        st.rtp_port = None
        if packets is None:
            return
        try:
            own = own_rtp(packets)
        except ValueError as exc:  # a bug in the capture: say so, never lose the call's report
            st.capture_error = _cut(f"captured packets unusable: {exc}")
            self.log("error", "pjsua_rtp_capture_bad", id=st.id, error=st.capture_error)
            return
        echo = own.echo

        def us(seconds: float | None) -> float | None:
            return None if seconds is None else seconds * 1e6

        rx = own.rx_main if len(own.rx_main) <= MAX_CAPTURED_RX else ()
        t0 = rx[0].t_ns if rx else 0

        st.capture = CaptureReport(
            tx_packets=own.tx_packets,
            rx_packets=own.rx_packets,
            rtt_samples=echo.samples if echo is not None else 0,
            rtt_p50_us=us(echo.p50_s) if echo is not None else None,
            rtt_p95_us=us(echo.p95_s) if echo is not None else None,
            rtt_max_us=us(echo.max_s) if echo is not None else None,
            rtt_min_us=us(echo.min_s) if echo is not None else None,
            echo_ssrc_rewritten=echo.ssrc_rewritten if echo is not None else False,
            rx_jitter_last_us=us(own.jitter_last_s),
            rx_jitter_mean_us=us(own.jitter_mean_s),
            rx_jitter_max_us=us(own.jitter_max_s),
            rx_seq=tuple(p.seq for p in rx),
            rx_ts=tuple(p.timestamp for p in rx),
            rx_arrival_us=tuple((p.t_ns - t0) // 1000 for p in rx),
        )

    def on_stream_destroyed(self, call: _PjCall, index: int) -> None:
        st = call.state
        if st.audio_index != index:
            return
        self.sample(call, time.monotonic_ns())  # the stream's last figures, before they go
        st.carry = self._carried(st)
        st.last_raw = (0, 0, 0, 0, 0, 0, 0)
        st.conf_port = None

    @staticmethod
    def _carried(st: CallState) -> tuple[int, int, int, int, int, int, int]:
        if not st.samples:
            return st.carry
        s = st.samples[-1]
        return (
            s.rx_packets,
            s.rx_lost,
            s.rx_dup,
            s.tx_packets,
            s.tx_lost,
            s.tx_updates,
            s.rtt_samples,
        )

    def on_incoming(self, acc: _PjAccount, prm: Any) -> None:
        now = time.monotonic_ns()
        answer = self.init.answer
        call_id = self.next_incoming_id
        self.next_incoming_id -= 1
        st = CallState(id=call_id, direction="in", start_ns=now, invite_wall_ns=time.time_ns())
        st.placed = True
        st.remote_sdp = _body(str(prm.rdata.wholeMsg))
        call = _PjCall(self, acc, st, prm.callId)
        self.calls[call_id] = call  # keep a reference or Python frees the call (pitfall 7)
        ci = call.getInfo()
        st.remote_uri = _cut(str(ci.remoteUri))
        st.local_uri = _cut(str(ci.localUri))
        if answer is None or self.stopping:
            st.silent = True
            self._answer(call, DECLINE)
            return
        st.play_tone = answer.mode == "tone"
        st.echo = answer.mode == "echo"
        st.detect_tone = answer.detect_tone
        if answer.ring_s > 0:
            self._answer(call, 180)
            st.ring_answer_ns = now + round(answer.ring_s * 1e9)
        else:
            self._final_answer(call, answer, now)

    def _answer(self, call: _PjCall, status: int) -> None:
        op = pj.CallOpParam()
        op.statusCode = status
        call.answer(op)
        st = call.state
        rel = st.rel(time.monotonic_ns())
        if st.first_response_s is None:
            st.first_response_s = rel
        if status != 100 and st.first_provisional_s is None:
            st.first_provisional_s = rel
        if 180 <= status <= 189 and st.first_18x_s is None:
            st.first_18x_s, st.first_18x_status = rel, status
        if status >= 200:
            st.final_status = status
            st.final_s = rel
            if status < 300:
                st.answer_s = rel

    def _final_answer(self, call: _PjCall, answer: AnswerConfig, now: int) -> None:
        st = call.state
        st.ring_answer_ns = None
        self._answer(call, answer.status)
        if answer.status == 200 and answer.max_call_s is not None:
            st.planned_end_ns = now + round(answer.max_call_s * 1e9)

    # --- commands -------------------------------------------------------------------------

    def handle(self, line: bytes) -> None:
        try:
            cmd = decode_command(line)
        except ProtocolError:
            # Not the error text: it quotes the line, and a call command carries a password.
            self.log("error", "pjsua_worker_bad_command", bytes=len(line))
            return
        if isinstance(cmd, CallCommand):
            self.place(cmd)
        elif isinstance(cmd, Hangup):
            call = self.calls.get(cmd.id)
            if call is not None:
                self.hangup(call, "parent")
        elif isinstance(cmd, Count):
            self.channel.emit(self.counts(cmd.id))
        elif isinstance(cmd, Shutdown):
            self.stopping = True
        elif isinstance(cmd, Init):
            self.log("warning", "pjsua_worker_second_init")

    def place(self, cmd: CallCommand) -> None:
        now = time.monotonic_ns()
        st = CallState(id=cmd.id, direction="out", start_ns=now, command=cmd)
        st.play_tone = cmd.play_tone
        st.detect_tone = cmd.detect_tone
        if cmd.id in self.calls or self.stopping:
            st.error = "duplicate call id" if cmd.id in self.calls else "worker is shutting down"
            self._report_now(st)
            return
        try:
            acc = self.account_for(cmd)
            self.set_codecs(cmd.codecs)
        except (pj.Error, ValueError) as exc:
            st.error = _cut(exc.info() if isinstance(exc, pj.Error) else str(exc))
            self._report_now(st)
            return
        call = _PjCall(self, acc, st, pj.PJSUA_INVALID_ID)
        call.account = acc
        self.calls[cmd.id] = call
        st.answer_deadline_ns = now + round(cmd.answer_timeout_s * 1e9)
        if acc.registering and acc.reg_status is None:
            st.waiting_registration = True  # dialled from tick() once the registrar answered
            return
        self._dial(call)

    def _dial(self, call: _PjCall) -> None:
        st = call.state
        cmd = st.command
        assert cmd is not None
        acc = call.account
        assert acc is not None
        st.waiting_registration = False
        if acc.registering:
            st.registration_status = acc.reg_status
            if acc.reg_status is None or not 200 <= acc.reg_status < 300:
                st.error = f"registration failed: {acc.reg_status} {acc.reg_reason}".strip()
                self._finish_unplaced(call)
                return
        st.start_ns = time.monotonic_ns()
        st.invite_wall_ns = time.time_ns()
        try:
            call.makeCall(cmd.uri, pj.CallOpParam(True))
        except pj.Error as exc:
            st.error = _cut(str(exc.info()))
            st.error_status = int(exc.status)
            if exc.status == PJ_ETOOMANY:
                self.log("error", "pjsua_too_many_calls", calls=len(self.calls))
            self._finish_unplaced(call)
            return
        st.placed = True
        with contextlib.suppress(pj.Error):
            ci = call.getInfo()
            st.local_uri = _cut(str(ci.localUri))
            st.remote_uri = _cut(str(ci.remoteUri))

    def _finish_unplaced(self, call: _PjCall) -> None:
        st = call.state
        st.ended_by = "error"
        st.finished = True
        st.disconnected = True  # pjsua never took the call: nothing to wait for

    def _report_now(self, st: CallState) -> None:
        st.ended_by = "error"
        st.reported = True
        self.channel.emit(st.report())

    def hangup(self, call: _PjCall, cause: str) -> None:
        st = call.state
        if st.hangup_cause is not None or st.disconnected:
            return
        if st.waiting_registration:
            st.error = f"not placed: {cause}"
            self._finish_unplaced(call)
            return
        now = time.monotonic_ns()
        if st.media_active:
            self.sample(call, now)  # the last figures before the stream goes
        st.hangup_cause = cause
        st.hangup_ns = now
        st.give_up_ns = now + round(HANGUP_GRACE_S * 1e9)
        if st.end_s is None and st.answer_s is not None:
            st.end_s = st.rel(now)
        try:
            call.hangup(pj.CallOpParam())
        except pj.Error as exc:
            self.log("warning", "pjsua_hangup_failed", id=st.id, error=_cut(str(exc.info())))

    # --- stream statistics --------------------------------------------------------------------

    def sample(self, call: _PjCall, now: int) -> None:
        st = call.state
        if st.audio_index is None or st.disconnected:
            return
        try:
            ss = call.getStreamStat(st.audio_index)
        except pj.Error:
            return
        r = ss.rtcp
        rx, tx, rtt = r.rxStat, r.txStat, r.rttUsec
        raw = (
            int(rx.pkt),
            int(rx.loss),
            int(rx.dup),
            int(tx.pkt),
            int(tx.loss),
            int(tx.updateCount),
            int(rtt.n),
        )
        if raw[0] < st.last_raw[0] or raw[3] < st.last_raw[3]:
            # A new stream without a destroy callback: carry the old totals.
            st.carry = self._carried(st)
            st.stream_restarts += 1
        st.last_raw = raw
        c = st.carry
        st.samples.append(
            Sample(
                t_s=st.rel(now),
                rx_packets=c[0] + raw[0],
                rx_lost=c[1] + raw[1],
                rx_dup=c[2] + raw[2],
                rx_jitter_us=int(rx.jitterUsec.last),
                tx_packets=c[3] + raw[3],
                tx_lost=c[4] + raw[4],
                tx_jitter_us=int(tx.jitterUsec.last),
                tx_updates=c[5] + raw[5],
                rtt_samples=c[6] + raw[6],
                rtt_last_us=int(rtt.last),
            )
        )
        jb = ss.jbuf
        st.final = StreamFinal(
            rx_jitter_mean_us=float(rx.jitterUsec.mean),
            rx_jitter_max_us=float(rx.jitterUsec.max),
            rx_loss_period_mean_us=float(rx.lossPeriodUsec.mean),
            rx_loss_periods=int(rx.lossPeriodUsec.n),
            tx_jitter_mean_us=float(tx.jitterUsec.mean),
            tx_jitter_max_us=float(tx.jitterUsec.max),
            rtt_mean_us=float(rtt.mean),
            rtt_min_us=float(rtt.min),
            rtt_max_us=float(rtt.max),
            jbuf_avg_delay_ms=float(jb.avgDelayMsec),
        )

    # --- the loop -------------------------------------------------------------------------

    def tick(self, now: int) -> int:
        """Timers, sampling and finished calls; returns the next instant something is due."""
        interval = round(self.init.sample_interval_s * 1e9)
        due = now + POLL_MAX_MS * 1_000_000
        for call in list(self.calls.values()):
            st = call.state
            if st.waiting_registration:
                acc = call.account
                if acc is not None and acc.reg_status is not None:
                    self._dial(call)
                elif st.answer_deadline_ns is not None and now >= st.answer_deadline_ns:
                    st.error = "registration timed out"
                    self._finish_unplaced(call)
            if st.finished:
                continue
            if st.ring_answer_ns is not None:
                if now >= st.ring_answer_ns and self.init.answer is not None:
                    self._final_answer(call, self.init.answer, now)
                else:
                    due = min(due, st.ring_answer_ns)
            if st.direction == "out" and st.placed and st.hangup_cause is None:
                if st.answer_s is None and st.answer_deadline_ns is not None:
                    if now >= st.answer_deadline_ns:
                        self.hangup(call, "answer_timeout")
                    else:
                        due = min(due, st.answer_deadline_ns)
                elif st.answer_s is not None and st.planned_end_ns is None and st.command:
                    st.planned_end_ns = st.start_ns + round(
                        (st.answer_s + st.command.max_call_s) * 1e9
                    )
            if st.planned_end_ns is not None and st.hangup_cause is None:
                if now >= st.planned_end_ns:
                    self.hangup(call, "max_call")
                else:
                    due = min(due, st.planned_end_ns)
            if st.media_active and st.hangup_cause is None and not st.disconnected:
                if now >= st.next_sample_ns:
                    self.sample(call, now)
                    st.next_sample_ns = max(st.next_sample_ns + interval, now + interval // 2)
                due = min(due, st.next_sample_ns)
            if st.give_up_ns is not None and not st.disconnected:
                if now >= st.give_up_ns:
                    st.finished = True
                    if st.end_s is None:
                        st.end_s = st.rel(now)
                else:
                    due = min(due, st.give_up_ns)
        if self.release_finished():
            due = min(due, now + RECORDER_POLL_NS)
        return due

    def release_finished(self, force: bool = False) -> bool:
        """Report finished calls once their recording is closed; drop what pjsua has ended.

        Returns True while a finished call still waits for its recording to close.
        """
        now = time.monotonic_ns()
        waiting = False
        for key, call in list(self.calls.items()):
            st = call.state
            if not st.finished or st.reported:
                continue
            if st.ended_by is None:
                st.ended_by = self._ended_by(st)
            if call.recorder is not None:
                call.recorder = None  # the bridge removes the port on its next tick
                st.give_up_ns = now + round(RECORDER_CLOSE_TIMEOUT_S * 1e9)
            if st.recording is not None:
                closed = _recorder_closed(st.recording)
                if not closed and not force and now < (st.give_up_ns or now):
                    waiting = True
                    continue
                st.tone = analyse_recording(st.recording)
                with contextlib.suppress(OSError):
                    st.recording.unlink()
                st.recording = None
            st.reported = True
            self._capture_report(st)
            if not st.silent:
                self.channel.emit(st.report())
            del self.calls[key]
            if not st.disconnected:
                self.zombies.append(call)  # pjsua still owns it: keep the object alive
        self.zombies = [c for c in self.zombies if not c.state.disconnected]
        return waiting

    def counts(self, request_id: int) -> Counts:
        gc.collect()
        pj_calls = sum(1 for i in range(PJSUA_MAX_CALLS) if pj.Call.lookup(i) is not None)
        objects = gc.get_objects()
        return Counts(
            id=request_id,
            calls=len(self.calls) + len(self.zombies),
            pj_calls=pj_calls,
            pj_call_objects=sum(1 for o in objects if isinstance(o, pj.Call)),
            recorders=sum(1 for o in objects if isinstance(o, pj.AudioMediaRecorder)),
            conf_ports=int(self.ep.mediaActivePorts()),
        )

    def run(self) -> None:
        ep = self.ep
        due = time.monotonic_ns()
        stop_deadline: int | None = None
        while True:
            wait_ms = max(0, min(POLL_MAX_MS, (due - time.monotonic_ns()) // 1_000_000))
            ep.libHandleEvents(int(wait_ms))
            for line in self.channel.read_lines():
                self.handle(line)
            if self.channel.eof:
                self.stopping = True
            now = time.monotonic_ns()
            if self.stopping:
                if stop_deadline is None:
                    stop_deadline = now + round(SHUTDOWN_GRACE_S * 1e9)
                    for call in list(self.calls.values()):
                        self.hangup(call, "shutdown")
                        if call.state.waiting_registration or not call.state.placed:
                            call.state.ended_by = "shutdown"
                if (not self.calls and not self.zombies) or now >= stop_deadline:
                    for call in self.calls.values():
                        if not call.state.finished:
                            call.state.finished = True
                            call.state.ended_by = "shutdown"
                    self.release_finished(force=True)
                    return
            due = self.tick(now)

    def close(self) -> None:
        """Leave without libDestroy (see the module docstring); unregister first."""
        for acc in self.accounts.values():
            if acc.registering and acc.reg_status is not None and 200 <= acc.reg_status < 300:
                with contextlib.suppress(pj.Error):
                    acc.setRegistration(False)
        end = time.monotonic() + 0.5 if self.accounts else time.monotonic()
        while time.monotonic() < end:
            self.ep.libHandleEvents(20)
        if self.capture is not None:
            self.capture.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> None:
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # pjsip's console writer and any stray print land on stderr
    sys.stdout = sys.stderr
    channel = Channel(proto_out)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    deadline = time.monotonic() + INIT_TIMEOUT_S
    init: Init | None = None
    while init is None:
        left = deadline - time.monotonic()
        if left <= 0 or channel.eof:
            channel.emit(Fatal(error="no init command"))
            os._exit(2)
        for line in channel.read_lines(left):
            try:
                cmd = decode_command(line)
            except ProtocolError as exc:
                channel.emit(Fatal(error=_cut(str(exc))))
                os._exit(2)
            if not isinstance(cmd, Init):
                channel.emit(Fatal(error=f"expected init, got {cmd.op}"))
                os._exit(2)
            init = cmd
            break
    worker = Worker(init, channel)
    signal.signal(signal.SIGTERM, lambda *_: setattr(worker, "stopping", True))
    try:
        channel.emit(worker.start())
    except (pj.Error, ValueError, OSError) as exc:
        text = exc.info() if isinstance(exc, pj.Error) else str(exc)
        channel.emit(Fatal(error=_cut(str(text))))
        shutil.rmtree(worker.tmp, ignore_errors=True)
        os._exit(2)
    try:
        worker.run()
        worker.close()
    except BrokenPipeError:
        pass  # the parent is gone; nobody to report to
    except Exception:
        # A bug: say where on stderr (the parent keeps its tail) and leave at once, before
        # interpreter finalisation frees pjsua2 objects in an order that aborts (pitfall 3).
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    with contextlib.suppress(Exception):
        proto_out.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
