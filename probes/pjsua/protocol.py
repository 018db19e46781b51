"""The pjsua2 worker protocol: JSON lines over the worker's stdin and stdout.

One JSON object per line (UTF-8, no embedded newlines, at most MAX_LINE_BYTES). The parent
writes commands, tagged by `op`; the worker writes events, tagged by `ev`. The first command is
always `init`; the worker answers `ready` (or `fatal` and exits). Then, in any order:

    parent -> worker                          worker -> parent
    {"op":"call", id, uri, ...}    ------->   {"ev":"call_done", id, ...}  exactly once per id
    {"op":"hangup", id}            ------->   (the call's call_done follows)
    {"op":"count", id}             ------->   {"ev":"count", id, calls, pj_calls, ...}
    {"op":"shutdown"}              ------->   remaining call_done events, then exit 0
                                              {"ev":"call_done", direction:"in", ...}  responder
                                              {"ev":"log", level, event, fields}

Times in reports are seconds relative to the INVITE (outgoing) or to its arrival (incoming),
from the worker's monotonic clock. A closed stdin means the parent is gone: the worker hangs up
its calls and exits. Anything else on a worker's stdout is a protocol error, and the parent
treats the worker as crashed.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal

PROTOCOL_VERSION = 1
# A 20 s call report carries 200 ten-hertz samples (~20 KB); this bounds a broken worker's output.
MAX_LINE_BYTES = 1 << 20
# PJSUA_MAX_CALLS as compiled into the pjsua2-python 2.15.1 wheel (notes/pjsua2.md, pitfall 1):
# incoming and outgoing calls share these slots, a fifth call fails with PJ_ETOOMANY / 486.
PJSUA_MAX_CALLS = 4
# Received packets a call report carries one by one: 5 minutes of 20 ms packets, ~0.4 MB of
# JSON, inside MAX_LINE_BYTES; a longer call reports the summary figures only.
MAX_CAPTURED_RX = 15_000
# G.711 only (DESIGN.md §3). Anything else is accepted only for a test responder that has to
# *not* speak G.711 (the codec-mismatch test).
G711_CODECS = ("PCMU", "PCMA")

AnswerMode = Literal["echo", "tone", "silence"]
Direction = Literal["out", "in"]
EndedBy = Literal["local", "remote", "cancel", "timeout", "rejected", "error", "shutdown"]


class ProtocolError(Exception):
    """A line that is not a valid message of this protocol."""


# --- parent -> worker -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class AnswerConfig:
    """How a worker answers incoming calls (the responder); None in `Init` rejects them (603)."""

    mode: AnswerMode = "echo"
    ring_s: float = 0.0  # 180 Ringing, then the answer after this long
    status: int = 200  # a final status other than 200 rejects the call with it (tests)
    max_call_s: float | None = None  # hang up after this long; None waits for the caller's BYE
    detect_tone: bool = True  # record what arrives and look for the reference tone


@dataclass(slots=True, frozen=True)
class Init:
    op: Literal["init"] = "init"
    version: int = PROTOCOL_VERSION
    sip_address: str = "127.0.0.1"
    sip_port: int = 0  # 0: any free port
    sip_public_address: str | None = None  # advertised in Via/Contact (NAT); None: sip_address
    media_address: str = "127.0.0.1"
    media_public_address: str | None = None  # advertised in SDP; None: media_address
    rtp_port: int = 0  # first RTP port tried; 0: any free port
    rtp_port_range: int = 0  # ports from rtp_port that may be used (0: no limit)
    codecs: tuple[str, ...] = G711_CODECS  # in priority order
    user: str = "trunkwatch"  # user part of the worker's own SIP URI
    user_agent: str = "trunkwatch"
    sample_interval_s: float = 0.1
    pj_log_level: int = 1  # pjsip's own log (to stderr): 0 none .. 6 everything
    answer: AnswerConfig | None = None
    rx_drop_pct: int = 0  # pjmedia's loss injection (tests, the responder)
    tx_drop_pct: int = 0
    # Capture our own RTP (probes/pjsua/capture.py) for echo RTT and RFC 3550 jitter.
    capture_rtp: bool = False


@dataclass(slots=True, frozen=True)
class CallCommand:
    """Place one test call; the worker answers with exactly one `call_done` for `id`."""

    id: int
    uri: str
    op: Literal["call"] = "call"
    from_uri: str | None = None  # None: the worker's own URI
    codecs: tuple[str, ...] = G711_CODECS
    answer_timeout_s: float = 30.0
    max_call_s: float = 20.0
    play_tone: bool = True
    detect_tone: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    realm: str | None = None  # None: answer any realm's challenge
    registrar: str | None = None  # REGISTER here first (and keep the registration)
    proxy: str | None = None  # outbound proxy (loose route)


@dataclass(slots=True, frozen=True)
class Hangup:
    id: int
    op: Literal["hangup"] = "hangup"


@dataclass(slots=True, frozen=True)
class Count:
    id: int
    op: Literal["count"] = "count"


@dataclass(slots=True, frozen=True)
class Shutdown:
    op: Literal["shutdown"] = "shutdown"


Command = Init | CallCommand | Hangup | Count | Shutdown

# --- worker -> parent -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Ready:
    pid: int
    sip_address: str
    sip_port: int
    ev: Literal["ready"] = "ready"
    version: int = PROTOCOL_VERSION
    max_calls: int = PJSUA_MAX_CALLS
    pjsip_version: str = ""


@dataclass(slots=True, frozen=True)
class Fatal:
    error: str
    ev: Literal["fatal"] = "fatal"


@dataclass(slots=True, frozen=True)
class Sample:
    """Cumulative stream counters at one instant (pjsua2 `Call.getStreamStat`).

    rx_*: our receive side. tx_*: our sent packets, and the loss/jitter the far end reported in
    its last RTCP receiver report (tx_updates counts those reports). Counters survive a stream
    restart (re-INVITE): the worker adds the old stream's totals.
    """

    t_s: float
    rx_packets: int
    rx_lost: int
    rx_dup: int
    rx_jitter_us: int  # the running RFC 3550 value (pjsua2 jitterUsec.last)
    tx_packets: int
    tx_lost: int
    tx_jitter_us: int
    tx_updates: int
    rtt_samples: int
    rtt_last_us: int


@dataclass(slots=True, frozen=True)
class StreamFinal:
    """Summary statistics of the stream at its last sample (pjsua2 MathStat fields, µs)."""

    rx_jitter_mean_us: float
    rx_jitter_max_us: float
    rx_loss_period_mean_us: float  # mean length of a loss burst
    rx_loss_periods: int
    tx_jitter_mean_us: float
    tx_jitter_max_us: float
    rtt_mean_us: float
    rtt_min_us: float
    rtt_max_us: float
    jbuf_avg_delay_ms: float


@dataclass(slots=True, frozen=True)
class ToneReport:
    """What the worker heard: the reference tone's presence in the received audio."""

    seconds: float  # audio analysed (after the settle time)
    coverage: float  # fraction of 100 ms blocks in which the tone was found
    found: bool
    level_dbov: float  # mean level of the received audio (silence is very low)


