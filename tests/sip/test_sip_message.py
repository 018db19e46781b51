"""parse_message / serialize / transaction_key: framing, folding, limits, round trips."""

from __future__ import annotations

import pytest

from probes.sip.errors import SipParseError
from probes.sip.headers import Headers
from probes.sip.limits import MAX_HEADER_LINE, MAX_HEADERS, MAX_MESSAGE_BYTES, MAX_START_LINE
from probes.sip.message import (
    SipRequest,
    SipResponse,
    parse_message,
    serialize,
    transaction_key,
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:40214;branch=z9hG4bKabc123;rport=40214;received=192.0.2.10\r\n"
    b"From: <sip:trunkwatch@192.0.2.10>;tag=9f2c41d7\r\n"
    b"To: <sip:carrier.example.net>;tag=a6a1c5f6\r\n"
    b"Call-ID: 6f1c2b7e@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OPTIONS = (
    b"OPTIONS sip:carrier.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc123;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:trunkwatch@192.0.2.10>;tag=9f2c41d7\r\n"
    b"To: <sip:carrier.example.net>\r\n"
    b"Call-ID: 6f1c2b7e@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"body"
)


def test_response_fields() -> None:
    msg = parse_message(OK_200)
    assert isinstance(msg, SipResponse)
    assert (msg.version, msg.status, msg.reason, msg.body) == ("SIP/2.0", 200, "OK", b"")
    assert msg.headers.get("call-id") == "6f1c2b7e@192.0.2.10"
    assert len(msg.headers) == 6


def test_request_fields() -> None:
    msg = parse_message(OPTIONS)
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.uri, msg.version, msg.body) == (
        "OPTIONS",
        "sip:carrier.example.net",
        "SIP/2.0",
        b"body",
    )
    assert msg.headers.get("Max-Forwards") == "70"


def test_transaction_key() -> None:
    msg = parse_message(OK_200)
    assert isinstance(msg, SipResponse)
    assert transaction_key(msg) == ("z9hG4bKabc123", "OPTIONS", "6f1c2b7e@192.0.2.10")


@pytest.mark.parametrize(
    ("via", "branch"),
    [
        ("SIP/2.0/UDP h;branch=z9hG4bK1", "z9hG4bK1"),
        ("SIP/2.0/UDP h ; BRANCH = z9hG4bK2 ;rport", "z9hG4bK2"),  # param names: any case
        ("SIP/2.0/UDP h;branch=z9hG4bK3, SIP/2.0/UDP g;branch=z9hG4bK4", "z9hG4bK3"),
        ('SIP/2.0/UDP h;x=";branch=no";branch=z9hG4bK5', "z9hG4bK5"),
        ("SIP/2.0/UDP h;rport", None),
    ],
)
def test_transaction_key_uses_the_top_via_branch(via: str, branch: str | None) -> None:
    data = OK_200.replace(
        b"SIP/2.0/UDP 192.0.2.10:40214;branch=z9hG4bKabc123;rport=40214;received=192.0.2.10",
        via.encode(),
    )
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    key = transaction_key(msg)
    assert (key[0] if key else None) == branch


@pytest.mark.parametrize("missing", [b"Via", b"CSeq", b"Call-ID"])
def test_transaction_key_none_without_its_parts(missing: bytes) -> None:
    lines = [line for line in OK_200.split(b"\r\n") if not line.startswith(missing + b":")]
    msg = parse_message(b"\r\n".join(lines))
    assert isinstance(msg, SipResponse)
    assert transaction_key(msg) is None


def test_transaction_key_of_a_hand_built_response_with_bad_values() -> None:
    headers = Headers([("Via", "not a via"), ("CSeq", "x"), ("Call-ID", "a@b")])
    assert transaction_key(SipResponse(200, "OK", headers)) is None


