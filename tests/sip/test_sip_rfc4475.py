"""RFC 4475 torture messages: each must get the verdict verdicts.tsv gives (table-driven)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from probes.sip.errors import SipParseError
from probes.sip.headers import parse_name_addr, parse_via
from probes.sip.message import SipRequest, SipResponse, parse_message, serialize

# RFC 4475 §3's messages, byte-exact (tests/fixtures/rfc4475/README.md says where from).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rfc4475"


def _verdicts() -> list[tuple[str, str, str, str]]:
    with (FIXTURES / "verdicts.tsv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(r["file"], r["section"], r["title"], r["expect"]) for r in rows]


VERDICTS = _verdicts()


def test_the_table_covers_every_fixture() -> None:
    files = {p.name for p in FIXTURES.glob("*.dat")}
    assert len(VERDICTS) == 50
    assert {row[0] for row in VERDICTS} == files
    assert {row[3] for row in VERDICTS} == {"parse", "reject"}


@pytest.mark.parametrize(
    ("name", "section", "title", "expect"), VERDICTS, ids=[v[0] for v in VERDICTS]
)
def test_verdict(name: str, section: str, title: str, expect: str) -> None:
    data = (FIXTURES / name).read_bytes()
    if expect == "reject":
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.reason  # a short, stable reason for the log and `sip lint`
    else:
        msg = parse_message(data)
        assert isinstance(msg, SipRequest | SipResponse)
        # The verdict is stable across a round trip through our own serializer.
        again = parse_message(serialize(msg))
        assert again.body == msg.body
        assert [(n, v) for n, v in again.headers if n.lower() not in ("content-length", "l")] == [
            (n, v) for n, v in msg.headers if n.lower() not in ("content-length", "l")
        ]


# Why each §3.1.2 message is refused: the rule the RFC's text names, not just "some error".
REJECT_REASONS = {
    "TC_BADINV01_I.dat": "malformed Via",  # 3.1.2.1 empty params ;;,;,, (Contact ;;;; too)
    "TC_CLERR_I.dat": "body shorter than Content-Length",
    "TC_NCL_I.dat": "invalid Content-Length",
    "TC_SCALAR02_V.dat": "CSeq number too large",
    "TC_SCALARLG_V.dat": "CSeq number too large",
    "TC_QUOTBAL_I.dat": "malformed From/To",
    "TC_LTGTRURI_I.dat": "malformed Request-URI",
    "TC_LWSRURI_I.dat": "malformed Request-Line",
    "TC_LWSSTART_V.dat": "malformed Request-Line",
    "TC_TRWS_I.dat": "malformed Request-Line",
    "TC_ESCRURI_V.dat": "headers in Request-URI",
    "TC_BADDATE_V.dat": "malformed Date",
    "TC_REGBADCT_I.dat": "malformed Contact",
    "TC_BADASPEC_I.dat": "malformed From/To",
    "TC_BADDN_I.dat": "malformed From/To",
    "TC_BADVERS_V.dat": "unsupported SIP version",
    "TC_MISMATCH01_V.dat": "CSeq method does not match the request method",
    "TC_MISMATCH02_V.dat": "CSeq method does not match the request method",
    "TC_BIGCODE_V.dat": "invalid status code",
    "TC_TEST_I.dat": "malformed Request-Line",
}


def test_reject_reasons_cover_the_rejects() -> None:
    assert set(REJECT_REASONS) == {v[0] for v in VERDICTS if v[3] == "reject"}


@pytest.mark.parametrize(("name", "reason"), sorted(REJECT_REASONS.items()))
def test_reject_reason(name: str, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message((FIXTURES / name).read_bytes())
    assert info.value.reason == reason


def test_badinv01_contact_alone_is_also_refused() -> None:
    # §3.1.2.1 breaks two headers; with the Via repaired the Contact's ";;;;" still fails.
    data = (FIXTURES / "TC_BADINV01_I.dat").read_bytes()
    data = data.replace(b"192.0.2.15;;,;,,", b"192.0.2.15")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.reason == "malformed Contact"


def test_wsinv_values_after_unfolding() -> None:
    msg = parse_message((FIXTURES / "TC_WSINV.dat").read_bytes())
    assert isinstance(msg, SipRequest)
    assert msg.headers.get("To") == "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    to = parse_name_addr(msg.headers.get("t") or "")
    assert to.params == {"tag": "1918181833n"} and to.display is None
    sender = parse_name_addr(msg.headers.get("from") or "")
    assert sender.display == 'J Rosenberg \\"'
    assert sender.uri == "sip:jdrosen@example.com" and sender.params["tag"] == "98asjd8"
    assert msg.headers.get("cseq") == "0009 INVITE"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    vias = [parse_via(v) for v in msg.headers.get_all("via")]
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    contact = parse_name_addr(msg.headers.get("contact") or "")
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(msg.body) == 150


def test_intmeth_keeps_the_wide_characters() -> None:
    msg = parse_message((FIXTURES / "TC_INTMETH.dat").read_bytes())
    assert isinstance(msg, SipRequest)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    to = parse_name_addr(msg.headers.get("to") or "")
    assert to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_dblreq_takes_the_first_message_only() -> None:
    msg = parse_message((FIXTURES / "TC_DBLREQ.dat").read_bytes())
    assert isinstance(msg, SipRequest)
    assert msg.method == "REGISTER" and msg.body == b""


def test_mpart01_binary_body_is_exact() -> None:
    data = (FIXTURES / "TC_MPART01.dat").read_bytes()
    msg = parse_message(data)
    assert len(msg.body) == 553
    assert data.endswith(msg.body)


def test_mcl01_first_content_length_frames_the_body() -> None:
    msg = parse_message((FIXTURES / "TC_MCL01_I.dat").read_bytes())
    assert msg.body == b"There's no wa"


def test_unreason_reason_phrase_is_utf8() -> None:
    msg = parse_message((FIXTURES / "TC_UNREASON_V.dat").read_bytes())
    assert isinstance(msg, SipResponse)
    assert msg.status == 200
    assert msg.reason.startswith("= 2**3 * 5**2 но сто девяносто девять")


def test_noreason_empty_phrase() -> None:
    msg = parse_message((FIXTURES / "TC_NOREASON_V.dat").read_bytes())
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (100, "")


def test_esc02_escaped_header_name_is_another_header() -> None:
    msg = parse_message((FIXTURES / "TC_ESC02_V.dat").read_bytes())
    assert msg.headers.get_all("contact") == [
        "<sip:alias1@host1.example.com>",
        "<sip:alias3@host3.example.com>",
    ]
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
