"""The journal's hash chain: each event's hash covers its content and the previous event's hash.

Pure functions. One chain per agent (one agent is one process, so appends never race); the
first event of an agent chains to ``GENESIS``. Deleting, editing or reordering any event
changes every later hash, so a recorded head proves the whole history up to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "GENESIS",
    "HASH_HEX_LENGTH",
    "ChainBreak",
    "ChainLink",
    "chain_rows",
    "event_hash",
    "verify_chain",
]

HASH_HEX_LENGTH = 64  # SHA-256 as lowercase hex
GENESIS = "0" * HASH_HEX_LENGTH  # prev_hash of an agent's first event
# Built once (json.dumps with options builds an encoder per call); the same text as
# json.dumps(..., separators=(",", ":"), ensure_ascii=False), so hashes are unchanged.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _instant_text(ts: datetime) -> str:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"journal ts {ts.isoformat()} is naive")
    # Fixed width and always UTC: the same instant always hashes the same, whatever the
    # database returned (SQLite gives naive UTC, PostgreSQL an aware value).
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(
    prev_hash: str, ts: datetime, agent: str, trunk: str | None, kind: str, payload: str
) -> str:
    """SHA-256 hex of prev_hash and one journal row's content (seq excluded: assigned later)."""
    body = _ENCODE([prev_hash, _instant_text(ts), agent, trunk, kind, payload])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One journal row as the chain sees it."""

    seq: int
    ts: datetime
    agent: str
    trunk: str | None
    kind: str
    payload: str
    prev_hash: str | None
    hash: str | None

    def computed_hash(self) -> str:
        return event_hash(
            self.prev_hash or "", self.ts, self.agent, self.trunk, self.kind, self.payload
        )


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where a chain stops proving anything, and why (the message names the event)."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"journal seq {self.seq}: {self.problem}"


def verify_chain(links: Sequence[ChainLink], start_prev: str = GENESIS) -> list[ChainBreak]:
    """Every break in one agent's links (seq order); empty when each link extends the last."""
    breaks: list[ChainBreak] = []
    expected_prev = start_prev
    for link in links:
        if link.hash is None or link.prev_hash is None:
            breaks.append(ChainBreak(link.seq, "has no hash (written outside the chain)"))
            expected_prev = link.hash or expected_prev
            continue
        if link.prev_hash != expected_prev:
            breaks.append(
                ChainBreak(
                    link.seq,
                    f"prev_hash {link.prev_hash[:12]}… does not match the previous event's hash "
                    f"{expected_prev[:12]}… (an event before it was removed or altered)",
                )
            )
        if link.computed_hash() != link.hash:
            breaks.append(ChainBreak(link.seq, "content does not match its hash (edited)"))
        expected_prev = link.hash
    return breaks


def chain_rows(
    rows: Iterable[tuple[datetime, str, str | None, str, str]], prev_hash: str
) -> list[tuple[str, str]]:
    """(prev_hash, hash) for new rows (ts, agent, trunk, kind, payload) appended after prev_hash."""
    out: list[tuple[str, str]] = []
    for ts, agent, trunk, kind, payload in rows:
        digest = event_hash(prev_hash, ts, agent, trunk, kind, payload)
        out.append((prev_hash, digest))
        prev_hash = digest
    return out
