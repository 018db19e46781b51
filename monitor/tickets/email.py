"""E-mail to the carrier's helpdesk: SMTP out, optional IMAP polling for its ticket number.

Threading (RFC 5322 §3.6.4): the opening mail has a deterministic Message-ID
``<{idempotency key}@{domain}>``; every later mail of the ticket carries ``In-Reply-To``
(the carrier's reply once we have it, else our opening mail) and ``References`` (both).
A re-sent opening mail (its SMTP reply was lost) has the same Message-ID, which
helpdesks' mail gateways use to discard duplicates; with IMAP configured, a carrier reply
to it also proves it arrived (find-existing).

IMAP polling reads the mailbox where the carrier's replies land, finds replies to our
opening mails (``SEARCH HEADER In-Reply-To`` / ``References``), applies
``imap.ticket_regex`` to the subject (e.g. ``\\[Ticket#(\\d+)\\]``), and stores the number
(group 1) and the matched tag (group 0), which later subjects then quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import json
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import aioimaplib  # type: ignore[import-untyped]
import aiosmtplib

from monitor.log import get_logger
from monitor.tickets.base import (
    Action,
    Delivered,
    FindResult,
    NotFound,
    Rejected,
    RetryLater,
    SinkResult,
    TicketRef,
    TicketRequest,
)
from monitor.tickets.compose import MAX_SUBJECT_LENGTH, with_ref_tag
from monitor.tickets.config import EmailSinkSettings, ImapSettings
from monitor.tickets.http_client import redact
from monitor.tickets.ledger import TicketRow, TicketStore
from probes.clock import Clock, utc_now
from probes.untrusted import truncate_untrusted

log = get_logger("trunkwatch.tickets")

# Replies to tickets older than this are no longer looked for (the carrier answers within
# hours; a week covers a long weekend and a slow helpdesk).
MAX_REPLY_AGE = timedelta(days=7)
# Searches per poll: each ticket without a number costs one IMAP SEARCH.
MAX_TICKETS_PER_POLL = 200
# SMTP reply classes (RFC 5321 §4.2.1): 4yz transient (retry), 5yz permanent.
SMTP_PERMANENT = 500
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")


def message_id(idempotency: str, domain: str) -> str:
    return f"<{_UNSAFE_ID.sub('-', idempotency)}@{domain}>"


@dataclass(slots=True, frozen=True)
class CarrierReply:
    number: str
    tag: str  # the whole match, quoted in later subjects ("[Ticket#4711]")
    message_id: str | None
    replied_at: datetime | None


def capture(subject: str, pattern: re.Pattern[str]) -> tuple[str, str] | None:
    """(number, tag) from a reply's subject, or None."""
    match = pattern.search(subject)
    if match is None or not match.group(1):
        return None
    return match.group(1), match.group(0)


def parse_reply(header_bytes: bytes, pattern: re.Pattern[str]) -> CarrierReply | None:
    # policy.default: header values come back unfolded, without CR/LF (see test-peers.md).
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(header_bytes)
    found = capture(str(headers.get("Subject", "")), pattern)
    if found is None:
        return None
    replied_at: datetime | None = None
    with contextlib.suppress(TypeError, ValueError, IndexError):
        date = parsedate_to_datetime(str(headers.get("Date", "")))
        replied_at = date.astimezone(UTC) if date.tzinfo else date.replace(tzinfo=UTC)
    carrier_id = headers.get("Message-ID")
    return CarrierReply(
        number=found[0],
        tag=found[1],
        message_id=str(carrier_id).strip() if carrier_id else None,
        replied_at=replied_at,
    )


