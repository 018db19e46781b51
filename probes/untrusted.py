"""Untrusted peer text made safe to keep in a result, an error or a log field: one helper
for the whole project (probes cannot import monitor/, so it lives here)."""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_UNTRUSTED_LIMIT", "truncate_untrusted"]

# Enough to spot the problem in a log line, too little to flood logs or carry a payload.
DEFAULT_UNTRUSTED_LIMIT: Final = 120


def _escape_char(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


def truncate_untrusted(text: str | bytes, limit: int = DEFAULT_UNTRUSTED_LIMIT) -> str:
    """Peer text safe for one log field: non-printables and backslashes escaped (so a
    peer cannot forge lines or hide text), at most `limit` characters, then "…(+N bytes)"."""
    if isinstance(text, bytes):
        decoded = text.decode("utf-8", "surrogateescape")
    else:
        decoded = text
    pieces: list[str] = []
    used = 0
    for index, char in enumerate(decoded):
        escaped = _escape_char(char)
        if used + len(escaped) > limit:
            rest = decoded[index:]
            return "".join(pieces) + f"…(+{_byte_length(rest)} bytes)"
        pieces.append(escaped)
        used += len(escaped)
    return "".join(pieces)


def _byte_length(text: str) -> int:
    # surrogateescape gives back the exact bytes of undecodable input; any other lone
    # surrogate in a str is counted as the 3 bytes surrogatepass would write.
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))
