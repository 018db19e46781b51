"""A TicketRequest from an outbox row: the sink's language and templates, rendered."""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import ZoneInfo

from monitor.tickets.base import Action, TicketContext, TicketRef, TicketRequest
from monitor.tickets.config import SinkSettings, TicketsSettings
from monitor.tickets.templates import Language, pick, render, render_field, template_values

# Subjects are one header line: RFC 5322 §2.1.1 recommends at most 78 characters per line
# and most helpdesks cut titles at 255; 250 leaves room for a "Re: " or a carrier's tag.
MAX_SUBJECT_LENGTH = 250
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_PREFIX = {Action.OPEN: "", Action.UPDATE: "update_", Action.RESOLVE: "resolve_"}


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def compose(
    settings: TicketsSettings,
    sink: SinkSettings,
    action: Action,
    context: TicketContext,
    idempotency_key: str,
    ticket: TicketRef | None,
    attempt: int,
) -> TicketRequest:
    language: Language = sink.language or settings.language
    values = template_values(
        key=context.key,
        ref=context.ref,
        carrier=context.carrier,
        outages=context.outages,
        kind=context.kind,
        severity=context.severity.value,
        language=language,
        zone=_zone(settings.timezone),
        ticket_number=ticket.number if ticket else None,
        member=context.member,
    )
    # Values include a peer's text (the probe's detail): one line each, so a reply
    # phrase cannot add header lines to an e-mail or break a subject.
    values = {name: _CONTROL.sub(" ", value) for name, value in values.items()}
    prefix = _PREFIX[action]
    subject = render(
        pick(f"{prefix}subject", sink.templates.get(f"{prefix}subject"), language), values
    )
    body = render(pick(f"{prefix}body", sink.templates.get(f"{prefix}body"), language), values)
    return TicketRequest(
        action=action,
        sink=sink.name,
        context=context,
        idempotency_key=idempotency_key,
        subject=_CONTROL.sub(" ", subject).strip()[:MAX_SUBJECT_LENGTH],
        body=body,
        fields={name: render_field(value, values) for name, value in sink.fields.items()},
        ticket=ticket,
        attempt=attempt,
    )


def with_ref_tag(subject: str, ref: str) -> str:
    """The subject with ``[ref]`` in it, for sinks that find tickets by subject tag."""
    return subject if ref in subject else f"[{ref}] {subject}"[:MAX_SUBJECT_LENGTH]