class EmailSink:
    def __init__(self, settings: EmailSinkSettings, *, timeout_s: float, clock: Clock) -> None:
        self.name = settings.name
        self._s = settings
        self._timeout_s = timeout_s
        self._clock = clock
        self._pattern = re.compile(settings.imap.ticket_regex) if settings.imap else None

    def build(self, request: TicketRequest) -> EmailMessage:
        """The message for this request (its Message-ID is deterministic)."""
        msg = EmailMessage()
        own_id = message_id(request.idempotency_key, self._s.domain)
        subject = with_ref_tag(request.subject, request.ref)
        ticket = request.ticket
        if ticket is not None and request.action is not Action.OPEN:
            opening = ticket.data.get("message_id")
            theirs = ticket.data.get("carrier_message_id")
            tag = ticket.data.get("number_tag")
            if tag and tag not in subject:
                subject = f"{tag} {subject}"[:MAX_SUBJECT_LENGTH]
            parent = theirs or opening
            if parent:
                msg["In-Reply-To"] = parent
                msg["References"] = " ".join(i for i in (opening, theirs) if i)
        msg["Subject"] = subject
        msg["From"] = self._s.from_
        msg["To"] = ", ".join(self._s.to)
        if self._s.cc:
            msg["Cc"] = ", ".join(self._s.cc)
        msg["Message-ID"] = own_id
        msg["Date"] = format_datetime(utc_now(self._clock).astimezone(UTC))
        msg["X-Trunkwatch-Ref"] = request.ref
        msg.set_content(request.body)
        return msg

    async def open(self, request: TicketRequest) -> SinkResult:
        msg = self.build(request)
        sent = await self._send(msg)
        if not isinstance(sent, Delivered):
            return sent
        own_id = str(msg["Message-ID"])
        return Delivered(TicketRef(external_id=own_id, data={"message_id": own_id}))

    async def find_existing(self, request: TicketRequest) -> FindResult:
        if self._s.imap is None or self._pattern is None:
            return NotFound()  # the re-sent mail keeps its Message-ID: see the module doc
        own_id = message_id(request.idempotency_key, self._s.domain)
        try:
            replies = await fetch_replies(self._s.imap, [own_id], self._pattern, self._timeout_s)
        except (OSError, TimeoutError, aioimaplib.Abort, aioimaplib.Error) as exc:
            return RetryLater(f"imap: {truncate_untrusted(repr(exc), 160)}")
        reply = replies.get(own_id)
        if reply is None:
            return NotFound()
        return Delivered(
            TicketRef(external_id=own_id, number=reply.number, data=_data(own_id, reply))
        )

    async def update(self, request: TicketRequest) -> SinkResult:
        return await self._send(self.build(request))

    async def resolve(self, request: TicketRequest) -> SinkResult:
        return await self._send(self.build(request))

    async def close(self) -> None:
        return None

    async def _send(self, msg: EmailMessage) -> SinkResult:
        smtp = self._s.smtp
        hidden = (smtp.password.get_secret_value(),) if smtp.password else ()
        try:
            await aiosmtplib.send(
                msg,
                hostname=smtp.host,
                port=smtp.effective_port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                use_tls=smtp.security == "tls",
                start_tls=smtp.security == "starttls",
                cert_bundle=str(smtp.ca_file) if smtp.ca_file else None,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reason = f"smtp: recipients refused ({', '.join(map(str, codes))})"
            if all(code >= SMTP_PERMANENT for code in codes):
                return Rejected(reason)
            return RetryLater(reason)
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"smtp: {exc.code} {truncate_untrusted(redact(exc.message, hidden), 160)}"
            return Rejected(reason) if exc.code >= SMTP_PERMANENT else RetryLater(reason)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            return RetryLater(f"smtp: {truncate_untrusted(repr(exc), 160)}")
        return Delivered()


def _data(own_id: str, reply: CarrierReply) -> dict[str, str]:
    data = {"message_id": own_id, "number_tag": reply.tag}
    if reply.message_id:
        data["carrier_message_id"] = reply.message_id
    return data


async def fetch_replies(
    imap: ImapSettings,
    message_ids: Sequence[str],
    pattern: re.Pattern[str],
    timeout_s: float,
) -> dict[str, CarrierReply]:
    """For each of our Message-IDs, the carrier's reply with a ticket number (if any)."""
    if imap.security == "tls":
        context = ssl.create_default_context(cafile=str(imap.ca_file) if imap.ca_file else None)
        client = aioimaplib.IMAP4_SSL(
            host=imap.host, port=imap.effective_port, timeout=timeout_s, ssl_context=context
        )
    else:
        client = aioimaplib.IMAP4(host=imap.host, port=imap.effective_port, timeout=timeout_s)
    found: dict[str, CarrierReply] = {}
    # aioimaplib's timeout covers each command, not the greeting: bound that one here.
    async with asyncio.timeout(timeout_s):
        await client.wait_hello_from_server()
    try:
        login = await client.login(imap.username, imap.password.get_secret_value())
        if login.result != "OK":
            raise aioimaplib.Error("imap login refused")
        selected = await client.select(imap.mailbox)
        if selected.result != "OK":
            raise aioimaplib.Error(f"imap select {imap.mailbox!r} refused")
        for own_id in message_ids:
            reply = await _reply_to(client, own_id, pattern)
            if reply is not None:
                found[own_id] = reply
    finally:
        with contextlib.suppress(Exception):
            await client.logout()
    return found


async def _reply_to(client: Any, own_id: str, pattern: re.Pattern[str]) -> CarrierReply | None:
    quoted = '"' + own_id.replace("\\", "").replace('"', "") + '"'
    result = await client.search(
        "OR", "HEADER", "In-Reply-To", quoted, "HEADER", "References", quoted
    )
    if result.result != "OK" or not result.lines:
        return None
    numbers = [n for n in bytes(result.lines[0]).split() if n.isdigit()]
    for number in numbers:
        fetched = await client.fetch(
            number.decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID DATE)])"
        )
        if fetched.result != "OK":
            continue
        for line in fetched.lines:
            if isinstance(line, bytearray):  # the header literal
                reply = parse_reply(bytes(line), pattern)
                if reply is not None:
                    return reply
    return None


class ImapPoller:
    """Looks for carrier replies to this sink's tickets every ``poll_interval``."""

    def __init__(
        self, settings: EmailSinkSettings, db: TicketStore, *, timeout_s: float, clock: Clock
    ) -> None:
        assert settings.imap is not None
        self._sink = settings.name
        self._imap = settings.imap
        self._db = db
        self._timeout_s = timeout_s
        self._clock = clock
        self._pattern = re.compile(settings.imap.ticket_regex)
        self.interval_s = settings.imap.poll_interval

    async def poll_once(self) -> int:
        """Capture what replies have arrived; the number of tickets that got a number."""
        now = utc_now(self._clock)
        waiting = await self._db.tickets_without_number(self._sink, now - MAX_REPLY_AGE)
        by_id: dict[str, TicketRow] = {}
        for row in waiting:
            own_id = row.data.get("message_id")
            if own_id:
                by_id.setdefault(own_id, row)
        if not by_id:
            return 0
        ids = list(by_id)[:MAX_TICKETS_PER_POLL]
        replies = await fetch_replies(self._imap, ids, self._pattern, self._timeout_s)
        for own_id, reply in replies.items():
            row = by_id[own_id]
            at = reply.replied_at or now
            await self._db.set_number(
                row.ticket_key, self._sink, reply.number, at, json.dumps(_data(own_id, reply))
            )
            log.info(
                "ticket_number_captured",
                sink=self._sink,
                ticket_key=row.ticket_key,
                number=truncate_untrusted(reply.number, 40),
            )
        return len(replies)
