"""SIP header fields: an ordered multi-map with compact forms (RFC 3261 §7.3) and the
structured parsers for Via, CSeq, name-addr and Content-Length (§20, grammar §25.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from probes.sip.errors import SipParseError
from probes.sip.grammar import (
    ADDRESS_RE,
    CHECK_ADDRESS_RE,
    CHECK_CONTACT_RE,
    CHECK_ROUTE_RE,
    CHECK_VIA_RE,
    CSEQ_RE,
    DATE_RE,
    PARAM_ITEM_RE,
    VIA_PARM_RE,
    is_token,
    split_list,
    unquote_string,
)
from probes.sip.limits import MAX_CONTENT_LENGTH_DIGITS, MAX_CSEQ

# Compact forms: RFC 3261 §7.3.3 (c e f i k l m s t v) and the IANA SIP parameter registry
# (a j d: RFC 3841; b: RFC 3892; n y: RFC 4474; o u: RFC 6665; r: RFC 3515; x: RFC 4028).
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Header fields whose grammar is a comma-separated list (§7.3.1: "field-name: value *(,value)").
# Not here on purpose: WWW-Authenticate, Authorization, Proxy-Authenticate, Proxy-Authorization
# (commas separate auth-params of ONE value), Date, From, To, Call-ID, CSeq, Subject and any
# unknown header (its grammar is unknown, so splitting could cut a value in two).
LIST_HEADERS = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

_WS = " \t"


def _canonical_key(name: str) -> str:
    lname = name.lower()
    return COMPACT_FORMS.get(lname, lname)


# Header names (all tokens) → lookup key. Peers repeat the same dozen names, so the hot path
# skips lower-casing and token checks; bounded because a peer chooses the names. Seeded with
# the usual spellings so lookups by name hit it too.
MAX_KEY_CACHE = 1_024
_WELL_KNOWN = (
    "Via From To Call-ID CSeq Contact Content-Length Content-Type Max-Forwards Route "
    "Record-Route Allow Supported Require Accept User-Agent Server Expires Date Subject "
    "WWW-Authenticate Authorization Proxy-Authenticate Proxy-Authorization Content-Encoding "
    "Event Refer-To Session-Expires Allow-Events"
).split()
_KEY_CACHE: dict[str, str] = {
    spelling: _canonical_key(spelling)
    for name in (*_WELL_KNOWN, *COMPACT_FORMS)
    for spelling in (name, name.lower(), name.upper())
}


def header_key(name: str) -> str:
    """The lookup key of a header name: lower case, compact form expanded."""
    return _KEY_CACHE.get(name) or _canonical_key(name)


def wire_key(name: str) -> str:
    """The lookup key of a header name read from the wire; raises unless it is a token."""
    key = _KEY_CACHE.get(name)
    if key is not None:
        return key
    if not is_token(name):
        raise SipParseError("invalid header name", name)
    key = _canonical_key(name)
    if len(_KEY_CACHE) < MAX_KEY_CACHE:
        _KEY_CACHE[name] = key
    return key


def _check_field(name: str, value: str) -> str:
    if not is_token(name):
        raise SipParseError("invalid header name", name)
    # A CR or LF in a value would split the header when serialized (header injection).
    if "\r" in value or "\n" in value:
        raise SipParseError("CR or LF in header value", value)
    return header_key(name)


class Headers:
    """Ordered (name, value) pairs; lookups are case-insensitive and compact-form aware."""

    # Parallel lists: _keys[i] is the lookup key of _parts[i], so a lookup is list.index in C.
    # _parts[i] is (name, ":", value) as str.partition left it; the value may still carry the
    # SP/HTAB around it (HCOLON's SWS) and is stripped when read: the parser's hot path skips
    # stripping values nobody reads.
    __slots__ = ("_keys", "_parts")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._keys: list[str] = []
        self._parts: list[tuple[str, str, str]] = []
        for name, value in items:
            self.add(name, value)

    @classmethod
    def from_trusted(cls, keys: list[str], parts: list[tuple[str, str, str]]) -> Headers:
        """Adopt the parser's validated lists (no copy, no checks)."""
        headers = cls.__new__(cls)
        headers._keys = keys
        headers._parts = parts
        return headers

    def get(self, name: str) -> str | None:
        """The first value of `name`, as written (a list header's values are not split)."""
        try:
            return self._parts[self._keys.index(header_key(name))][2].strip(" \t")
        except ValueError:
            return None

    def get_all(self, name: str) -> list[str]:
        """Every value of `name` in order; list headers (§7.3.1) are split on their commas."""
        key = header_key(name)
        values = [
            part[2].strip(" \t")
            for k, part in zip(self._keys, self._parts, strict=True)
            if k == key
        ]
        if key in LIST_HEADERS:
            return [item for value in values for item in split_list(value)]
        return values

    def add(self, name: str, value: str) -> None:
        self._keys.append(_check_field(name, value))
        self._parts.append((name, ":", value))

    def set(self, name: str, value: str) -> None:
        """Replace every `name` header by one, at the first one's position (else appended)."""
        key = _check_field(name, value)
        try:
            first = self._keys.index(key)
        except ValueError:
            self._keys.append(key)
            self._parts.append((name, ":", value))
            return
        self.remove(name)
        self._keys.insert(first, key)
        self._parts.insert(first, (name, ":", value))

    def remove(self, name: str) -> None:
        key = header_key(name)
        kept = [i for i, k in enumerate(self._keys) if k != key]
        self._keys = [self._keys[i] for i in kept]
        self._parts = [self._parts[i] for i in kept]

    def wire_lines(self, content_length: int) -> list[str]:
        """ "Name: value" lines for serializing, with exactly one Content-Length (§20.14)."""
        lines = []
        length = str(content_length)
        wrote_length = False
        for key, (name, _, value) in zip(self._keys, self._parts, strict=True):
            if key != "content-length":
                lines.append(f"{name}: {value.strip(_WS)}")
            elif not wrote_length:
                lines.append(f"{name}: {length}")
                wrote_length = True
        if not wrote_length:
            lines.append(f"Content-Length: {length}")
        return lines

    def copy(self) -> Headers:
        return Headers.from_trusted(list(self._keys), list(self._parts))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value.strip(" \t")) for name, _, value in self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