def test_compact_forms_are_the_long_names() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\n"
        b"v: SIP/2.0/TCP h;branch=z9hG4bKx\r\n"
        b"f: <sip:a@b>;tag=1\r\n"
        b"t: <sip:c@d>\r\n"
        b"i: abc\r\n"
        b"CSeq: 2 INVITE\r\n"
        b"m: <sip:a@10.0.0.1>\r\n"
        b"k: 100rel, timer\r\n"
        b"c: application/sdp\r\n"
        b"l: 0\r\n\r\n"
    )
    msg = parse_message(data)
    h = msg.headers
    assert h.get("Via") == "SIP/2.0/TCP h;branch=z9hG4bKx"
    assert h.get("FROM") == "<sip:a@b>;tag=1"
    assert h.get("call-id") == "abc"
    assert h.get("Contact") == "<sip:a@10.0.0.1>"
    assert h.get_all("Supported") == ["100rel", "timer"]
    assert h.get("Content-Type") == "application/sdp"
    assert "content-length" in h
    # Original names are kept for iteration and serialization.
    assert [name for name, _ in h][:3] == ["v", "f", "t"]


def test_folded_header_is_one_value() -> None:
    data = OK_200.replace(b"Call-ID: 6f1c2b7e@192.0.2.10", b"Call-ID:\r\n  6f1c2b7e@192.0.2.10")
    data = data.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1\r\n\tOPTIONS")
    msg = parse_message(data)
    assert msg.headers.get("Call-ID") == "6f1c2b7e@192.0.2.10"
    assert msg.headers.get("CSeq") == "1 OPTIONS"


def test_space_before_colon_is_hcolon() -> None:
    data = OK_200.replace(b"Call-ID: ", b"Call-ID \t:   ")
    msg = parse_message(data)
    assert msg.headers.get("call-id") == "6f1c2b7e@192.0.2.10"
    assert ("Call-ID", "6f1c2b7e@192.0.2.10") in list(msg.headers)


def test_leading_crlfs_are_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + OK_200) == parse_message(OK_200)


def test_missing_empty_line_after_last_header_tolerated_in_a_datagram() -> None:
    msg = parse_message(OK_200[:-2])
    assert msg.body == b"" and msg.headers.get("cseq") == "1 OPTIONS"


def test_datagram_body_longer_than_content_length_is_cut() -> None:
    msg = parse_message(OPTIONS + b"trailing junk")
    assert msg.body == b"body"


def test_datagram_without_content_length_takes_the_rest() -> None:
    data = OPTIONS.replace(b"Content-Length: 4\r\n", b"") + b" and more"
    assert parse_message(data).body == b"body and more"


def test_status_line_without_reason_space_is_tolerated() -> None:
    msg = parse_message(OK_200.replace(b"SIP/2.0 200 OK", b"SIP/2.0 200"))
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (200, "")


def test_lower_case_version() -> None:
    msg = parse_message(OK_200.replace(b"SIP/2.0 200 OK", b"sip/2.0 404 Not Found"))
    assert isinstance(msg, SipResponse)
    assert (msg.version, msg.status) == ("SIP/2.0", 404)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no empty line after the header fields"),
        (b"\r\n\r\n", "no empty line after the header fields"),
        (b"SIP/2.0 200 OK\r\nVia: x", "no empty line after the header fields"),
        (OK_200.replace(b"200 OK", b"20 OK"), "invalid status code"),
        (OK_200.replace(b"200 OK", b"099 OK"), "invalid status code"),
        (OK_200.replace(b"200 OK", b"700 OK"), "invalid status code"),
        (OK_200.replace(b"200 OK", "2٠٠ OK".encode()), "invalid status code"),
        (OK_200.replace(b"SIP/2.0 200", b"SIP/2.1 200"), "unsupported SIP version"),
        (OK_200.replace(b"SIP/2.0 200", b"SIP/2 200"), "malformed SIP version"),
        (OK_200.replace(b"Call-ID: ", b"Call-ID "), "header line without a colon"),
        (OK_200.replace(b"Call-ID: ", b"Call ID: "), "invalid header name"),
        (OK_200.replace(b"Call-ID: ", b": "), "invalid header name"),
        (OK_200.replace(b"Call-ID: 6f", b"Call-ID: 6\rf"), "bare CR or LF in header block"),
        (OK_200.replace(b"Call-ID: 6f", b"Call-ID: 6\nf"), "bare CR or LF in header block"),
        (OK_200.replace(b"200 OK", b"200 O\rK"), "bare CR or LF in header block"),
        (
            OK_200.replace(b"SIP/2.0 200 OK\r\n", b"SIP/2.0 200 OK\r\n folded\r\n"),
            "continuation line before any header field",
        ),
        (b" " + OK_200, "malformed start line"),
        (OK_200.replace(b"CSeq: 1 OPTIONS", b"CSeq: OPTIONS"), "malformed CSeq"),
        (OK_200.replace(b"CSeq: 1 OPTIONS", b"CSeq: 4294967296 OPTIONS"), "CSeq number too large"),
        (
            OK_200.replace(b"Content-Length: 0", b"Content-Length: 1"),
            "body shorter than Content-Length",
        ),
        (OK_200.replace(b"Content-Length: 0", b"Content-Length: +0"), "invalid Content-Length"),
        (
            OK_200.replace(b"Content-Length: 0", b"Content-Length: 99999999999"),
            "Content-Length too large",
        ),
        (OPTIONS.replace(b"OPTIONS sip:", b"OPT@ONS sip:"), "invalid method"),
        (
            OPTIONS.replace(b"sip:carrier.example.net", b"sip:carrier..example.net"),
            "malformed Request-URI",
        ),
        (
            OPTIONS.replace(b"sip:carrier.example.net", b"carrier.example.net"),
            "malformed Request-URI",
        ),
        (
            OPTIONS.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 options"),
            "CSeq method does not match the request method",
        ),
    ],
)
def test_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.reason == reason


