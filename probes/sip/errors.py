"""The one error type of the SIP boundary (and digest's own): a short reason, untrusted detail."""

from __future__ import annotations

from probes.untrusted import truncate_untrusted

# Untrusted peer text quoted in an error is cut to this many characters: enough to spot the
# problem in a log line, too little to flood logs or carry a payload (team guide: logs).
MAX_DETAIL_CHARS = 80


def _truncate(detail: str) -> str:
    return truncate_untrusted(detail, MAX_DETAIL_CHARS)


class SipParseError(ValueError):
    """Bytes or text that are not valid SIP; `.reason` is short and stable, `.detail` truncated."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = _truncate(detail) if detail is not None else None
        super().__init__(f"{reason}: {self.detail!r}" if self.detail is not None else reason)


class DigestError(ValueError):
    """A digest challenge we cannot parse or answer (unknown algorithm, no usable qop, ...)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
