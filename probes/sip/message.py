"""SIP messages (RFC 3261 §7): parse one complete message, serialize one, match a response."""

from __future__ import annotations

from dataclasses import dataclass

from probes.sip.errors import SipParseError
from probes.sip.grammar import URI_RE, is_token, split_list
from probes.sip.headers import (
    _KEY_CACHE,
    PATTERN_CHECKS,
    Headers,
    parse_content_length,
    parse_cseq,
    parse_via,
    wire_key,
)
from probes.sip.limits import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADER_LINE,
    MAX_HEADERS,
    MAX_MESSAGE_BYTES,
    MAX_START_LINE,
)
from probes.sip.uri import PLAIN_SIP_URI_RE, check_sip_uri

SIP_VERSION = "SIP/2.0"
# Header text is UTF-8 (§7.3.1 TEXT-UTF8); bytes that are not decode to surrogate escapes, so
# nothing is lost and serialize() writes the same bytes back.
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
# Header keys the field loop looks at; everything else is left as text.
_SPECIAL_KEYS = frozenset({"content-length", "cseq", *PATTERN_CHECKS})


@dataclass(slots=True)
class SipRequest:
    method: str
    uri: str
    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION


@dataclass(slots=True)
class SipResponse:
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = SIP_VERSION


SipMessage = SipRequest | SipResponse

# The usual CSeq methods, checked without the token regex.
_COMMON_METHODS = frozenset(
    {"ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS", "PRACK"}
    | {"PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE"}
)


def _check_version(version: str, line: str) -> str:
    # SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, case-insensitive (§7.1). Only 2.0 is spoken:
    # RFC 4475 §3.1.2.16 (SIP/7.0) must be refused (a UAS answers 505).
    if len(version) != 7 or version.upper() != SIP_VERSION:
        major, dot, minor = version[4:].partition(".")
        numbers = major + minor
        if version[:4].upper() == "SIP/" and dot and major and minor and numbers.isdigit():
            raise SipParseError("unsupported SIP version", line)
        raise SipParseError("malformed SIP version", line)
    return SIP_VERSION


def _parse_status_line(line: str) -> tuple[str, int, str]:
    # (parse_message checks the usual "SIP/2.0 200 OK" inline; this is everything else.)
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF (§7.2, §25.1). A missing
    # SP before an empty Reason-Phrase is tolerated: it changes nothing a reader needs.
    parts = line.split(" ", 2)
    version = _check_version(parts[0], line)
    code = parts[1] if len(parts) > 1 else ""
    # Status-Code = 3DIGIT, 100-699 (§7.2; RFC 4475 §3.1.2.19 sends 4294967301).
    if len(code) != 3 or not code.isascii() or not code.isdigit() or not "1" <= code[0] <= "6":
        raise SipParseError("invalid status code", line)
    return version, int(code), parts[2] if len(parts) > 2 else ""


def _check_request_uri(uri: str, line: str) -> None:
    # Request-URI = SIP-URI / SIPS-URI / absoluteURI (§25.1): no <> (RFC 4475 §3.1.2.7).
    scheme = uri[:5].lower()
    if scheme.startswith(("sip:", "sips:")):
        try:
            headers = check_sip_uri(uri)
        except SipParseError as exc:
            raise SipParseError("malformed Request-URI", line) from exc
        # §19.1.1 Table 1: URI headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        if headers:
            raise SipParseError("headers in Request-URI", line)
    elif URI_RE.fullmatch(uri) is None:
        raise SipParseError("malformed Request-URI", line)


def _parse_request_line(line: str) -> tuple[str, str, str]:
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF (§7.1): exactly one SP between
    # the elements, none around (RFC 4475 §3.1.2.8-§3.1.2.10, and a missing version).
    parts = line.split(" ")
    if len(parts) != 3 or "" in parts:
        raise SipParseError("malformed Request-Line", line)
    method, uri, version = parts
    if method not in _COMMON_METHODS and not is_token(method):
        raise SipParseError("invalid method", line)
    if PLAIN_SIP_URI_RE.fullmatch(uri) is None:
        _check_request_uri(uri, line)
    if version != SIP_VERSION:
        version = _check_version(version, line)
    return method, uri, version


