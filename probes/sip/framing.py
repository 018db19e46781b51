"""Cut a TCP/TLS byte stream into SIP messages by Content-Length (RFC 3261 §18.3)."""

from __future__ import annotations

from probes.sip.errors import SipParseError
from probes.sip.headers import header_key, parse_content_length
from probes.sip.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES

_CRLF = b"\r\n"
_END_OF_HEADERS = b"\r\n\r\n"


def _content_length(head: bytes) -> int:
    """The Content-Length of a header block; a stream message must carry exactly one value."""
    found: int | None = None
    # latin-1 maps bytes one to one: header names are ASCII tokens, so nothing is lost here.
    lines = head.decode("latin-1").split("\r\n")[1:]
    for i, line in enumerate(lines):
        if not line or line[0] in " \t":
            continue  # a continuation line, read with the line it continues
        name, colon, value = line.partition(":")
        if not colon or header_key(name.rstrip(" \t")) != "content-length":
            continue
        for more in lines[i + 1 :]:  # §7.3.1 folding: "Content-Length:\r\n 42"
            if not more or more[0] not in " \t":
                break
            value += " " + more
        length = parse_content_length(value)
        # Two different lengths make the frame boundary ambiguous (a request-smuggling classic):
        # in a stream there is no datagram end to fall back on.
        if found is not None and found != length:
            raise SipParseError("conflicting Content-Length values")
        found = length
    if found is None:
        raise SipParseError("missing Content-Length in a stream")  # §18.3, §20.14: MUST
    return found


class StreamFramer:
    """Feed bytes as they arrive, get back complete messages (header block + exactly the body).

    CRLFs between messages are skipped: RFC 5626 §3.5.1 keep-alive pings ("\\r\\n\\r\\n") and
    pongs ("\\r\\n"), and RFC 3261 §7.5's CRLFs before a start line. After an error the stream
    is out of sync for good: every later feed raises the same error (close the connection).
    """

    __slots__ = ("_buffer", "_error", "_message_end", "_scan_from")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scan_from = 0  # where the search for the empty line resumes
        self._message_end = 0  # once the head is read: the length of the whole message
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise SipParseError(self._error.reason, self._error.detail)
        try:
            return self._feed(data)
        except SipParseError as exc:
            self._error = exc
            raise

    def _feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        while buffer:
            end = self._message_end
            if not end:
                skip = 0
                while buffer.startswith(_CRLF, skip):
                    skip += 2
                if skip:
                    del buffer[:skip]
                    self._scan_from = 0
                    continue
                head_end = buffer.find(_END_OF_HEADERS, self._scan_from)
                if head_end < 0:
                    if len(buffer) > MAX_HEADER_BYTES:
                        raise SipParseError("header block too large")
                    # Resume where a split "\r\n\r\n" could start, not from the beginning.
                    self._scan_from = max(0, len(buffer) - 3)
                    break
                if head_end > MAX_HEADER_BYTES:
                    raise SipParseError("header block too large")
                length = _content_length(bytes(buffer[:head_end]))
                if length > MAX_BODY_BYTES:
                    raise SipParseError("Content-Length too large")
                end = self._message_end = head_end + 4 + length
            if len(buffer) < end:
                break  # the body is still on its way
            messages.append(bytes(buffer[:end]))
            del buffer[:end]
            self._scan_from = self._message_end = 0
        return messages
