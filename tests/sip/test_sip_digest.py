"""Digest answers against the RFCs' published vectors (RFC 2617 §3.5, RFC 7616 §3.9.1)."""

from __future__ import annotations

import hashlib
import re

import pytest

from probes.sip.digest import (
    DigestChallenge,
    DigestError,
    authorization_header,
    parse_challenge,
    select_challenge,
)


def params_of(value: str) -> dict[str, str]:
    assert value.startswith("Digest ")
    return {
        m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
        for m in re.finditer(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))', value[7:])
    }


def test_rfc2617_section_3_5_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge.qop == ("auth", "auth-int") and challenge.algorithm == "MD5"
    value = authorization_header(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
        nc=1,
    )
    p = params_of(value)
    assert p["response"] == "6629fae49393a05397450978507c4ef1"  # RFC 2617 §3.5
    assert p["username"] == "Mufasa" and p["realm"] == "testrealm@host.com"
    assert (p["qop"], p["nc"], p["cnonce"]) == ("auth", "00000001", "0a4f113b")
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert "Circle" not in value


RFC7616 = {
    "realm": "http-auth@example.org",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        # RFC 7616 §3.9.1, the published responses.
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, response: str) -> None:
    challenge = parse_challenge(
        f'Digest realm="{RFC7616["realm"]}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616["nonce"]}", opaque="{RFC7616["opaque"]}"'
    )
    value = authorization_header(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616["cnonce"],
    )
    p = params_of(value)
    assert p["response"] == response
    assert p["algorithm"] == algorithm


def h(name: str, text: str) -> str:
    return hashlib.new(name, text.encode()).hexdigest()


def test_legacy_no_qop_rfc2069() -> None:
    challenge = parse_challenge('Digest realm="sip.example.net", nonce="abc"')
    p = params_of(
        authorization_header(
            challenge, method="REGISTER", uri="sip:sip.example.net", username="u", password="p"
        )
    )
    ha1 = h("md5", "u:sip.example.net:p")
    ha2 = h("md5", "REGISTER:sip:sip.example.net")
    assert p["response"] == h("md5", f"{ha1}:abc:{ha2}")
    assert "qop" not in p and "nc" not in p and "cnonce" not in p


@pytest.mark.parametrize(
    ("algorithm", "hashname"), [("MD5-sess", "md5"), ("SHA-256-sess", "sha256")]
)
def test_sess_variants(algorithm: str, hashname: str) -> None:
    challenge = parse_challenge(f'Digest realm="r", nonce="n", qop="auth", algorithm={algorithm}')
    p = params_of(
        authorization_header(
            challenge, method="OPTIONS", uri="sip:x", username="u", password="p", cnonce="c", nc=2
        )
    )
    ha1 = h(hashname, h(hashname, "u:r:p") + ":n:c")
    ha2 = h(hashname, "OPTIONS:sip:x")
    assert p["response"] == h(hashname, f"{ha1}:n:00000002:c:auth:{ha2}")


def test_auth_int_hashes_the_body() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    body = b"v=0\r\n"
    p = params_of(
        authorization_header(
            challenge,
            method="INVITE",
            uri="sip:x",
            username="u",
            password="p",
            cnonce="c",
            body=body,
        )
    )
    ha2 = h("md5", f"INVITE:sip:x:{hashlib.md5(body).hexdigest()}")
    assert p["qop"] == "auth-int"
    assert p["response"] == h("md5", f"{h('md5', 'u:r:p')}:n:00000001:c:auth-int:{ha2}")


def test_userhash() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop=auth, userhash=true')
    p = params_of(
        authorization_header(challenge, method="OPTIONS", uri="sip:x", username="u", password="p")
    )
    assert p["username"] == h("md5", "u:r") and p["userhash"] == "true"


def test_generated_cnonce_is_fresh_and_used() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    a = params_of(authorization_header(challenge, method="O", uri="u", username="u", password="p"))
    b = params_of(authorization_header(challenge, method="O", uri="u", username="u", password="p"))
    assert a["cnonce"] != b["cnonce"] and len(a["cnonce"]) >= 16
    assert a["response"] != b["response"]


def test_parse_challenge_fields() -> None:
    c = parse_challenge(
        'digest  realm="a \\"q\\" realm",nonce=tok, stale=TRUE,algorithm=SHA-256,opaque="", '
    )
    assert c == DigestChallenge(
        realm='a "q" realm', nonce="tok", opaque="", algorithm="SHA-256", stale=True
    )


@pytest.mark.parametrize(
    "value",
    [
        'Basic realm="x"',
        'Digest nonce="n"',
        'Digest realm="r"',
        'Digest realm="r", nonce="unterminated',
        "Digest realm=r nonce=n",
        "NoOneKnowsThisScheme opaque-data=here",  # RFC 4475 §3.3.7
    ],
)
def test_bad_challenges(value: str) -> None:
    with pytest.raises(DigestError):
        parse_challenge(value)


def test_unsupported_algorithm_and_qop() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-1')
    assert not challenge.supported
    with pytest.raises(DigestError, match="unsupported digest algorithm"):
        authorization_header(challenge, method="O", uri="u", username="u", password="p")
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-conf"')
    with pytest.raises(DigestError, match="no supported qop"):
        authorization_header(challenge, method="O", uri="u", username="u", password="p")


def test_errors_never_carry_the_password() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=XYZ')
    with pytest.raises(DigestError) as info:
        authorization_header(challenge, method="O", uri="u", username="u", password="s3cret!")
    assert "s3cret" not in str(info.value)


def test_select_challenge_takes_the_first_supported() -> None:
    chosen = select_challenge(
        [
            'Digest realm="r", nonce="1", algorithm=SHA-1',
            "garbage",
            'Digest realm="r", nonce="2", algorithm=SHA-256',
            'Digest realm="r", nonce="3", algorithm=MD5',
        ]
    )
    assert (chosen.nonce, chosen.algorithm) == ("2", "SHA-256")
    with pytest.raises(DigestError):
        select_challenge(['Digest realm="r", nonce="1", algorithm=SHA-1'])
