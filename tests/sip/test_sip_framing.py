"""StreamFramer (RFC 3261 §18.3): whole, byte by byte, trailing bytes, keep-alives, errors."""

from __future__ import annotations

import pytest

from probes.sip.errors import SipParseError
from probes.sip.framing import StreamFramer
from probes.sip.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES
from probes.sip.message import parse_message

FIRST = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKaaa\r\n"
    b"Call-ID: one@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 11\r\n"
    b"\r\n"
    b"hello\r\n\r\nyo"  # a body may hold CRLFCRLF: only Content-Length decides
)
SECOND = (
    b"SIP/2.0 404 Not Found\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKbbb\r\n"
    b"Call-ID: two@192.0.2.10\r\n"
    b"CSeq: 2 OPTIONS\r\n"
    b"l: 0\r\n"
    b"\r\n"
)
PING = b"\r\n\r\n"  # RFC 5626 §3.5.1
PONG = b"\r\n"


def feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def test_whole_message() -> None:
    framer = StreamFramer()
    assert framer.feed(FIRST) == [FIRST]
    assert framer.buffered == 0
    assert parse_message(FIRST).body == b"hello\r\n\r\nyo"


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    stream = PING + FIRST + PONG + SECOND + PING
    out = feed_all(framer, [stream[i : i + 1] for i in range(len(stream))])
    assert out == [FIRST, SECOND]
    assert framer.buffered == 0


def test_two_messages_in_one_chunk_then_trailing_bytes() -> None:
    framer = StreamFramer()
    tail = SECOND[:30]
    assert framer.feed(FIRST + SECOND + tail) == [FIRST, SECOND]
    assert framer.buffered == len(tail)
    assert framer.feed(SECOND[30:]) == [SECOND]


@pytest.mark.parametrize("cut", [1, 10, len(FIRST) - 13, len(FIRST) - 1])
def test_split_anywhere(cut: int) -> None:
    framer = StreamFramer()
    assert framer.feed(FIRST[:cut]) == []
    assert framer.feed(FIRST[cut:]) == [FIRST]


def test_keepalives_between_messages_are_dropped() -> None:
    framer = StreamFramer()
    assert framer.feed(PING) == []
    assert framer.feed(PONG) == []
    assert framer.buffered == 0
    assert framer.feed(PING + FIRST + PONG + PING + SECOND) == [FIRST, SECOND]


def test_folded_content_length() -> None:
    data = SECOND.replace(b"l: 0", b"Content-Length:\r\n 5") + b"abcde"
    assert StreamFramer().feed(data + b"junk") == [data]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (SECOND.replace(b"l: 0\r\n", b""), "missing Content-Length in a stream"),
        (SECOND.replace(b"l: 0", b"l: -1"), "invalid Content-Length"),
        (SECOND.replace(b"l: 0", b"l: abc"), "invalid Content-Length"),
        (
            SECOND.replace(b"l: 0", b"l: 0\r\nContent-Length: 3"),
            "conflicting Content-Length values",
        ),
        (SECOND.replace(b"l: 0", b"l: %d" % (MAX_BODY_BYTES + 1)), "Content-Length too large"),
    ],
)
def test_bad_length(data: bytes, reason: str) -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError) as info:
        framer.feed(data)
    assert info.value.reason == reason
    # The stream is out of sync: the framer keeps refusing rather than guessing.
    with pytest.raises(SipParseError) as again:
        framer.feed(FIRST)
    assert again.value.reason == reason


def test_repeated_equal_content_length_is_fine() -> None:
    data = SECOND.replace(b"l: 0", b"l: 0\r\nContent-Length: 0")
    assert StreamFramer().feed(data) == [data]


def test_header_block_limit_without_empty_line() -> None:
    framer = StreamFramer()
    chunk = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(SipParseError, match="header block too large"):
        for _ in range(MAX_HEADER_BYTES // len(chunk) + 2):
            framer.feed(chunk)


def test_header_block_limit_in_one_chunk() -> None:
    big = b"SIP/2.0 200 OK\r\nX: " + b"a" * MAX_HEADER_BYTES + b"\r\nl: 0\r\n\r\n"
    with pytest.raises(SipParseError, match="header block too large"):
        StreamFramer().feed(big)


def test_large_body_byte_by_byte_reads_the_head_once() -> None:
    body = b"x" * 20_000
    data = SECOND.replace(b"l: 0", b"l: %d" % len(body)) + body
    framer = StreamFramer()
    out = feed_all(framer, [data[i : i + 7] for i in range(0, len(data), 7)])
    assert out == [data]