def test_limits() -> None:
    with pytest.raises(SipParseError, match="message too large"):
        parse_message(OK_200 + b"x" * MAX_MESSAGE_BYTES)
    long_line = b"X-Long: " + b"a" * MAX_HEADER_LINE + b"\r\n"
    with pytest.raises(SipParseError, match="header line too long"):
        parse_message(OK_200.replace(b"CSeq:", long_line + b"CSeq:"))
    folded = b"X-Folded: a\r\n" + b" bcdefgh\r\n" * (MAX_HEADER_LINE // 8 + 1)
    with pytest.raises(SipParseError, match="folded header value too long"):
        parse_message(OK_200.replace(b"CSeq:", folded + b"CSeq:"))
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS))
    with pytest.raises(SipParseError, match="too many header fields"):
        parse_message(OK_200.replace(b"CSeq:", many + b"CSeq:"))
    with pytest.raises(SipParseError, match="start line too long"):
        parse_message(OK_200.replace(b"200 OK", b"200 " + b"K" * MAX_START_LINE))
    # Just under the limits is fine.
    fine = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS - 6))
    assert len(parse_message(OK_200.replace(b"CSeq:", fine + b"CSeq:")).headers) == MAX_HEADERS


def test_error_detail_is_truncated_untrusted_text() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(OK_200.replace(b"CSeq: 1 OPTIONS", b"CSeq: " + b"z" * 500))
    detail = info.value.detail
    # 80 characters of the peer's text, then how much was cut (probes/untrusted.py)
    assert detail is not None and detail.endswith("…(+421 bytes)")
    assert len(detail.partition("…")[0]) <= 80
    assert str(info.value).startswith("malformed CSeq: ")


def test_serialize_sets_content_length_and_crlf() -> None:
    msg = parse_message(OPTIONS)
    msg.body = b"new body!"
    wire = serialize(msg)
    assert b"\r\nContent-Length: 9\r\n\r\nnew body!" in wire
    assert wire.count(b"Content-Length") == 1
    assert b"\n" not in wire.replace(b"\r\n", b"")
    assert parse_message(wire).body == b"new body!"


def test_serialize_adds_missing_content_length_and_drops_duplicates() -> None:
    headers = Headers([("Call-ID", "x"), ("l", "5"), ("Content-Length", "7")])
    wire = serialize(SipResponse(200, "OK", headers, b"abc"))
    assert wire == b"SIP/2.0 200 OK\r\nCall-ID: x\r\nl: 3\r\n\r\nabc"
    wire = serialize(SipRequest("BYE", "sip:a@b", Headers([("CSeq", "2 BYE")])))
    assert wire == b"BYE sip:a@b SIP/2.0\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize("data", [OK_200, OPTIONS])
def test_round_trip_is_byte_exact_for_canonical_messages(data: bytes) -> None:
    assert serialize(parse_message(data)) == data


def test_non_utf8_header_bytes_survive_a_round_trip() -> None:
    data = OK_200.replace(b"200 OK", b"200 \xff\xfeOK")
    msg = parse_message(data)
    assert serialize(msg) == data