def _fields_slow(lines: list[str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(keys, (name, ":", raw value) parts) of header lines the fast path declined: folding,
    odd spacing, overlong lines, or an error to name (§7.3)."""
    keys: list[str] = []
    parts: list[tuple[str, str, str]] = []
    folded: list[str] = []  # the continuation lines of the last field, joined once at its end

    def unfold() -> None:
        name, colon, value = parts[-1]
        value = " ".join([value.strip(" \t"), *folded]).strip(" \t")
        if len(value) > MAX_HEADER_LINE:
            raise SipParseError("folded header value too long", value)
        parts[-1] = (name, colon, value)
        folded.clear()

    for line in lines:
        if len(line) > MAX_HEADER_LINE:
            raise SipParseError("header line too long", line)
        if line[:1] in (" ", "\t"):
            # §7.3.1: a line starting with SP/HTAB continues the previous one; the line break
            # and the whitespace around it are equivalent to one SP.
            if not parts:
                raise SipParseError("continuation line before any header field", line)
            more = line.strip(" \t")
            if more:
                folded.append(more)
            continue
        if folded:
            unfold()
        raw, colon, value = line.partition(":")
        if not colon:
            raise SipParseError("header line without a colon", line)
        name = raw.rstrip(" \t")  # HCOLON = *( SP / HTAB ) ":" SWS
        keys.append(wire_key(name))
        parts.append((name, colon, value))
    if folded:
        unfold()
    return keys, parts


def _bare_cr_lf(lines: list[str]) -> SipParseError:
    for line in lines:
        if "\r" in line or "\n" in line:
            return SipParseError("bare CR or LF in header block", line)
    return SipParseError("bare CR or LF in header block")


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete message (a datagram, or a frame from StreamFramer); §7 and §18.3."""
    size = len(data)
    if size > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large")
    start = 0
    # §7.5: CRLFs before the start line are ignored (keep-alives, RFC 5626 §3.5.1).
    if size and data[0] == 13:
        while data.startswith(b"\r\n", start):
            start += 2
    head_end = data.find(b"\r\n\r\n", start)
    if head_end >= 0:
        body_start = head_end + 4
    elif size - start > 2 and data.endswith(b"\r\n"):
        # The empty line is mandatory (§7.5) but a datagram that ends right after its last
        # header line leaves no doubt where the headers stop; accept it with an empty body.
        head_end = size - 2
        body_start = size
    else:
        raise SipParseError("no empty line after the header fields")
    if head_end - start > MAX_HEADER_BYTES:
        raise SipParseError("header block too large")
    head = data[start:head_end]
    text = head.decode(_ENCODING, _ERRORS)
    lines = text.split("\r\n")
    # Lines end in CRLF only (§7): a CR or LF anywhere else is malformed. Each CRLF holds one
    # of each, so any other CR or LF shows in the total (one pass, cheaper than two counts).
    crlfs = len(lines) - 1
    if len(head) - len(head.translate(None, b"\r\n")) != 2 * crlfs:
        raise _bare_cr_lf(lines)
    start_line = lines[0]
    if not start_line or start_line[0] in " \t":
        raise SipParseError("malformed start line", start_line)
    if len(start_line) > MAX_START_LINE:
        raise SipParseError("start line too long")

    # SIP-Version is case-insensitive (§7.1); upper case is what every sender writes.
    is_response = start_line.startswith("SIP/") or start_line[:4].upper() == "SIP/"
    if not is_response:
        method, uri, version = _parse_request_line(start_line)
    elif (
        start_line.startswith("SIP/2.0 ")
        and (code := start_line[8:11]).isdigit()
        and code.isascii()
        and "1" <= code[0] <= "6"
        and start_line[11:12] in (" ", "")
    ):
        version = SIP_VERSION  # the usual status line, checked without splitting
        status = int(code)
        reason = start_line[12:]
    else:
        version, status, reason = _parse_status_line(start_line)

    del lines[0]
    if len(text) > MAX_HEADER_LINE:
        keys, parts = _fields_slow(lines)  # some line may be too long: measure each
    else:
        # Fast path for plain "Name: value" lines, one C-level pass per step. A line that is
        # folded, spaced before its colon or broken makes the keys come up short (or raises):
        # the slow path then decides.
        parts = [line.partition(":") for line in lines]
        get = _KEY_CACHE.get
        try:
            keys = [get(name) or wire_key(name) for name, colon, _ in parts if colon]
        except SipParseError:
            keys = []
        if len(keys) != crlfs:
            keys, parts = _fields_slow(lines)
    if len(keys) > MAX_HEADERS:
        raise SipParseError("too many header fields")

    content_length = -1
    special = _SPECIAL_KEYS
    for key, part in zip(keys, parts):  # noqa: B905 (equal lengths by construction)
        if key not in special:
            continue
        value = part[2]
        if key == "content-length":
            if value[1:].isdigit() and value[0] == " " and len(value) < 11 and value.isascii():
                length = int(value)  # the usual " 123"
            else:
                length = parse_content_length(value)
            # RFC 4475 §3.3.9: several values parse; the first one frames the body.
            if content_length < 0:
                content_length = length
        elif key == "cseq":
            seq, _, cseq_method = value[1:].partition(" ")
            if value[:1] != " " or not (
                seq.isdigit() and len(seq) < 10 and seq.isascii() and cseq_method in _COMMON_METHODS
            ):
                cseq_method = parse_cseq(value)[1]
            # §8.1.1.5: a request's CSeq method MUST be its method (RFC 4475 §3.1.2.17/18).
            if not is_response and cseq_method != method:
                raise SipParseError("CSeq method does not match the request method", value)
        else:
            match, problem = PATTERN_CHECKS[key]
            if match(value) is None:
                raise SipParseError(problem, value)

    # §18.3: a datagram body longer than Content-Length is cut to it, a shorter one is an
    # error (RFC 4475 §3.1.2.2); without Content-Length the datagram's end ends the body.
    if content_length < 0:
        body = data[body_start:]
        if len(body) > MAX_BODY_BYTES:
            raise SipParseError("body too large")
    elif content_length == 0:
        body = b""
    else:
        body_end = body_start + content_length
        if body_end > size:
            raise SipParseError("body shorter than Content-Length")
        body = data[body_start:body_end]

    headers = Headers.from_trusted(keys, parts)
    if is_response:
        return SipResponse(status, reason, headers, body, version)
    return SipRequest(method, uri, headers, body, version)


def serialize(msg: SipMessage) -> bytes:
    """The wire form of `msg`: CRLF line ends, one Content-Length equal to len(body) (§7)."""
    if isinstance(msg, SipRequest):
        start_line = f"{msg.method} {msg.uri} {msg.version}"
    else:
        start_line = f"{msg.version} {msg.status} {msg.reason}"
    lines = msg.headers.wire_lines(len(msg.body))
    lines.insert(0, start_line)
    lines.append("\r\n")
    return "\r\n".join(lines).encode(_ENCODING, _ERRORS) + msg.body


def transaction_key(resp: SipResponse) -> tuple[str, str, str] | None:
    """(top Via branch, CSeq method, Call-ID) to find the client transaction (§17.1.3)."""
    headers = resp.headers
    via = headers.get("via")
    cseq = headers.get("cseq")
    call_id = headers.get("call-id")
    if via is None or cseq is None or not call_id:
        return None
    branch = _top_branch(via)
    if not branch:
        return None
    seq, _, method = cseq.partition(" ")
    if not (seq.isdigit() and method in _COMMON_METHODS):
        try:
            method = parse_cseq(cseq)[1]
        except SipParseError:
            return None  # only a hand-built response gets here: parse_message checks CSeq
    return branch, method, call_id


def _top_branch(via: str) -> str | None:
    """The branch of the first via-parm of a Via header value."""
    if '"' not in via:
        # Fast path for the way everyone writes it: ";branch=" then a token (§20.42).
        top = via.partition(",")[0]
        at = top.find(";branch=")
        if at >= 0:
            value = top[at + 8 :].partition(";")[0].rstrip(" \t")
            if value and is_token(value):
                return value
    try:
        first = split_list(via)
        return parse_via(first[0]).branch if first else None
    except SipParseError:
        return None  # only a hand-built response gets here: parse_message checks Via
