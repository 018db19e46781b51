"""Fresh identifiers: Via branch, From/To tag, Call-ID (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3)."""

from __future__ import annotations

import base64
import os
import re
import secrets

# §8.1.1.7: branches of RFC 3261 transactions start with this magic cookie.
BRANCH_COOKIE = "z9hG4bK"
# Random bytes per identifier: 12 bytes = 96 bits for branches and Call-IDs (§8.1.1.7 asks for
# uniqueness over space and time; 96 bits make a collision among billions negligible), 8 bytes
# = 64 bits for tags (§19.3: "at least 32 bits of randomness").
BRANCH_BYTES = 12
TAG_BYTES = 8
CALL_ID_BYTES = 12
# callid = word [ "@" word ] (§25.1); the host part must be a word too.
_WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+")


def new_branch() -> str:
    """ "z9hG4bK" + 96 random bits, URL-safe base64: only token characters (§20.42)."""
    return BRANCH_COOKIE + secrets.token_urlsafe(BRANCH_BYTES)


# Random bytes are read from the OS for this many requests at a time: one getrandom() per
# request was ~3 % of the probe loop's CPU at 10,000 probes/s (py-spy, docs/benchmarks.md).
POOL_REQUESTS = 256
_REQUEST_BYTES = BRANCH_BYTES + CALL_ID_BYTES
_POOL_BYTES = POOL_REQUESTS * _REQUEST_BYTES


class _RandomPool:
    """os.urandom bytes read in bulk and handed out once each; emptied in a forked child."""

    __slots__ = ("data", "pos")

    def __init__(self) -> None:
        self.data = b""
        self.pos = 0

    def take(self, n: int) -> bytes:
        pos = self.pos
        if pos + n > len(self.data):
            self.data = secrets.token_bytes(max(n, _POOL_BYTES))
            pos = 0
        self.pos = pos + n
        return self.data[pos : pos + n]

    def clear(self) -> None:
        self.data = b""
        self.pos = 0


_POOL = _RandomPool()
# A child must not hand out the identifiers its parent will (nor the parent the child's).
os.register_at_fork(after_in_child=_POOL.clear)


def new_branch_and_call_id_word() -> tuple[str, str]:
    """A branch and a Call-ID's random word, from the bulk-read random pool.

    The probe loop needs both for every request.
    """
    raw = _POOL.take(_REQUEST_BYTES)
    branch = BRANCH_COOKIE + base64.urlsafe_b64encode(raw[:BRANCH_BYTES]).rstrip(b"=").decode()
    return branch, raw[BRANCH_BYTES:].hex()


def new_tag() -> str:
    """A From/To tag: 64 random bits in hex (§19.3), from the pool (100,000 probes start)."""
    return _POOL.take(TAG_BYTES).hex()


def new_call_id(host: str) -> str:
    """A Call-ID, random@host (§8.1.1.4); `host` must be a §25.1 word (IPv6 brackets are)."""
    if not _WORD_RE.fullmatch(host):
        raise ValueError(f"not usable as the host part of a Call-ID: {host!r}")
    return f"{secrets.token_hex(CALL_ID_BYTES)}@{host}"
