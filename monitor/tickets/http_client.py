"""HTTP for the REST sinks: one call, its reply classified into ok / retry / reject.

Retry policy (the issue's rule): retry on network errors, timeouts and 5xx; never on 4xx
except 408 and 429, whose Retry-After (RFC 9110 §10.2.3) is honoured; 3xx is a
configuration error (a sink URL that redirects would re-send a POST as a GET).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from monitor.tickets.base import Rejected, RetryLater
from probes.untrusted import truncate_untrusted

# A reply body bigger than this is not a ticket API's answer; reading stops here.
MAX_REPLY_BYTES = 1024 * 1024
# A Retry-After beyond an hour is a misconfigured server: the backoff cap applies instead.
MAX_RETRY_AFTER_S = 3600.0
# How much of an error body goes into last_error and logs.
ERROR_TEXT_LIMIT = 200
RETRYABLE_4XX = frozenset({408, 429})
# Shorter "secrets" are not blanked out of replies: replacing "ab" everywhere would garble
# the text and hide nothing worth hiding.
MIN_SECRET_LENGTH = 4


@dataclass(slots=True, frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    text: str
    data: Any = field(default=None)  # the parsed JSON body, if it was JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def basic_auth(username: str, password: str) -> str:
    """An RFC 7617 ``Authorization: Basic`` value (user-ids cannot contain ':')."""
    if ":" in username:
        raise ValueError("a basic-auth user name cannot contain ':' (RFC 7617 §2)")
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (of at least MIN_SECRET_LENGTH characters) as "***"."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no partial leftovers
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


def failure_of(reply: HttpReply, what: str, now: datetime) -> RetryLater | Rejected:
    """The result for a non-2xx reply, with the body's gist (never request headers)."""
    reason = f"{what}: HTTP {reply.status} {error_text(reply)}".rstrip()
    if reply.status in RETRYABLE_4XX or reply.status >= 500:
        return RetryLater(reason, parse_retry_after(reply.headers.get("Retry-After"), now))
    return Rejected(reason)


def reply_failure(reply: HttpReply, what: str) -> RetryLater | Rejected:
    """A reply a sink cannot use: a 2xx not shaped as documented is rejected (retrying
    would only repeat it); anything else goes by `failure_of`."""
    if reply.ok:
        return Rejected(f"{what}: unexpected reply HTTP {reply.status}")
    return failure_of(reply, what, datetime.now(UTC))


def error_text(reply: HttpReply) -> str:
    """The error message in the usual JSON shapes, else the start of the body."""
    data = reply.data
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # ServiceNow {"error": {"message", "detail"}}
            message = ": ".join(str(error[k]) for k in ("message", "detail") if error.get(k))
        elif isinstance(error, str):  # Zammad {"error", "error_human"}
            message = data.get("error_human") or error
        for key in ("errorMessage", "message", "errors", "errorMessages"):
            if not message and data.get(key):
                message = data[key]
    if message is None or message == "":
        message = reply.text
    return truncate_untrusted(str(message), ERROR_TEXT_LIMIT)


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout_s: float,
    json_body: Any = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
) -> HttpReply | RetryLater:
    """One HTTP call; a network failure or timeout is RetryLater, never an exception.

    The reply's text has ``secrets`` and our Authorization header blanked out: some
    servers echo the request in error pages, and error texts reach logs and the store.
    """
    hidden = [*secrets]
    for name, value in (headers or {}).items():
        if name.lower() == "authorization":
            hidden.extend((value, value.partition(" ")[2]))
    try:
        async with session.request(
            method,
            url,
            json=json_body,
            data=data,
            headers=headers,
            params=params,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            raw = await response.content.read(MAX_REPLY_BYTES)
            text = redact(raw.decode("utf-8", "replace"), hidden)
            parsed: Any = None
            if text and "json" in response.headers.get("Content-Type", ""):
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
            return HttpReply(response.status, dict(response.headers), text, parsed)
    except TimeoutError:
        return RetryLater(f"{method} {_host(url)}: timed out after {timeout_s:g}s")
    except asyncio.CancelledError:
        raise
    except (aiohttp.ClientError, OSError) as exc:
        # The exception text names the host and the error, not the request's headers.
        return RetryLater(f"{method} {_host(url)}: {truncate_untrusted(repr(exc), 160)}")


def _host(url: str) -> str:
    try:
        return URL(url).host or "?"
    except ValueError:
        return "?"