@dataclass(slots=True, frozen=True)
class CaptureReport:
    """The call's own RTP as the worker's packet capture saw it (kernel timestamps, µs).

    rtt_*: round trips of our packets echoed back by the far end (None: it does not echo);
    rx_jitter_*: RFC 3550 A.8 over every received packet in arrival order.
    """

    tx_packets: int
    rx_packets: int
    rtt_samples: int = 0
    rtt_p50_us: float | None = None
    rtt_p95_us: float | None = None
    rtt_max_us: float | None = None
    rtt_min_us: float | None = None
    echo_ssrc_rewritten: bool = False
    rx_jitter_last_us: float | None = None
    rx_jitter_mean_us: float | None = None
    rx_jitter_max_us: float | None = None
    # The far end's main stream as received, in arrival order (at most MAX_CAPTURED_RX): the
    # parent judges its jitter windows per packet (probes/media/windows.py measure_packets).
    rx_seq: tuple[int, ...] = ()
    rx_ts: tuple[int, ...] = ()
    rx_arrival_us: tuple[int, ...] = ()  # µs after the first packet (kernel timestamps)


@dataclass(slots=True, frozen=True)
class CallReport:
    """Everything the worker saw of one call; probes/call.py turns it into a result."""

    id: int
    direction: Direction = "out"
    ev: Literal["call_done"] = "call_done"
    placed: bool = False  # the INVITE was sent (or, incoming, the call was taken)
    error: str | None = None  # why the call could not be placed or failed locally
    error_status: int | None = None  # pjlib status of that error
    invite_wall_ns: int | None = None  # UTC instant of the INVITE
    first_response_s: float | None = None  # any response, 100 Trying included
    first_provisional_s: float | None = None  # first response other than 100 (RFC 6076 SRD)
    first_18x_s: float | None = None
    first_18x_status: int | None = None
    final_s: float | None = None  # the INVITE's final response (2xx or not)
    answer_s: float | None = None  # 200 OK
    confirmed_s: float | None = None
    end_s: float | None = None
    final_status: int | None = None  # of the INVITE transaction; None: no final response
    final_reason: str | None = None
    disconnect_status: int | None = None
    disconnect_reason: str | None = None
    ended_by: EndedBy = "error"
    hangup_cause: str | None = None  # why we hung up: max_call, answer_timeout, parent, ...
    registration_status: int | None = None
    codec: str | None = None
    media_active: bool = False
    media_error: str | None = None
    remote_sdp: str | None = None  # the far end's last SDP (truncated), for classification
    reinvites: int = 0  # re-INVITEs and UPDATEs from the far end
    stream_restarts: int = 0
    samples: tuple[Sample, ...] = ()
    final: StreamFinal | None = None
    tone: ToneReport | None = None
    capture: CaptureReport | None = None  # None: no capture (no CAP_NET_RAW, or not asked)
    capture_error: str | None = None  # why there is none, when one was asked for
    remote_uri: str | None = None  # incoming: who called
    local_uri: str | None = None


