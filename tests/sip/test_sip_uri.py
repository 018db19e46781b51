"""SipUri (RFC 3261 §19.1, §25.1): escapes, IPv6 references, params, headers, round trips."""

from __future__ import annotations

import pytest

from probes.sip.errors import SipParseError
from probes.sip.uri import SipUri, default_port


def test_full_uri() -> None:
    uri = SipUri.parse(
        "sips:alice:secret@Example.COM:5061;transport=TCP;lr;maddr=10.0.0.1?Subject=hi&x="
    )
    assert uri.scheme == "sips"
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "secret", "Example.COM", 5061)
    assert uri.params == (("transport", "TCP"), ("lr", None), ("maddr", "10.0.0.1"))
    assert uri.headers == (("Subject", "hi"), ("x", ""))
    assert uri.param("TRANSPORT") == "TCP" and uri.param("lr") is None and uri.has_param("LR")
    assert not uri.has_param("ttl")
    assert uri.transport == "tls"  # sips: over TCP is TLS


@pytest.mark.parametrize(
    ("text", "transport", "port"),
    [
        ("sip:h", "udp", 5060),
        ("sip:h;transport=TCP", "tcp", 5060),
        ("sip:h;transport=tls", "tls", 5061),
        ("sips:h", "tls", 5061),
        ("sips:h;transport=tcp", "tls", 5061),
        ("sip:h;transport=sctp", "sctp", 5060),
    ],
)
def test_transport_and_default_port(text: str, transport: str, port: int) -> None:
    uri = SipUri.parse(text)
    assert uri.transport == transport
    assert default_port(uri.transport) == port


def test_ipv6_reference() -> None:
    uri = SipUri.parse("sip:[2001:db8::10]:5070;transport=udp")
    assert (uri.host, uri.port) == ("2001:db8::10", 5070)
    assert uri.hostport == "[2001:db8::10]:5070"
    assert str(uri) == "sip:[2001:db8::10]:5070;transport=udp"
    assert SipUri.parse("sip:user@[::1]").host == "::1"


def test_escapes_are_resolved_and_rewritten() -> None:
    # RFC 4475 §3.1.1.3: these are the same URI as sip:caller@...;lr;name=value%41
    uri = SipUri.parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "caller"
    assert uri.params == (("lr", None), ("name", "value%41"))
    assert str(uri) == "sip:caller@host5.example.net;lr;name=value%2541"
    assert SipUri.parse(str(uri)) == uri


def test_escaped_nul_and_utf8() -> None:
    uri = SipUri.parse("sip:null-%00-null@example.com")  # RFC 4475 §3.1.1.4
    assert uri.user == "null-\x00-null"
    assert str(uri) == "sip:null-%00-null@example.com"
    assert SipUri.parse("sip:%E2%82%AC@h").user == "€"
    odd = SipUri.parse("sip:%FF@h")  # not UTF-8: kept losslessly
    assert str(odd) == "sip:%FF@h"


def test_wide_user_and_password_characters() -> None:
    # RFC 4475 §3.1.1.2's Request-URI: "?", ";", "," and "/" are legal in the user part.
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    uri = SipUri.parse(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.params == ()
    assert str(uri) == text


def test_semicolon_in_user_is_not_a_param() -> None:
    uri = SipUri.parse("sip:user;par=u%40example.net@example.com")  # RFC 4475 §3.1.1.9
    assert uri.user == "user;par=u@example.net" and uri.params == ()
    assert str(uri) == "sip:user;par=u%40example.net@example.com"


def test_user_with_telephone_number() -> None:
    uri = SipUri.parse("sip:+19725552222@gw1.example.net;user=phone")
    assert uri.user == "+19725552222" and uri.param("user") == "phone"


def test_str_escapes_what_the_grammar_forbids() -> None:
    uri = SipUri("sip", "a b@c", "p:w", "h.example", None, (("n", "v w"),), (("h", "x&y"),))
    text = str(uri)
    assert text == "sip:a%20b%40c:p%3Aw@h.example;n=v%20w?h=x%26y"
    assert SipUri.parse(text) == uri


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "tel:+15551234",
        "sip:user@",
        "sip:user@host@other",
        "sip:host:99999",
        "sip:host:",
        "sip:-host.example",
        "sip:host..example",
        "sip:[2001:db8::zz]",
        "sip:[fe80::1",
        "sip:ho st",
        "<sip:host>",
        "sip:host;;lr",
        "sip:host;a=%zz",
        "sip:host?",
        "sip:host?novalue",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(text)


def test_scheme_is_case_insensitive() -> None:
    assert SipUri.parse("SIP:Host").scheme == "sip"
    assert SipUri.parse("SiPs:Host").scheme == "sips"
