"""The lazy reply read (probes/sip/reply.py) against the full parser.

The property: whatever `read_reply` accepts, `parse_message` accepts too, with the same
status, reason and transaction key. Inputs: generated replies built from good and broken
header lines, the RFC 4475 torture messages (tests/fixtures/rfc4475) turned into replies,
and byte mutations of both.
"""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from probes.sip.errors import SipParseError
from probes.sip.message import SipResponse, parse_message, transaction_key
from probes.sip.reply import Reply, read_reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rfc4475"
TORTURE = [p.read_bytes() for p in sorted(FIXTURES.glob("*.dat"))]
# The same header blocks behind a status line: the torture headers reach the reply reader.
TORTURE_REPLIES = [
    b"SIP/2.0 200 OK" + data[data.index(b"\r\n") :] for data in TORTURE if b"\r\n" in data
]

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What Kamailio answers our OPTIONS with (bench/sip_parse.py's reply, options_reply() headers).
KAMAILIO_200 = (
    b"SIP/2.0 200 Keepalive\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:40214;branch=z9hG4bKq3m4Xv9aT2Lw8sRk;rport=40214"
    b";received=192.0.2.10\r\n"
    b"From: <sip:trunkwatch@192.0.2.10>;tag=9f2c41d7a8e3b605\r\n"
    b"To: <sip:carrier.example.net>;tag=a6a1c5f60faecf035a1ae5b6e96e979a-2f5e\r\n"
    b"Call-ID: 6f1c2b7e9d0a4c3b8e5f7a1d2c3b4a5e@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n"
    b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

STATUS_LINES = [
    b"SIP/2.0 200 OK", b"SIP/2.0 404 Not here", b"SIP/2.0 100 Trying", b"SIP/2.0 401",
    b"SIP/2.0 699 ", b"SIP/2.0 200 \xc3\xa9t\xc3\xa9", b"SIP/2.0 200 \xff bad utf-8",
    b"SIP/2.0 700 Nope", b"SIP/2.0 099 Low", b"SIP/2.0 20 OK", b"SIP/2.0 2000 OK",
    b"SIP/2.0 \xd9\xa2\xd9\xa0\xd9\xa0 Arabic digits", b"sip/2.0 200 OK", b"SIP/2.1 200 OK",
    b"SIP/2.0  200 OK", b"SIP/2.0 200\tOK", b"\r\nSIP/2.0 200 OK", b"OPTIONS sip:a SIP/2.0",
]  # fmt: skip

GOOD_LINES = [
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc;rport=5060;received=192.0.2.1",
    b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKdef",
    b"v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK6;received=2001:db8::2",
    b"Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/TCP b.example;branch=z9hG4bK2",
    b'Via: SIP/2.0/UDP h.example;branch=z9hG4bKq;x="quoted;value"',
    b"VIA: SIP / 2.0 / UDP h.example ;branch=z9hG4bKspaced",
    b"Via: SIP/2.0/UDP h.example;rport",
    b"From: <sip:trunkwatch@192.0.2.10>;tag=1",
    b'From: "Trunk Watch" <sip:tw@example.com>;tag=2',
    b"f: sip:tw@example.com;tag=3",
    b"To: <sip:carrier.example.net>;tag=x",
    b"t: <sip:carrier.example.net>",
    b"Call-ID: abc@192.0.2.10",
    b"i: other-call",
    b"call-id:   spaced@host  ",
    b"CSeq: 1 OPTIONS",
    b"CSeq: 2 OPTIONS",
    b"cseq: 7 INVITE",
    b"Content-Length: 0",
    b"l: 0",
    b"Content-Length: 5",
    b"Content-Length: 00",
    b"Server: kamailio (5.6.3 (x86_64/linux))",
    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS",
    b"Supported: ",
    b"Contact: <sip:sbc@192.0.2.99:5060>",
    b"Record-Route: <sip:p1.example;lr>",
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT",
    b"X-Custom-Header: whatever, you; like",
    b'WWW-Authenticate: Digest realm="r", nonce="n", algorithm=MD5, qop="auth"',
]
# Broken, or off the fast path.
BAD_LINES = [
    b"Via: SIP/2.0/UDP ;branch=z9hG4bKx",
    b"Via: garbage",
    b"Via: SIP/2.0/UDP h.example:99999;branch=z9hG4bKport",
    b"Via: SIP/2.0/UDP h.example;branch=",
    b'Via: SIP/2.0/UDP h.example;branch="quoted"',
    b"CSeq: x OPTIONS",
    b"CSeq:  1 OPTIONS",
    b"CSeq: 1  OPTIONS",
    b"CSeq: 99999999999 OPTIONS",
    b"CSeq: 1 OPTIONS ",
    b"CSeq: 1 FOO",
    b"CSeq: \xd9\xa1 OPTIONS",
    b"Content-Length: -1",
    b"Content-Length:  5",
    b"Content-Length: 5 ",
    b"Content-Length: 99999999999",
    b"Content-Length: \xd9\xa1",
    b"From: <sip:a",
    b"To: sip:a b",
    b"Contact: <sip:a>;;",
    b"Record-Route: sip:no-brackets",
    b"Date: yesterday",
    b"Call-ID:",
    b"Call-ID: \t",
    b"Bad Name: x",
    b"Via : SIP/2.0/UDP h.example;branch=z9hG4bKsp",
    b": empty name",
    b"NoColonHere",
    b" folded continuation",
    b"\tfolded: with colon",
    b"Via: SIP/2.0/UDP h.example;branch=z9hG4bKcr\rx",
    b"X-Lf: a\nb",
    b"X-Long: " + b"y" * 9000,
]
# The three a key needs, so that many generated replies can be accepted at all.
KEY_LINES = [line for line in GOOD_LINES if line[:2].lower() in (b"vi", b"v:", b"cs", b"ca", b"i:")]
GOOD, BAD = st.sampled_from(GOOD_LINES), st.sampled_from(BAD_LINES)
LINE = st.one_of(GOOD, GOOD, BAD)  # mostly good lines: many replies can be accepted


def _lines(rng: random.Random) -> list[bytes]:
    lines = [rng.choice(KEY_LINES) for _ in range(3)]
    lines += [rng.choice(GOOD_LINES if rng.random() < 0.85 else BAD_LINES) for _ in range(8)]
    rng.shuffle(lines)
    return lines[: rng.randint(2, len(lines))]


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    """A status line, header lines from the pools above, an end and maybe a body."""
    start = draw(st.sampled_from(STATUS_LINES))
    keys = draw(st.lists(st.sampled_from(KEY_LINES), min_size=1, max_size=4))
    lines = draw(st.permutations([*keys, *draw(st.lists(LINE, max_size=8))]))
    end = draw(st.sampled_from([b"\r\n\r\n", b"\r\n", b"\r\n\r\n\r\n", b""]))
    body = draw(st.sampled_from([b"", b"hello", b"hi", b"v=0\r\n"]))
    return b"\r\n".join([start, *lines]) + end + body


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(out))
        what = rng.choice([b"\r\n", b" ", b"\t", b":", b";", b",", b"\x00", b"\xff", b"", b"0"])
        out[at : at + rng.randint(0, 2)] = what
    return bytes(out)


def _agree(data: bytes) -> Reply | None:
    """Check the property for one input; the lazy read's verdict, for coverage counts."""
    reply = read_reply(data)
    if reply is None:
        return None
    try:
        msg = parse_message(data)
    except SipParseError as exc:  # pragma: no cover - the failure this test exists for
        raise AssertionError(f"lazy read accepted what the parser refuses: {exc}") from exc
    assert isinstance(msg, SipResponse)
    assert (reply.status, reply.reason) == (msg.status, msg.reason)
    assert reply.key == transaction_key(msg)
    return reply


@SETTINGS
@given(replies())
@example(KAMAILIO_200)
def test_lazy_read_accepts_only_what_the_parser_accepts(data: bytes) -> None:
    _agree(data)


@SETTINGS
@given(replies(), st.randoms(use_true_random=False))
def test_mutated_replies_agree(data: bytes, rng: random.Random) -> None:
    _agree(_mutate(data, rng))


def test_torture_messages_and_their_mutations_agree() -> None:
    rng = random.Random(4475)
    accepted = 0
    for data in [*TORTURE, *TORTURE_REPLIES, KAMAILIO_200]:
        accepted += _agree(data) is not None
        for _ in range(40):
            _agree(_mutate(data, rng))
    # Requests never take the lazy read; some torture header blocks do (not a vacuous test).
    assert all(read_reply(data) is None for data in TORTURE if not data.startswith(b"SIP/"))
    assert accepted >= 5


def test_generated_replies_exercise_both_paths() -> None:
    """A seeded sample of the generator: both verdicts occur often, so the property above
    is tested on real acceptances, not only on refusals."""
    rng = random.Random(13)
    lazy = refused = 0
    for _ in range(3_000):
        start = rng.choice(STATUS_LINES[:7])
        data = b"\r\n".join([start, *_lines(rng)]) + b"\r\n\r\n"
        if _agree(data) is not None:
            lazy += 1
        else:
            try:
                parse_message(data)
            except SipParseError:
                refused += 1
    assert lazy > 100 and refused > 100, (lazy, refused)


def test_the_usual_reply_is_read_lazily() -> None:
    reply = read_reply(KAMAILIO_200)
    assert reply == Reply(
        200,
        "Keepalive",
        "z9hG4bKq3m4Xv9aT2Lw8sRk",
        "OPTIONS",
        "6f1c2b7e9d0a4c3b8e5f7a1d2c3b4a5e@192.0.2.10",
    )
    assert reply.key == transaction_key(_full(KAMAILIO_200))


def _full(data: bytes) -> SipResponse:
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    return msg


def test_off_the_fast_path_the_full_parser_decides() -> None:
    folded = KAMAILIO_200.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1\r\n OPTIONS")
    assert read_reply(folded) is None
    assert transaction_key(_full(folded)) is not None  # valid, just not the usual shape
    short_body = KAMAILIO_200.replace(b"Content-Length: 0", b"Content-Length: 9")
    assert read_reply(short_body) is None
    bad_from = KAMAILIO_200.replace(b"From: <sip:", b"From: <sip")
    assert read_reply(bad_from) is None
    for data in (short_body, bad_from):
        try:
            parse_message(data)
        except SipParseError:
            continue
        raise AssertionError(f"the parser accepted {data!r}")
