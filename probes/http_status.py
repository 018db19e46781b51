"""The HTTP/1.1 a health check needs, sans-I/O: the request it sends and the status line of
the answer (RFC 9112 §3 and §4). Bytes in, values out; the probe (probes/https.py) owns
the socket."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# A response head larger than this is no health-check answer: the probe stops reading.
MAX_HEAD_BYTES: Final = 16 * 1024
# The body is read (to time the whole answer) up to this much; a bigger one is cut short.
MAX_BODY_BYTES: Final = 1024 * 1024
# Reason phrases are untrusted text that reaches logs: kept short.
MAX_REASON: Final = 64

# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# HTTP-version = "HTTP/" DIGIT "." DIGIT; status-code = 3DIGIT. Some servers omit the SP
# before an empty reason phrase; that is accepted (§4: recipients SHOULD accept it).
_STATUS_LINE: Final = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: ([\t\x20-\x7e\x80-\xff]*))?\r?\n?$")
# RFC 9110 §5.6.2 token characters, for the request target's path check.
_PATH: Final = re.compile(r"^/[\x21-\x7e]*$")


class HttpParseError(ValueError):
    """The answer is not an HTTP/1.x response; `reason` says why (never quotes its bytes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StatusLine:
    version: tuple[int, int]
    code: int
    reason: str


def check_path(path: str) -> str:
    """`path` if it is an origin-form request target (RFC 9112 §3.2.1), else ValueError."""
    if not _PATH.match(path):
        raise ValueError("must start with '/' and hold no spaces or control characters")
    return path


def build_request(host: str, port: int, path: str, user_agent: str) -> bytes:
    """A GET for `path` that asks the server to close the connection after answering."""
    check_path(path)
    # RFC 9110 §7.2: Host carries the port unless it is the scheme's default; IPv6 in [].
    name = f"[{host}]" if ":" in host else host
    authority = name if port == 443 else f"{name}:{port}"
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {authority}\r\n"
        f"User-Agent: {user_agent}\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")


def parse_status_line(line: bytes) -> StatusLine:
    """The status line's version, code and (truncated, decoded) reason phrase."""
    match = _STATUS_LINE.match(line)
    if match is None:
        raise HttpParseError("not an HTTP/1.x status line")
    major, minor, code, reason = match.groups()
    if int(major) != 1:
        raise HttpParseError(f"HTTP/{int(major)}.{int(minor)} is not HTTP/1.x")
    text = (reason or b"").decode("latin-1")[:MAX_REASON]
    return StatusLine((int(major), int(minor)), int(code), text)
