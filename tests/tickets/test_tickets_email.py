"""E-mail tickets for real: aiosmtpd (STARTTLS or TLS, AUTH) plays the carrier's helpdesk,
Dovecot IMAP holds its reply; the carrier's ticket number is captured, stored and quoted."""

from __future__ import annotations

import email.policy
import imaplib
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from peers import TlsFiles, free_port
from tickets_peers import IMAP_PASSWORD, IMAP_USER, Dovecot, running_dovecot
from tickets_support import FAST_OUTBOX, closed, outage, settings, until

from monitor.events import OutageClosed, OutageOpened
from monitor.store import Store
from monitor.store.schema import TicketState
from monitor.tickets.config import DEFAULT_TICKET_REGEX
from monitor.tickets.email import capture, parse_reply
from monitor.tickets.ledger import list_tickets
from monitor.tickets.service import TicketService

pytestmark = pytest.mark.peers

SMTP_USER, SMTP_PASSWORD = "noc", "smtp-secret"
CARRIER_NUMBER = "4711"


@dataclass
class Carrier:
    """The carrier's helpdesk: takes our mail over SMTP and files a reply in our mailbox."""

    imap_port: int
    reply: bool = True
    fail_first_after_filing: bool = False  # file the reply, then answer 451 (ack lost)
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        # policy.default: header values come unfolded, safe to reuse (notes/test-peers.md).
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        assert isinstance(msg, EmailMessage)
        self.received.append(msg)
        if self.reply and msg["In-Reply-To"] is None:
            self._file_reply(msg)
        if self.fail_first_after_filing:
            self.fail_first_after_filing = False
            return "451 4.3.0 Temporary failure, try again"
        return "250 Message accepted for delivery"

    def _file_reply(self, ours: EmailMessage) -> None:
        reply = EmailMessage()
        reply["Subject"] = f"[Ticket#{CARRIER_NUMBER}] Re: {ours['Subject']}"
        reply["From"] = "soporte@carrier.example"
        reply["To"] = str(ours["From"])
        reply["Message-ID"] = make_msgid(domain="carrier.example")
        reply["In-Reply-To"] = str(ours["Message-ID"])
        reply["References"] = str(ours["Message-ID"])
        reply["Date"] = format_datetime(datetime.now(UTC))
        reply.set_content(f"Hemos recibido su reporte. Ticket #{CARRIER_NUMBER}.")
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port)
        try:
            imap.login(IMAP_USER, IMAP_PASSWORD)
            imap.append("INBOX", "", None, reply.as_bytes())  # type: ignore[arg-type]
        finally:
            imap.logout()


def authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers 535 itself (handled=True would mean "I replied").
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with running_dovecot() as peer:
        yield peer


@pytest.fixture
def smtp_tls(tls_ca: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls_ca.cert), str(tls_ca.key))
    return ctx


@dataclass
class Mailroom:
    carrier: Carrier
    controller: Controller
    port: int