@dataclass(slots=True)
class Via:
    """One via-parm (§20.42): sent-protocol, sent-by and params (names lower-cased)."""

    protocol: str  # "SIP/2.0"
    transport: str  # upper case: "UDP", "TCP", "TLS", "SCTP", ...
    host: str  # IPv6 without brackets
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value a server filled in (RFC 3581 §4); None if absent or empty."""
        value = self.params.get("rport")
        return int(value) if value is not None and value.isascii() and value.isdigit() else None


@dataclass(slots=True)
class NameAddr:
    """name-addr or addr-spec with header params (§20.10, §25.1): From, To, Contact, Route."""

    display: str | None  # unquoted, escapes resolved; None when absent
    uri: str  # as written, without the <>
    params: dict[str, str | None] = field(default_factory=dict)  # names lower-cased, raw values


def _params(text: str) -> dict[str, str | None]:
    """Names (lower-cased) and raw values of a PARAMS run the caller already validated."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    if '"' in text:  # a quoted value may hold ";" or "=": let the grammar find the edges
        for m in PARAM_ITEM_RE.finditer(text):
            params.setdefault(m["name"].lower(), m["value"])
        return params
    for item in text.split(";")[1:]:
        name, eq, value = item.partition("=")
        params.setdefault(name.strip(" \t").lower(), value.strip(" \t") if eq else None)
    return params


def parse_via(value: str) -> Via:
    """Parse ONE via-parm (§25.1); split a Via header into them with Headers.get_all("via")."""
    m = VIA_PARM_RE.fullmatch(value.strip(" \t"))
    if m is None:
        raise SipParseError("malformed Via", value)
    host = m["host"]
    if host[0] == "[":
        host = host[1:-1]
    port = m["port"]
    return Via(
        protocol=f"{m['name'].upper()}/{m['version']}",
        transport=m["transport"].upper(),
        host=host,
        port=int(port) if port is not None else None,
        params=_params(m["params"]),
    )


def parse_cseq(value: str) -> tuple[int, str]:
    """CSeq = 1*DIGIT LWS Method (§20.16), the number a 32-bit unsigned (§8.1.1.5)."""
    m = CSEQ_RE.fullmatch(value.strip(" \t"))
    if m is None:
        raise SipParseError("malformed CSeq", value)
    seq = m["seq"].lstrip("0")
    if len(seq) > MAX_CONTENT_LENGTH_DIGITS or (seq and int(seq) > MAX_CSEQ):
        raise SipParseError("CSeq number too large", value)
    return int(seq or "0"), m["method"]


def parse_name_addr(value: str) -> NameAddr:
    """( name-addr / addr-spec ) *( SEMI generic-param ), as in From, To, one Contact/Route."""
    m = ADDRESS_RE.fullmatch(value.strip(" \t"))
    if m is None:
        raise SipParseError("malformed name-addr", value)
    display = m["display"]
    if display is not None and display[0] == '"':
        display = unquote_string(display)
    uri = m["uri"]
    return NameAddr(
        display=display,
        uri=uri if uri is not None else m["bare"],
        params=_params(m["params"]),
    )


def parse_content_length(value: str) -> int:
    """Content-Length = 1*DIGIT (§20.14); a sign, garbage or an absurd length raises."""
    digits = value.strip(" \t")
    if not digits or not digits.isascii() or not digits.isdigit():
        raise SipParseError("invalid Content-Length", value)
    digits = digits.lstrip("0") or "0"
    if len(digits) > MAX_CONTENT_LENGTH_DIGITS:
        raise SipParseError("Content-Length too large", value)
    return int(digits)


# What parse_message checks eagerly, as (fullmatch, reason): the headers the RFC 4475 §3.1.2
# messages break and a transaction needs. CSeq and Content-Length are checked by the parser
# itself (it needs their values); everything else stays unparsed text until someone asks.
# The patterns allow the SWS around a raw value, so the parser need not strip it first.
PATTERN_CHECKS: dict[str, tuple[Callable[[str], object], str]] = {
    "via": (CHECK_VIA_RE.fullmatch, "malformed Via"),
    "from": (CHECK_ADDRESS_RE.fullmatch, "malformed From/To"),
    "to": (CHECK_ADDRESS_RE.fullmatch, "malformed From/To"),
    "contact": (CHECK_CONTACT_RE.fullmatch, "malformed Contact"),
    "route": (CHECK_ROUTE_RE.fullmatch, "malformed Route/Record-Route"),
    "record-route": (CHECK_ROUTE_RE.fullmatch, "malformed Route/Record-Route"),
    "date": (DATE_RE.fullmatch, "malformed Date"),
}
