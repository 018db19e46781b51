"""Fuzz targets for everything that reads untrusted bytes (issue 10): each takes fuzzer data
and may fail only with its documented error type. Shared by tests/test_fuzz.py (bounded, in
the suite) and bench/fuzz.py (long runs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from monitor.config import ConfigError, config_from_text
from probes.pjsua.sdp import SdpError, audio_streams
from probes.sip.digest import DigestError, authorization_header, parse_challenge
from probes.sip.errors import SipParseError
from probes.sip.framing import StreamFramer
from probes.sip.message import parse_message
from probes.sip.uri import SipUri

# Bytes that steer random data towards each grammar's interesting corners.
SIP_WORDS = [
    b"SIP/2.0 ", b"OPTIONS sip:a@b SIP/2.0", b"\r\n", b"\r\n\r\n", b": ", b"Via: SIP/2.0/UDP h",
    b";branch=z9hG4bK", b"Content-Length: ", b"CSeq: 1 OPTIONS", b"Call-ID: x", b"From: <sip:a>",
    b"To: <sip:b>;tag=", b"\xff", b"\x00", b"%", b'"', b"<", b">", b",", b" ", b"\t", b"1",
    b"99999999999999999999", b"WWW-Authenticate: Digest ", b"realm=", b"nonce=",
]  # fmt: skip
DIGEST_WORDS = [
    "Digest ", "realm=", "nonce=", '"', "\\", ",", "=", " ", "algorithm=", "MD5", "SHA-256",
    "-sess", "qop=", "auth", "auth-int", "opaque=", "userhash=true", "stale=", "\udcff", "\x00",
    "é", "x",
]  # fmt: skip
CONFIG_WORDS = [
    "trunks:", "\n", "  - ", "name: ", "uri: ", "sip:127.0.0.1:5060", "interval: ", "timeout: ",
    "5s", "[", "]", "{", "}", "&a ", "*a", "<<: ", "!!python/object:os.system", "!!binary ",
    "1" * 5000, "-", ":", "'", '"', "store:", "url: ", "sqlite:///", "sla:", "tickets:",
    "password_file: ", "/dev/zero", "defaults:", "agent: ", "\t", "#", "? ", "|", ">",
]  # fmt: skip


def _joined(words: list[Any], empty: Any) -> st.SearchStrategy[Any]:
    return st.lists(st.one_of(st.sampled_from(words), st.just(empty)), max_size=40).map(
        lambda parts: empty.join(parts)
    ) | (st.binary(max_size=400) if isinstance(empty, bytes) else st.text(max_size=400))


def sip_parse(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError:
        pass


def sip_framer(chunks: list[bytes]) -> None:
    framer = StreamFramer()
    try:
        for chunk in chunks:
            for frame in framer.feed(chunk):
                sip_parse(frame)
    except SipParseError:
        pass


def digest(text: str) -> None:
    try:
        challenge = parse_challenge(text)
        authorization_header(
            challenge, method="OPTIONS", uri="sip:a@b", username="u", password="p", cnonce="c"
        )
    except DigestError:
        pass


def digest_from_bytes(data: bytes) -> None:
    # As the SIP parser hands header values over: surrogateescape-decoded bytes.
    digest(data.decode("utf-8", "surrogateescape"))


def sip_uri(text: str) -> None:
    try:
        str(SipUri.parse(text))
    except (SipParseError, ValueError):
        pass


def sdp(text: str) -> None:
    try:
        audio_streams(text)
    except SdpError:
        pass


def config(text: str) -> None:
    try:
        config_from_text(text, env={})
    except ConfigError:
        pass


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[Any], None]
    strategy: st.SearchStrategy[Any]


TARGETS = {
    t.name: t
    for t in (
        Target("sip_parse", sip_parse, _joined(SIP_WORDS, b"")),
        Target("sip_framer", sip_framer, st.lists(_joined(SIP_WORDS, b""), max_size=6)),
        Target("digest", digest, _joined(DIGEST_WORDS, "")),
        Target("digest_bytes", digest_from_bytes, _joined(SIP_WORDS, b"")),
        Target("sip_uri", sip_uri, _joined(["sip:", "sips:", "@", ":", ";", "?", "%", "[", "]",
                                           "::1", "a", "5060", "user", "=", "&", "\x00"], "")),
        Target("sdp", sdp, _joined(["v=0\r\n", "m=audio ", "9 ", "RTP/AVP ", "0 8", "\r\n",
                                    "a=rtpmap:", "/8000", "c=IN IP4 ", "x"], "")),
        Target("config", config, _joined(CONFIG_WORDS, "")),
    )
}  # fmt: skip