def start_smtp(carrier: Carrier, tls: ssl.SSLContext, *, implicit_tls: bool) -> Mailroom:
    port = free_port("tcp")
    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_required": True}
    if implicit_tls:
        # aiosmtpd only counts STARTTLS as TLS for AUTH; this connection is TLS from the start.
        kwargs.update(ssl_context=tls, auth_require_tls=False)
    else:
        kwargs.update(tls_context=tls, require_starttls=True)
    controller = Controller(carrier, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return Mailroom(carrier, controller, port)


def clear_inbox(dovecot: Dovecot) -> None:
    imap = imaplib.IMAP4("127.0.0.1", dovecot.port)
    try:
        imap.login(IMAP_USER, IMAP_PASSWORD)
        imap.select("INBOX")
        imap.store("1:*", "+FLAGS", "\\Deleted")
        imap.expunge()
    except imaplib.IMAP4.error:
        pass  # an empty mailbox has no 1:*
    finally:
        imap.logout()


def email_sink(
    mailroom: Mailroom, dovecot: Dovecot, tls_ca: TlsFiles, *, security: str, password_env: str
) -> dict[str, Any]:
    return {
        "name": "mail",
        "type": "email",
        "from": "noc@customer.example",
        "to": ["soporte@carrier.example"],
        "smtp": {
            "host": "127.0.0.1",
            "port": mailroom.port,
            "security": security,
            "username": SMTP_USER,
            "password_env": password_env,
            "ca_file": str(tls_ca.ca),
        },
        "imap": {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "security": "plain",
            "username": IMAP_USER,
            "password_env": "IMAP_PW",
            "poll_interval": "200ms",
        },
    }


async def service_for(store: Store, sink: dict[str, Any]) -> TicketService:
    env = {"SMTP_PW": SMTP_PASSWORD, "IMAP_PW": IMAP_PASSWORD, "WRONG_PW": "not-it"}
    data = {"language": "es", "outbox": FAST_OUTBOX, "sinks": [sink]}
    service = TicketService(settings(data, env), [("mx-1", "carrier-a")])
    await service.start(store)
    return service


async def one_ticket(store: Store, **want: Any) -> bool:
    tickets = await list_tickets(store)
    return len(tickets) == 1 and all(getattr(tickets[0], k) == v for k, v in want.items())


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_thread_with_the_carriers_number(
    store: Store, dovecot: Dovecot, tls_ca: TlsFiles, smtp_tls: ssl.SSLContext, security: str
) -> None:
    clear_inbox(dovecot)
    mailroom = start_smtp(Carrier(dovecot.port), smtp_tls, implicit_tls=security == "tls")
    service = await service_for(
        store, email_sink(mailroom, dovecot, tls_ca, security=security, password_env="SMTP_PW")
    )
    try:
        o = outage("mx-1")
        await service.append(store, [OutageOpened(o)])
        await until(lambda: one_ticket(store, state=TicketState.OPEN, number=CARRIER_NUMBER))
        [ticket] = await list_tickets(store)
        [opening] = mailroom.carrier.received
        assert opening["Message-ID"] == ticket.external_id == ticket.data["message_id"]
        assert opening["Subject"].startswith(f"[{ticket.ref}] Interrupción total del servicio")
        assert opening["To"] == "soporte@carrier.example"
        assert ticket.number_captured_at is not None and ticket.acknowledged_at is not None
        assert ticket.data["number_tag"] == f"[Ticket#{CARRIER_NUMBER}]"

        await service.append(store, [OutageClosed(closed(o, after_s=600))])
        await until(lambda: one_ticket(store, state=TicketState.RESOLVED))
        _, resolve = mailroom.carrier.received
        carrier_id = ticket.data["carrier_message_id"]
        assert resolve["Subject"].startswith(f"[Ticket#{CARRIER_NUMBER}] [{ticket.ref}]")
        assert resolve["In-Reply-To"] == carrier_id
        assert resolve["References"].split() == [opening["Message-ID"], carrier_id]
        body = resolve.get_content()
        assert f"Su ticket:              {CARRIER_NUMBER}" in body
        assert "Duración:               0:10:00" in body
    finally:
        await service.stop()
        mailroom.controller.stop()


async def test_a_lost_smtp_ack_is_found_through_the_carriers_reply(
    store: Store, dovecot: Dovecot, tls_ca: TlsFiles, smtp_tls: ssl.SSLContext
) -> None:
    clear_inbox(dovecot)
    carrier = Carrier(dovecot.port, fail_first_after_filing=True)
    mailroom = start_smtp(carrier, smtp_tls, implicit_tls=False)
    service = await service_for(
        store, email_sink(mailroom, dovecot, tls_ca, security="starttls", password_env="SMTP_PW")
    )
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: one_ticket(store, state=TicketState.OPEN))
        assert len(carrier.received) == 1  # found through IMAP, not sent twice
        [ticket] = await list_tickets(store)
        assert ticket.number == CARRIER_NUMBER
    finally:
        await service.stop()
        mailroom.controller.stop()


async def test_smtp_auth_failure_is_refused(
    store: Store, dovecot: Dovecot, tls_ca: TlsFiles, smtp_tls: ssl.SSLContext
) -> None:
    mailroom = start_smtp(Carrier(dovecot.port), smtp_tls, implicit_tls=False)
    service = await service_for(
        store, email_sink(mailroom, dovecot, tls_ca, security="starttls", password_env="WRONG_PW")
    )
    try:
        await service.append(store, [OutageOpened(outage("mx-1"))])
        await until(lambda: one_ticket(store, state=TicketState.FAILED))
        [ticket] = await list_tickets(store)
        assert ticket.last_error is not None and ticket.last_error.startswith("smtp: 535")
        assert "not-it" not in ticket.last_error
        assert mailroom.carrier.received == []
    finally:
        await service.stop()
        mailroom.controller.stop()


# --- parsing the carrier's reply --------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "found"),
    [
        ("[Ticket#4711] Re: [TW-X] caída", ("4711", "[Ticket#4711]")),
        ("Re: [TW-X] caída [Ticket#12]", ("12", "[Ticket#12]")),
        ("Re: [TW-X] caída", None),
        ("[Ticket#] Re: x", None),
    ],
)
def test_capture(subject: str, found: tuple[str, str] | None) -> None:
    assert capture(subject, re.compile(DEFAULT_TICKET_REGEX)) == found


def test_parse_reply_with_a_folded_subject_and_rt_style_tag(tmp_path: Path) -> None:
    raw = (
        b"Subject: [rt.vm #2] AutoReply:\r\n OUTAGE trunk carrier-a\r\n"
        b"Message-ID: <rt-2@vm>\r\nDate: Sat, 03 Oct 2026 20:01:00 +0000\r\n\r\n"
    )
    reply = parse_reply(raw, re.compile(r"\[rt\.vm #(\d+)\]"))
    assert reply is not None
    assert (reply.number, reply.tag, reply.message_id) == ("2", "[rt.vm #2]", "<rt-2@vm>")
    assert (
        reply.replied_at is not None and reply.replied_at.isoformat() == "2026-10-03T20:01:00+00:00"
    )
