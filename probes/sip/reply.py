"""The lazy read of a reply to our own OPTIONS: status, reason and transaction key only.

The probe loop reads ~10,000 replies a second and needs four values from each; building a
`SipResponse` (header lists, `Headers`) and then looking them up cost ~12 µs a reply here.
`read_reply` makes the same checks as `parse_message` on the same fast path, in one pass,
and keeps only what the match and the verdict use. Anything off that path (folding, odd
spacing, leading CRLFs, unusual forms of CSeq or Content-Length, errors, a missing key)
returns None: the caller then runs the full parser, which decides and names the problem.
tests/sip/test_sip_reply.py proves it accepts nothing `parse_message` refuses and reads the
same values whenever both accept.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.sip.errors import SipParseError
from probes.sip.headers import _KEY_CACHE, PATTERN_CHECKS, wire_key
from probes.sip.limits import MAX_HEADER_BYTES, MAX_HEADER_LINE, MAX_HEADERS, MAX_MESSAGE_BYTES
from probes.sip.message import _COMMON_METHODS, _top_branch

# The keys whose values the reader looks at; every other header is only a checked name.
_PATTERN_KEYS = frozenset(PATTERN_CHECKS)
_LOOKED_AT = frozenset({"content-length", "cseq", "call-id", *PATTERN_CHECKS})


@dataclass(slots=True)
class Reply:
    """What matching a reply to its probe and judging it need (RFC 3261 §17.1.3, §8.1.3)."""

    status: int
    reason: str
    branch: str  # the top Via's branch
    cseq_method: str
    call_id: str

    @property
    def key(self) -> tuple[str, str, str]:
        """The same tuple as `transaction_key` of the fully parsed response."""
        return self.branch, self.cseq_method, self.call_id


def read_reply(data: bytes) -> Reply | None:
    """The reply's status and key when `parse_message` would accept it on its fast path and
    `transaction_key` would find a key; None otherwise (let the full parser decide)."""
    size = len(data)
    if size > MAX_MESSAGE_BYTES or not data.startswith(b"SIP/2.0 "):
        return None
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or head_end > MAX_HEADER_BYTES:
        return None
    head = data[:head_end]
    text = head.decode("utf-8", "surrogateescape")
    if len(text) > MAX_HEADER_LINE:
        return None  # the full parser then measures every line
    lines = text.split("\r\n")
    # A CR or LF anywhere but in the CRLFs (the full parser's same one-pass count).
    if head.count(b"\r") + head.count(b"\n") != 2 * (len(lines) - 1):
        return None
    if len(lines) - 1 > MAX_HEADERS:
        return None
    start_line = lines[0]
    code = start_line[8:11]
    if not (
        code.isdigit()
        and code.isascii()
        and "1" <= code[0] <= "6"
        and start_line[11:12] in (" ", "")
    ):
        return None
    via = cseq = call_id = None
    content_length = -1
    get = _KEY_CACHE.get
    looked_at = _LOOKED_AT
    for i in range(1, len(lines)):
        name, colon, value = lines[i].partition(":")
        if not colon:
            return None  # folding or a broken line: the full parser's slow path decides
        key = get(name)
        if key is None:
            try:
                key = wire_key(name)
            except SipParseError:
                return None
        if key not in looked_at:
            continue
        if key == "call-id":
            if call_id is None:
                call_id = value
        elif key == "cseq":
            seq, _, method = value[1:].partition(" ")
            if value[:1] != " " or not (
                seq.isdigit() and len(seq) < 10 and seq.isascii() and method in _COMMON_METHODS
            ):
                return None
            if cseq is None:
                cseq = method
        elif key == "content-length":
            digits = value[1:]
            if not (digits.isdigit() and value[0] == " " and len(value) < 11 and value.isascii()):
                return None
            if content_length < 0:
                content_length = int(value)
        else:
            match, _ = PATTERN_CHECKS[key]
            if match(value) is None:
                return None
            if key == "via" and via is None:
                via = value
    if content_length > 0 and head_end + 4 + content_length > size:
        return None  # a body shorter than its Content-Length
    if via is None or cseq is None or call_id is None:
        return None
    call_id = call_id.strip(" \t")
    branch = _top_branch(via.strip(" \t"))
    if not branch or not call_id:
        return None
    return Reply(int(code), start_line[12:], branch, cseq, call_id)
