"""RFC 3261 §25.1 building blocks shared by the URI, header and message parsers.

Header values reach these patterns already unfolded (§7.3.1), so LWS is plain SP/HTAB here.
Repetitions are possessive (`*+`, `++`) wherever the grammar is unambiguous, so a hostile value
cannot make the regex engine backtrack exponentially.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

SWS = r"[ \t]*+"  # SWS = [LWS]
LWS = r"[ \t]++"  # LWS = [*WSP CRLF] 1*WSP, after unfolding
TOKEN_CLASS = r"A-Za-z0-9\-.!%*_+`'~"  # token = 1*(alphanum / "-" / "." / "!" / "%" / ...)
TOKEN = rf"[{TOKEN_CLASS}]++"
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII; quoted-pair = "\" (%x00-09 / %x0B-0C
# / %x0E-7F). Non-ASCII covers UTF-8 text and the surrogate escapes of undecodable bytes.
QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]++|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*+"'
# IPv6reference = "[" IPv6address "]"; checked loosely here, exactly where a host is parsed.
IPV6_REF = r"\[[0-9A-Fa-f:.]++\]"
HOSTNAME = r"[A-Za-z0-9][A-Za-z0-9\-.]*+"
HOST = rf"(?:{IPV6_REF}|{HOSTNAME})"
# port = 1*DIGIT, held to 0-65535 (leading zeros allowed) so Via validation and parse_via agree.
PORT = r"0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
# gen-value = token / host / quoted-string. A bare IPv6 address (received=2001:db8::1, §20.42
# via-received) is not a token; it holds a colon, so it never matches the same text as one.
GEN_VALUE = rf"(?:{TOKEN}(?!:)|{IPV6_REF}|[0-9A-Fa-f.]*+:[0-9A-Fa-f:.]*+|{QUOTED})"
# generic-param = token [ EQUAL gen-value ], with SEMI = SWS ";" SWS and EQUAL = SWS "=" SWS.
PARAM = rf"{SWS};{SWS}{TOKEN}(?:{SWS}={SWS}{GEN_VALUE})?"
PARAMS = rf"(?:{PARAM})*+"

# URI characters (RFC 2396 uric as used by §25.1 absoluteURI, plus "[" "]" of SIP-URI hosts and
# params); "%" only as an escape (escaped = "%" HEXDIG HEXDIG).
_URIC = r"A-Za-z0-9\-_.!~*'()&=+$,;?/:@\[\]"
_URIC_BARE = r"A-Za-z0-9\-_.!~*'()&=+$/:@\[\]"  # addr-spec outside <>: no "," ";" "?" (§20.10)
SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*+"


def _escaped_run(cls: str) -> str:
    # 1*( [cls] / escaped ), unrolled so each character is matched exactly one way.
    return rf"(?:[{cls}]++|%[0-9A-Fa-f]{{2}})++"


URI = rf"{SCHEME}:{_escaped_run(_URIC)}"
URI_BARE = rf"{SCHEME}:{_escaped_run(_URIC_BARE)}"

# display-name = *(token LWS) / quoted-string. RFC 4475 §3.1.1.6: no LWS before "<" is valid.
DISPLAY_NAME = rf"(?:{QUOTED}|{TOKEN}(?:{LWS}{TOKEN})*+)"
# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT, LAQUOT = SWS "<", RAQUOT = ">" SWS.
NAME_ADDR = rf"(?:(?P<display>{DISPLAY_NAME}){SWS})?<(?P<uri>{URI})>"
# from-spec / to / contact-param / rec-route: ( name-addr / addr-spec ) *( SEMI param ).
ADDRESS = rf"(?:{NAME_ADDR}|(?P<bare>{URI_BARE})){SWS}(?P<params>{PARAMS})"
ADDRESS_RE = re.compile(ADDRESS)
_ADDRESS_NOGROUP = re.sub(r"\(\?P<\w+>", "(?:", ADDRESS)
_NAME_ADDR_NOGROUP = re.sub(r"\(\?P<\w+>", "(?:", NAME_ADDR)
COMMA = rf"{SWS},{SWS}"
# Contact = ("Contact" / "m") HCOLON ( STAR / (contact-param *(COMMA contact-param)))
CONTACT_LIST_RE = re.compile(rf"\*|{_ADDRESS_NOGROUP}(?:{COMMA}{_ADDRESS_NOGROUP})*+")
# Route / Record-Route = route-param *(COMMA route-param); route-param = name-addr *(SEMI param)
ROUTE_LIST_RE = re.compile(
    rf"{_NAME_ADDR_NOGROUP}{SWS}{PARAMS}(?:{COMMA}{_NAME_ADDR_NOGROUP}{SWS}{PARAMS})*+"
)

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH = SWS "/" SWS
# sent-by = host [ COLON port ]
VIA_PARM = (
    rf"(?P<name>{TOKEN}){SWS}/{SWS}(?P<version>{TOKEN}){SWS}/{SWS}(?P<transport>{TOKEN})"
    rf"{LWS}(?P<host>{HOST})(?:{SWS}:{SWS}(?P<port>{PORT})(?![0-9]))?(?P<params>{PARAMS})"
)
VIA_PARM_RE = re.compile(VIA_PARM)
_VIA_NOGROUP = re.sub(r"\(\?P<\w+>", "(?:", VIA_PARM)
VIA_LIST_RE = re.compile(rf"{_VIA_NOGROUP}(?:{COMMA}{_VIA_NOGROUP})*+")

# Fast alternatives for the shapes almost every peer sends, each a strict subset of the grammar
# it precedes in an alternation: when one matches the full pattern would too, so the verdict is
# the grammar's, and the simple character runs are cheaper for the regex engine to walk.
# ";name=token" params without spaces; nothing here can follow a value with ":", so the full
# GEN_VALUE's (?!:) always holds.
_FAST_PARAMS = rf"(?:;{TOKEN}(?:={TOKEN})?)*+"
_FAST_ADDRESS = rf"<[Ss][Ii][Pp][Ss]?:[{_URIC}]++>{_FAST_PARAMS}"
_FAST_VIA = rf"SIP/2\.0/(?:UDP|TCP|TLS|SCTP|WSS?) {HOSTNAME}(?::{PORT}(?![0-9]))?{_FAST_PARAMS}"


def _checker(fast: str, full: str) -> re.Pattern[str]:
    # Header values reach the checks with the SWS after HCOLON and before CRLF still on.
    return re.compile(rf"[ \t]*+(?:{fast}|{full})[ \t]*+")


CHECK_VIA_RE = _checker(_FAST_VIA, VIA_LIST_RE.pattern)
CHECK_ADDRESS_RE = _checker(_FAST_ADDRESS, _ADDRESS_NOGROUP)
CHECK_CONTACT_RE = _checker(_FAST_ADDRESS, CONTACT_LIST_RE.pattern)
CHECK_ROUTE_RE = _checker(_FAST_ADDRESS, ROUTE_LIST_RE.pattern)

# One param of a PARAMS run, for pulling names and values out of an already validated run.
PARAM_ITEM_RE = re.compile(rf"{SWS};{SWS}(?P<name>{TOKEN})(?:{SWS}={SWS}(?P<value>{GEN_VALUE}))?")

# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
CSEQ_RE = re.compile(rf"(?P<seq>[0-9]++){LWS}(?P<method>{TOKEN})")
# rfc1123-date = wkday "," SP date1 SP time SP "GMT" (§25.1 Date; RFC 4475 §3.1.2.12)
DATE_RE = re.compile(
    r"[ \t]*+(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT[ \t]*+",
    re.IGNORECASE,  # ABNF string literals are case-insensitive (RFC 5234 §2.3)
)
TOKEN_RE = re.compile(TOKEN)
URI_RE = re.compile(URI)
QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
# The rest of a quoted-string after its opening DQUOTE, for the list splitter.
_QUOTED_REST_RE = re.compile(r'(?:[^"\\]++|\\.)*+"', re.DOTALL)
_LIST_SPECIAL_RE = re.compile(r'[",<]')


def is_token(text: str) -> bool:
    return TOKEN_RE.fullmatch(text) is not None


def unquote_string(quoted: str) -> str:
    """The text of a quoted-string: outer DQUOTEs removed, quoted-pairs resolved (§25.1)."""
    inner = quoted[1:-1]
    return QUOTED_PAIR_RE.sub(r"\1", inner) if "\\" in inner else inner


def quote_string(text: str) -> str:
    """A quoted-string holding `text` (escapes DQUOTE and backslash)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unescape(text: str) -> str:
    """%-escapes resolved as UTF-8; undecodable bytes survive as surrogate escapes (lossless)."""
    return unquote(text, errors="surrogateescape") if "%" in text else text


def split_list(value: str) -> list[str]:
    """Split a header value on the commas of §7.3.1 lists, not inside quoted strings or <>."""
    if '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
        start = pos = 0
        search = _LIST_SPECIAL_RE.search
        while (m := search(value, pos)) is not None:
            i = m.start()
            char = value[i]
            if char == ",":
                parts.append(value[start:i])
                start = pos = i + 1
            elif char == "<":
                close = value.find(">", i + 1)
                pos = len(value) if close < 0 else close + 1
            else:
                rest = _QUOTED_REST_RE.match(value, i + 1)
                pos = len(value) if rest is None else rest.end()
        parts.append(value[start:])
    return [p for part in parts if (p := part.strip(" \t"))]
