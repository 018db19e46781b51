"""Headers multi-map (RFC 3261 §7.3) and the Via / CSeq / name-addr / Content-Length parsers."""

from __future__ import annotations

import pytest

from probes.sip.errors import SipParseError
from probes.sip.grammar import quote_string, split_list, unquote_string
from probes.sip.headers import (
    COMPACT_FORMS,
    Headers,
    NameAddr,
    Via,
    parse_content_length,
    parse_cseq,
    parse_name_addr,
    parse_via,
)


def test_multimap_basics() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a"), ("v", "SIP/2.0/UDP b"), ("Call-ID", "x")])
    assert len(h) == 3
    assert h.get("VIA") == "SIP/2.0/UDP a"
    assert h.get_all("via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert "call-id" in h and "i" in h and "cseq" not in h and 3 not in h
    assert list(h) == [("Via", "SIP/2.0/UDP a"), ("v", "SIP/2.0/UDP b"), ("Call-ID", "x")]
    assert h.get("Missing") is None and h.get_all("Missing") == []


def test_set_replaces_all_at_the_first_position() -> None:
    h = Headers([("A", "1"), ("Via", "x"), ("B", "2"), ("v", "y")])
    h.set("Via", "z")
    assert list(h) == [("A", "1"), ("Via", "z"), ("B", "2")]
    h.set("New", "n")
    assert list(h)[-1] == ("New", "n")
    h.remove("via")
    assert list(h) == [("A", "1"), ("B", "2"), ("New", "n")]
    h.remove("absent")
    assert len(h) == 3


def test_copy_and_equality() -> None:
    h = Headers([("A", "1")])
    c = h.copy()
    c.add("B", "2")
    assert h != c and h == Headers([("A", "1")])
    assert h != "A: 1"


@pytest.mark.parametrize(
    ("name", "value"), [("Bad Name", "v"), ("", "v"), ("X", "a\r\nB: c"), ("X", "a\n")]
)
def test_add_refuses_injection(name: str, value: str) -> None:
    with pytest.raises(SipParseError):
        Headers().add(name, value)
    with pytest.raises(SipParseError):
        Headers([("X", "1")]).set(name, value)


@pytest.mark.parametrize(("short", "long"), sorted(COMPACT_FORMS.items()))
def test_every_compact_form(short: str, long: str) -> None:
    h = Headers([(short.upper(), "value")])
    assert h.get(long) == "value"
    assert h.get(long.upper()) == "value"
    assert h.get(short) == "value"


def test_rfc3261_compact_forms_are_there() -> None:
    # §7.3.3 and §20: the ten RFC 3261 defines.
    expected = {"c": "content-type", "e": "content-encoding", "f": "from", "i": "call-id"}
    expected |= {"k": "supported", "l": "content-length", "m": "contact", "s": "subject"}
    expected |= {"t": "to", "v": "via"}
    assert expected.items() <= COMPACT_FORMS.items()
    assert COMPACT_FORMS["r"] == "refer-to" and COMPACT_FORMS["x"] == "session-expires"


def test_comma_splitting_respects_quotes_and_brackets() -> None:
    h = Headers(
        [
            ("Contact", '"Bell, Alexander" <sip:a@b;x=1,2>;q=0.5 , <sip:c@d>'),
            ("m", '"esc \\" , still" <sip:e@f>'),
            ("Allow", "INVITE,ACK , BYE,,"),
        ]
    )
    assert h.get_all("contact") == [
        '"Bell, Alexander" <sip:a@b;x=1,2>;q=0.5',
        "<sip:c@d>",
        '"esc \\" , still" <sip:e@f>',
    ]
    assert h.get_all("allow") == ["INVITE", "ACK", "BYE"]


@pytest.mark.parametrize(
    "name",
    [
        "WWW-Authenticate",
        "Authorization",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Date",
        "X-Unknown",
        "From",
    ],
)
def test_no_splitting_where_commas_are_not_list_separators(name: str) -> None:
    value = 'Digest realm="r", nonce="n", qop="auth,auth-int"'
    assert Headers([(name, value)]).get_all(name) == [value]


def test_split_list_edge_cases() -> None:
    assert split_list("") == []
    assert split_list(" a ,\tb ") == ["a", "b"]
    assert split_list('"unterminated, x') == ['"unterminated, x']
    assert split_list("<sip:unterminated, x") == ["<sip:unterminated, x"]


def test_quoted_string_helpers() -> None:
    assert unquote_string('"a \\"b\\" \\\\ c"') == 'a "b" \\ c'
    assert quote_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert unquote_string(quote_string('x"\\y')) == 'x"\\y'


def test_parse_via() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc;rport=5061;received=192.0.2.99")
    assert via == Via(
        protocol="SIP/2.0",
        transport="UDP",
        host="192.0.2.10",
        port=5060,
        params={"branch": "z9hG4bKabc", "rport": "5061", "received": "192.0.2.99"},
    )
    assert (via.branch, via.received, via.rport) == ("z9hG4bKabc", "192.0.2.99", 5061)


def test_parse_via_spacing_ipv6_and_valueless_params() -> None:
    via = parse_via(
        "sip / 2.0 / tls   [2001:db8::1] : 5061 ; Branch = z9hG4bKx ;rport;received=2001:db8::2"
    )
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "TLS",
        "2001:db8::1",
        5061,
    )
    assert via.params == {"branch": "z9hG4bKx", "rport": None, "received": "2001:db8::2"}
    assert via.rport is None and via.branch == "z9hG4bKx"
    assert parse_via("SIP/2.0/UDP h").params == {} and parse_via("SIP/2.0/UDP h").port is None


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP",
        "SIP/2.0 UDP h",
        "SIP/2.0/UDP h:70000",
        "SIP/2.0/UDP h;;",
        "SIP/2.0/UDP h;branch=",
        "SIP/2.0/UDP h, SIP/2.0/UDP g",  # one via-parm only: split with get_all
        "SIP/2.0/UDP 192.0.2.15;;,;,,",  # RFC 4475 §3.1.2.1
    ],
)
def test_parse_via_malformed(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_via(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1 OPTIONS", (1, "OPTIONS")),
        ("0009 \t INVITE", (9, "INVITE")),
        ("4294967295 X-Y", (4294967295, "X-Y")),
        ("000000000000000007 ACK", (7, "ACK")),
    ],
)
def test_parse_cseq(value: str, expected: tuple[int, str]) -> None:
    assert parse_cseq(value) == expected


