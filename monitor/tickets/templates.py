"""Ticket texts: Spanish and English defaults, per-sink overrides, ``${field}`` placeholders.

Templates are ``string.Template`` (``$name`` / ``${name}``, ``$$`` for a dollar): no
attribute access or format specs, so a template from config cannot reach into objects.
Instants are written in the configured time zone with the UTC instant alongside.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from string import Template
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from monitor.events import Outage, OutageKind

Language = Literal["es", "en"]

TEMPLATE_NAMES: Final = frozenset(
    {"subject", "body", "update_subject", "update_body", "resolve_subject", "resolve_body"}
)

# Every placeholder a template may use; config validation refuses any other.
TEMPLATE_FIELDS: Final = frozenset(
    {
        "ref",  # "TW-ABCDE23456": our tag for this ticket
        "trunk",  # the trunk, or a grouped ticket's trunks joined with ", "
        "count",  # how many trunks the ticket covers
        "carrier",
        "kind",  # "total outage" / "degradation" in the template's language
        "severity",  # critical | warning
        "outage_id",  # the outage id (a grouped ticket's group key)
        "first_failure_at",
        "first_failure_at_utc",
        "confirmed_at",
        "confirmed_at_utc",
        "restored_at",
        "restored_at_utc",
        "duration",  # first failure → restoration, H:MM:SS
        "outcome",  # what the first failed probe saw (timeout, refused, ...)
        "detail",
        "ticket_number",  # the carrier's number once known (IMAP capture, sink reply)
        "member",  # update notes: the trunk that came back
        "member_restored_at",
        "member_duration",
        "still_down",  # update notes: trunks of the grouped ticket still down
        "timezone",
    }
)

_KIND: Final[dict[Language, dict[OutageKind, str]]] = {
    "es": {
        OutageKind.OUTAGE: "Interrupción total del servicio",
        OutageKind.DEGRADATION: "Degradación del servicio",
    },
    "en": {
        OutageKind.OUTAGE: "Total service outage",
        OutageKind.DEGRADATION: "Service degradation",
    },
}
_UNKNOWN: Final[dict[Language, str]] = {"es": "(pendiente)", "en": "(pending)"}

DEFAULTS: Final[dict[Language, dict[str, str]]] = {
    "es": {
        "subject": "[${ref}] ${kind}: ${trunk} (${carrier})",
        "body": (
            "Estimado equipo de soporte de ${carrier}:\n\n"
            "Reportamos la siguiente falla en el servicio contratado.\n\n"
            "  Tipo:                   ${kind}\n"
            "  Troncal(es):            ${trunk}\n"
            "  Primer sondeo fallido:  ${first_failure_at}\n"
            "  Falla confirmada:       ${confirmed_at}\n"
            "  Causa observada:        ${outcome} ${detail}\n"
            "  Nuestra referencia:     ${ref}\n\n"
            "Conforme al anexo de servicio, el tiempo de indisponibilidad corre desde la "
            "apertura de este reporte.\n"
            "Favor de confirmar el número de ticket asignado e informarnos del avance.\n\n"
            "Mensaje generado automáticamente por trunkwatch.\n"
        ),
        "update_subject": "[${ref}] Restablecida ${member} (${carrier})",
        "update_body": (
            "La troncal ${member} se restableció el ${member_restored_at} "
            "(duración ${member_duration}).\n"
            "Siguen sin servicio: ${still_down}.\n\n"
            "Nuestra referencia: ${ref}. Su ticket: ${ticket_number}.\n"
        ),
        "resolve_subject": "[${ref}] Servicio restablecido: ${trunk} (${carrier})",
        "resolve_body": (
            "El servicio se restableció.\n\n"
            "  Troncal(es):            ${trunk}\n"
            "  Primer sondeo fallido:  ${first_failure_at}\n"
            "  Restablecimiento:       ${restored_at}\n"
            "  Duración:               ${duration}\n"
            "  Nuestra referencia:     ${ref}\n"
            "  Su ticket:              ${ticket_number}\n\n"
            "Favor de cerrar el ticket y enviarnos el reporte de causa raíz.\n\n"
            "Mensaje generado automáticamente por trunkwatch.\n"
        ),
    },
    "en": {
        "subject": "[${ref}] ${kind}: ${trunk} (${carrier})",
        "body": (
            "Dear ${carrier} support team,\n\n"
            "We are reporting the following fault in the contracted service.\n\n"
            "  Kind:                ${kind}\n"
            "  Trunk(s):            ${trunk}\n"
            "  First failed probe:  ${first_failure_at}\n"
            "  Fault confirmed:     ${confirmed_at}\n"
            "  Observed cause:      ${outcome} ${detail}\n"
            "  Our reference:       ${ref}\n\n"
            "Under the service annex, downtime counts from the opening of this report.\n"
            "Please confirm the ticket number assigned and keep us informed.\n\n"
            "This message was generated automatically by trunkwatch.\n"
        ),
        "update_subject": "[${ref}] Restored ${member} (${carrier})",
        "update_body": (
            "Trunk ${member} was restored at ${member_restored_at} "
            "(duration ${member_duration}).\n"
            "Still down: ${still_down}.\n\n"
            "Our reference: ${ref}. Your ticket: ${ticket_number}.\n"
        ),
        "resolve_subject": "[${ref}] Service restored: ${trunk} (${carrier})",
        "resolve_body": (
            "The service has been restored.\n\n"
            "  Trunk(s):            ${trunk}\n"
            "  First failed probe:  ${first_failure_at}\n"
            "  Restored:            ${restored_at}\n"
            "  Duration:            ${duration}\n"
            "  Our reference:       ${ref}\n"
            "  Your ticket:         ${ticket_number}\n\n"
            "Please close the ticket and send us the root cause analysis.\n\n"
            "This message was generated automatically by trunkwatch.\n"
        ),
    },
}


def format_instant(instant: datetime | None, zone: ZoneInfo, language: Language) -> str:
    """``2026-10-03 14:00:00 CST`` in the contract's zone (or "(pending)")."""
    if instant is None:
        return _UNKNOWN[language]
    local = instant.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def format_utc(instant: datetime | None) -> str:
    if instant is None:
        return ""
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(span: timedelta | None) -> str:
    """``H:MM:SS`` (hours not wrapped at 24: a 30-hour outage reads 30:00:00)."""
    if span is None:
        return ""
    seconds = max(0, round(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def template_values(
    *,
    key: str,
    ref: str,
    carrier: str,
    outages: tuple[Outage, ...],
    kind: OutageKind,
    severity: str,
    language: Language,
    zone: ZoneInfo,
    ticket_number: str | None = None,
    member: str | None = None,
) -> dict[str, str]:
    """The value of every TEMPLATE_FIELDS placeholder for one ticket."""
    first = min(outages, key=lambda o: o.first_failure_at)
    first_failure = first.first_failure_at
    confirmed = min(o.confirmed_at for o in outages)
    restored_all = [o.restored_at for o in outages]
    restored = None if any(r is None for r in restored_all) else max(r for r in restored_all if r)
    member_outage = next((o for o in outages if o.id == member), None)
    values = {
        "ref": ref,
        "trunk": ", ".join(o.trunk for o in outages),
        "count": str(len(outages)),
        "carrier": carrier,
        "kind": _KIND[language][kind],
        "severity": severity,
        "outage_id": key,
        "first_failure_at": format_instant(first_failure, zone, language),
        "first_failure_at_utc": format_utc(first_failure),
        "confirmed_at": format_instant(confirmed, zone, language),
        "confirmed_at_utc": format_utc(confirmed),
        "restored_at": format_instant(restored, zone, language),
        "restored_at_utc": format_utc(restored),
        "duration": format_duration(None if restored is None else restored - first_failure),
        "outcome": first.first_outcome,
        "detail": first.detail or "",
        "ticket_number": ticket_number or _UNKNOWN[language],
        "member": member_outage.trunk if member_outage else "",
        "member_restored_at": format_instant(
            member_outage.restored_at if member_outage else None, zone, language
        ),
        "member_duration": format_duration(
            member_outage.restored_at - member_outage.first_failure_at
            if member_outage and member_outage.restored_at
            else None
        ),
        "still_down": ", ".join(o.trunk for o in outages if o.restored_at is None) or "-",
        "timezone": zone.key,
    }
    assert values.keys() == TEMPLATE_FIELDS  # a new field must be documented above
    return values


def render(template: str, values: Mapping[str, str]) -> str:
    return Template(template).substitute(values)


def render_field(value: Any, values: Mapping[str, str]) -> Any:
    """A per-sink extra field: strings (and lists of strings) are templates."""
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, list):
        return [render(v, values) if isinstance(v, str) else v for v in value]
    return value


def pick(name: str, override: str | None, language: Language) -> str:
    """The override if the sink has one, else the language's default."""
    return override if override is not None else DEFAULTS[language][name]
