"""The worker protocol (probes/pjsua/protocol.py): round trips and strict rejection."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.pjsua.protocol import (
    MAX_LINE_BYTES,
    AnswerConfig,
    CallCommand,
    CallReport,
    CaptureReport,
    Count,
    Counts,
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
    decode_event,
    encode,
)

COMMANDS = [
    Init(),
    Init(capture_rtp=True),
    Init(sip_port=5070, answer=AnswerConfig(mode="tone", ring_s=0.5, max_call_s=None)),
    CallCommand(id=7, uri="sip:echo@127.0.0.1:5070", codecs=("PCMA",), password="s3cret"),
    Hangup(id=7),
    Count(id=1),
    Shutdown(),
]
EVENTS = [
    Ready(pid=10, sip_address="127.0.0.1", sip_port=5070),
    Fatal(error="boom"),
    Counts(id=1, calls=0, pj_calls=0, pj_call_objects=0, recorders=0, conf_ports=2),
    Log(level="warning", event="pjsua_x", fields={"a": 1, "b": None, "c": "x", "d": 1.5}),
    CallReport(
        id=3,
        placed=True,
        answer_s=0.2,
        samples=(Sample(0.1, 5, 0, 0, 250, 5, 0, 0, 1, 0, 0),),
        final=StreamFinal(1.0, 2.0, 0.0, 0, 3.0, 4.0, 5.0, 6.0, 7.0, 20.0),
        tone=ToneReport(seconds=2.0, coverage=0.9, found=True, level_dbov=-10.0),
        capture=CaptureReport(
            tx_packets=250,
            rx_packets=249,
            rtt_samples=249,
            rtt_p50_us=30_500.0,
            rtt_p95_us=31_000.0,
            rtt_max_us=33_000.0,
            rtt_min_us=30_100.0,
            echo_ssrc_rewritten=True,
            rx_jitter_last_us=400.0,
            rx_jitter_mean_us=350.0,
            rx_jitter_max_us=900.0,
        ),
    ),
    CallReport(id=4, capture_error="packet socket: Operation not permitted"),
]


@pytest.mark.parametrize("message", COMMANDS, ids=lambda m: type(m).__name__)
def test_commands_round_trip(message: object) -> None:
    line = encode(message)  # type: ignore[arg-type]
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_command(line) == message


@pytest.mark.parametrize("message", EVENTS, ids=lambda m: type(m).__name__)
def test_events_round_trip(message: object) -> None:
    assert decode_event(encode(message)) == message  # type: ignore[arg-type]


@settings(max_examples=50)
@given(
    call_id=st.integers(min_value=-(2**31), max_value=2**31),
    uri=st.text(max_size=40),
    timeout=st.floats(min_value=0.001, max_value=1e6, allow_nan=False),
    codecs=st.lists(st.sampled_from(["PCMU", "PCMA"]), max_size=2).map(tuple),
)
def test_any_call_command_survives_the_pipe(
    call_id: int, uri: str, timeout: float, codecs: tuple[str, ...]
) -> None:
    cmd = CallCommand(id=call_id, uri=uri, answer_timeout_s=timeout, codecs=codecs)
    assert decode_command(encode(cmd)) == cmd


BAD_EVENTS = [
    (b"not json", "not JSON"),
    (b"[1,2]", "without a known 'ev'"),
    (b'{"ev":"nonsense"}', "without a known 'ev'"),
    (b'{"ev":"call_done"}', "missing"),
    (b'{"ev":"call_done","id":1,"bogus":2}', "unknown field"),
    (b'{"ev":"call_done","id":true}', "expected int"),
    (b'{"ev":"call_done","id":1,"direction":"sideways"}', "is not one of"),
    (b'{"ev":"call_done","id":1,"samples":[{"t_s":1}]}', "missing"),
    (
        b'{"ev":"count","id":1,"calls":1,"pj_calls":1,"pj_call_objects":1,'
        b'"recorders":1,"conf_ports":"2"}',
        "expected int",
    ),
    (b'{"ev":"call_done","id":1,"answer_s":"soon"}', "none of"),
]


@pytest.mark.parametrize(("line", "why"), BAD_EVENTS)
def test_malformed_events_are_protocol_errors(line: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode_event(line)


def test_commands_and_events_do_not_mix() -> None:
    with pytest.raises(ProtocolError):
        decode_command(encode(Ready(pid=1, sip_address="x", sip_port=1)))
    with pytest.raises(ProtocolError):
        decode_event(encode(Shutdown()))


def test_oversized_lines_are_refused_both_ways() -> None:
    huge = b'{"ev":"fatal","error":"' + b"x" * MAX_LINE_BYTES + b'"}'
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_event(huge)
    with pytest.raises(ProtocolError, match="exceeds"):
        encode(Fatal(error="x" * MAX_LINE_BYTES))


def test_password_is_carried_but_never_in_repr() -> None:
    cmd = CallCommand(id=1, uri="sip:x@y", username="u", password="s3cret")
    assert "s3cret" not in repr(cmd)
    assert json.loads(encode(cmd))["password"] == "s3cret"