@pytest.mark.parametrize(
    "value", ["", "1", "OPTIONS", "-1 OPTIONS", "1 OPT IONS", "4294967296 A", "1 A/B"]
)
def test_parse_cseq_malformed(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_cseq(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<sip:a@b>", NameAddr(None, "sip:a@b", {})),
        ("sip:a@b;tag=1", NameAddr(None, "sip:a@b", {"tag": "1"})),
        (
            '"Alice \\"A\\" Smith" <sip:a@b>;tag=x;Q=0.5',
            NameAddr('Alice "A" Smith', "sip:a@b", {"tag": "x", "q": "0.5"}),
        ),
        ("A. Bell <sip:a@b>", NameAddr("A. Bell", "sip:a@b", {})),
        (
            "caller<sip:caller@example.com>;tag=323",
            NameAddr("caller", "sip:caller@example.com", {"tag": "323"}),
        ),
        ('"" <tel:+1555>', NameAddr("", "tel:+1555", {})),
        (
            '<sip:a@b;lr>;expires=60;x="q;v"',
            NameAddr(None, "sip:a@b;lr", {"expires": "60", "x": '"q;v"'}),
        ),
        ("isbn:2983792873", NameAddr(None, "isbn:2983792873", {})),
        (
            "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
            NameAddr(None, "sip:user@example.com?Route=%3Csip:sip.example.com%3E", {}),
        ),
    ],
)
def test_parse_name_addr(value: str, expected: NameAddr) -> None:
    assert parse_name_addr(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 §3.1.2.6
        '"Watson, Thomas" < sip:t.watson@example.org >',  # §3.1.2.14
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # §3.1.2.15
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # §3.1.2.13
        '"Joe" <sip:joe@example.org>;;;;',  # §3.1.2.1
        "<sip:a@b",
        "<>",
        "<sip:a b@c>",
        "<sip:a@b>;tag=",
        "no-scheme",
    ],
)
def test_parse_name_addr_malformed(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(value)


@pytest.mark.parametrize(("value", "expected"), [("0", 0), (" 42 ", 42), ("0000150", 150)])
def test_parse_content_length(value: str, expected: int) -> None:
    assert parse_content_length(value) == expected


@pytest.mark.parametrize("value", ["", "-999", "+1", "1.0", "٣", "12345678901", "1 2"])
def test_parse_content_length_malformed(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_content_length(value)