@dataclass(slots=True, frozen=True)
class Counts:
    """Live object counts, to prove nothing leaks: all zero when no call is in progress."""

    id: int
    calls: int  # calls the worker tracks (placed, not yet reported and released)
    pj_calls: int  # pjsua call slots in use (Call.lookup over PJSUA_MAX_CALLS)
    pj_call_objects: int  # Python pj.Call instances alive (gc)
    recorders: int  # recorders alive
    conf_ports: int  # conference bridge ports in use (player and master port included)
    ev: Literal["count"] = "count"


@dataclass(slots=True, frozen=True)
class Log:
    level: Literal["debug", "info", "warning", "error"]
    event: str
    fields: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    ev: Literal["log"] = "log"


Event = Ready | Fatal | CallReport | Counts | Log

_COMMAND_TYPES: dict[str, type[Command]] = {
    "init": Init,
    "call": CallCommand,
    "hangup": Hangup,
    "count": Count,
    "shutdown": Shutdown,
}
_EVENT_TYPES: dict[str, type[Event]] = {
    "ready": Ready,
    "fatal": Fatal,
    "call_done": CallReport,
    "count": Counts,
    "log": Log,
}


def encode(message: Command | Event) -> bytes:
    """One line of the protocol (with its newline)."""
    line = json.dumps(asdict(message), separators=(",", ":"), allow_nan=False).encode() + b"\n"
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(f"message of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    return line


# --- strict decoding (stdlib only: pydantic would add ~19 MB to every worker's RSS) ----------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        for arm in typing.get_args(tp):
            try:
                return _convert(arm, value, where)
            except ProtocolError:
                continue
        raise ProtocolError(f"{where}: {value!r} is none of {tp}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ProtocolError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ProtocolError(f"{where}: expected a list, got {type(value).__name__}")
        item = typing.get_args(tp)[0]
        return tuple(_convert(item, v, f"{where}[{k}]") for k, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ProtocolError(f"{where}: expected an object")
        item = typing.get_args(tp)[1]
        return {k: _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if is_dataclass(tp):
        return _build(tp, value, where)
    if tp is type(None):
        if value is None:
            return None
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bool):
        if isinstance(value, tp):
            return value
    else:
        raise ProtocolError(f"{where}: unsupported type {tp}")  # a bug in this module
    raise ProtocolError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r:.40}")


def _build(cls: Any, obj: Any, where: str) -> Any:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where}: expected an object")
    hints = _hints(cls)
    unknown = obj.keys() - {f.name for f in fields(cls)}
    if unknown:
        # Both ends come from one commit: an unknown field is a bug, never silently ignored.
        raise ProtocolError(f"{where}: unknown field(s) {sorted(unknown)}")
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in obj.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ProtocolError(f"{where}: {exc}") from None


def _decode(line: bytes, tag: str, table: dict[str, Any], what: str) -> Any:
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError(f"{what} line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{what} is not JSON: {line[:80]!r}") from exc
    if not isinstance(obj, dict) or obj.get(tag) not in table:
        raise ProtocolError(f"{what} without a known {tag!r}: {line[:80]!r}")
    return _build(table[obj[tag]], obj, obj[tag])


def decode_command(line: bytes) -> Command:
    """A parent->worker line as its dataclass; ProtocolError if it is not exactly one."""
    cmd: Command = _decode(line, "op", _COMMAND_TYPES, "command")
    return cmd


def decode_event(line: bytes) -> Event:
    """A worker->parent line as its dataclass; ProtocolError if it is not exactly one."""
    event: Event = _decode(line, "ev", _EVENT_TYPES, "event")
    return event
