"""CLI commands for the SLA: ``sla report``, ``evidence export|verify``, ``maintenance``,
``exclude`` and ``outages``, as typer apps that monitor/cli.py mounts.

Every command reads the same YAML config as ``trunkwatch run`` (``--config``); times are ISO
8601 with a UTC offset; changes name who makes them (``--by``) and are audited.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from monitor.sla.contracts import ContractsSettings

if TYPE_CHECKING:
    from monitor.sla.service import SlaContext

__all__ = [
    "audit_app",
    "evidence_app",
    "exclude_app",
    "load_sla_config",
    "maintenance_app",
    "outages_app",
    "sla_app",
]

T = TypeVar("T")
EXIT_FAILED = 1  # verification found problems / the change was refused
EXIT_USAGE = 2  # config or input could not be used

sla_app = typer.Typer(help="Contract SLA reports.", no_args_is_help=True)
evidence_app = typer.Typer(help="Signed evidence bundles.", no_args_is_help=True)
maintenance_app = typer.Typer(help="Maintenance windows (never deleted).", no_args_is_help=True)
exclude_app = typer.Typer(help="Exclusions of outages (audited, revocable).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log of every ledger change.", no_args_is_help=True)
outages_app = typer.Typer(
    help="Outages: list, manual entries, ticket-time corrections.", no_args_is_help=True
)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The YAML config file.")]
ByOpt = Annotated[str, typer.Option("--by", help="Who makes the change (audited).")]
ServiceOpt = Annotated[str, typer.Option("--service", "-s", help="Service name.")]
MonthOpt = Annotated[str, typer.Option("--month", "-m", help="YYYY-MM in the contract's zone.")]


@dataclass(frozen=True, slots=True)
class SlaCliConfig:
    store_url: str
    agent: str
    sla: ContractsSettings


def load_sla_config(path: Path) -> SlaCliConfig:
    """Store URL, agent and the ``sla:`` section of the config file (errors exit 2)."""
    from monitor.config import ConfigError, load_config

    try:
        cfg = load_config(path, secrets=False)  # reads the store: needs no secret
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    return SlaCliConfig(cfg.store.url, cfg.agent, cfg.sla)


@asynccontextmanager
async def _context(config: Path) -> AsyncIterator[SlaContext]:
    from monitor.sla.service import SlaContext
    from monitor.store import Store

    loaded = load_sla_config(config)
    store = await Store.open(loaded.store_url, agent=loaded.agent)
    try:
        yield SlaContext(store, loaded.sla)
    finally:
        await store.close()


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; the ledger's and the SLA's input errors exit 2 with the text."""
    from monitor.sla.evidence import EvidenceError
    from monitor.sla.intervals import SlaInputError
    from monitor.sla.ledger import LedgerError
    from monitor.sla.maintenance import MaintenanceError
    from monitor.sla.reports import ReportsExtraMissing
    from monitor.sla.service import UnknownService

    errors = (LedgerError, SlaInputError, MaintenanceError, EvidenceError, UnknownService)
    try:
        return asyncio.run(factory())
    except (*errors, ReportsExtraMissing) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _instant(text: str, name: str, zone: ZoneInfo | None) -> datetime:
    """An ISO 8601 instant; without an offset it is read in the contract's zone (`zone`) and
    echoed back with the offset it got, so the operator sees what was recorded."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 instant", param_hint=name) from None
    if value.tzinfo is not None:
        return value
    if zone is None:
        raise typer.BadParameter(
            "the contracts have several zones: give a UTC offset, e.g. 2026-10-03T14:02:00-06:00",
            param_hint=name,
        )
    value = value.replace(tzinfo=zone)
    typer.echo(f"{name} {text} read as {value.isoformat()} ({zone.key})", err=True)
    return value


def _zone(ctx: SlaContext, services: list[str] | tuple[str, ...] = ()) -> ZoneInfo | None:
    """The contract zone of the named services, or the one zone every contract shares."""
    from monitor.sla.maintenance import ALL_SERVICES

    named = [s for s in services if s != ALL_SERVICES]
    contracts = [ctx.service(s)[1] for s in named] if named else ctx.settings.contracts
    zones = {str(c.tz) for c in contracts}
    return ZoneInfo(zones.pop()) if len(zones) == 1 else None


def _now() -> datetime:
    return datetime.now(UTC)


def _emit(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        typer.echo(f"wrote {output}", err=True)


def _print_json(value: Any) -> None:
    import json

    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


# ---- sla ----------------------------------------------------------------------------------


@sla_app.command("report")
def sla_report(
    config: ConfigOpt,
    service: ServiceOpt,
    month: MonthOpt,
    fmt: Annotated[str, typer.Option("--format", "-f", help="pdf, html, csv or json.")] = "pdf",
    lang: Annotated[str, typer.Option("--lang", help="es or en.")] = "es",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """The contract availability report of SERVICE for MONTH."""
    from monitor.sla.reports import FORMATS, make_report, render
    from monitor.sla.reports.i18n import LANGS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    if lang not in LANGS:
        raise typer.BadParameter(f"one of {', '.join(LANGS)}", param_hint="--lang")
    if fmt == "pdf" and output is None and sys.stdout.isatty():
        raise typer.BadParameter("a PDF goes to a file: give --output", param_hint="--output")

    async def main() -> bytes:
        async with _context(config) as ctx:
            report = await make_report(ctx, service, month, _now(), lang=lang)
        return await asyncio.to_thread(render, report, fmt)

    _emit(_run(main), output)


# ---- evidence -----------------------------------------------------------------------------


@evidence_app.command("export")
def evidence_export(
    config: ConfigOpt,
    month: MonthOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="New directory for the bundle.")],
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="Only these services.")
    ] = None,
    lang: Annotated[str, typer.Option("--lang")] = "es",
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Include PDF reports.")] = True,
) -> None:
    """Write MONTH's signed evidence bundle (reports, raw records, journal, manifest)."""
    from monitor.sla.evidence import export_bundle

    async def main() -> Path:
        async with _context(config) as ctx:
            return await export_bundle(
                ctx,
                month,
                out,
                _now(),
                key_path=ctx.settings.signing_key_file,
                services=service or None,
                lang=lang,
                include_pdf=pdf,
            )

    typer.echo(f"bundle written to {_run(main)}")


@evidence_app.command("verify")
def evidence_verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory or .zip.")],
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="PEM key the bundle must be signed by.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Also compare the journal with this config's store."),
    ] = None,
) -> None:
    """Check BUNDLE offline; name every file or journal event altered, removed or added."""
    from monitor.sla.evidence import EvidenceError, verify_against_store, verify_bundle

    if not bundle.exists():
        typer.echo(f"{bundle}: not found", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        pem = public_key.read_bytes() if public_key is not None else None
        result = verify_bundle(bundle, public_key_pem=pem)
    except (EvidenceError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    problems = list(result.problems)
    if config is not None:

        async def against() -> list[str]:
            async with _context(config) as ctx:
                return await verify_against_store(bundle, ctx.store)

        problems.extend(_run(against))
    typer.echo(f"signing key fingerprint: {result.fingerprint or 'unknown'}")
    if problems:
        for problem in problems:
            typer.echo(f"FAIL {problem}")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"OK {len(result.manifest.get('files', {}))} files, signature and journal chain")


# ---- maintenance --------------------------------------------------------------------------


@maintenance_app.command("list")
def maintenance_list(config: ConfigOpt) -> None:
    """Every window, cancelled ones included (JSON)."""

    async def main() -> list[dict[str, Any]]:
        async with _context(config) as ctx:
            return [w.to_dict() for w in await ctx.ledger.windows()]

    _print_json(_run(main))


@maintenance_app.command("add")
def maintenance_add(
    config: ConfigOpt,
    title: Annotated[str, typer.Option("--title")],
    start: Annotated[str, typer.Option("--start", help="ISO instant with offset.")],
    end: Annotated[str, typer.Option("--end", help="ISO instant with offset.")],
    by: ByOpt,
    service: Annotated[list[str], typer.Option("--service", "-s", help="Service, or * for all.")],
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="Zone the rule repeats in (default: the contract's)."),
    ] = None,
    rrule: Annotated[str | None, typer.Option("--rrule", help="RFC 5545 RRULE.")] = None,
    notice: Annotated[str, typer.Option("--notice", help="Notice reference.")] = "",
    origin: Annotated[
        str, typer.Option("--origin", help="carrier, customer or vendor.")
    ] = "carrier",
) -> None:
    """Add a one-off or recurring maintenance window (times without offset: contract zone)."""
    from monitor.sla import commands

    async def main() -> dict[str, Any]:
        async with _context(config) as ctx:
            try:
                zone = ZoneInfo(tz) if tz else _zone(ctx, service)
            except (ZoneInfoNotFoundError, ValueError):
                raise typer.BadParameter(f"unknown time zone {tz!r}", param_hint="--tz") from None
            window = await commands.add_window(
                ctx, title=title, services=service, origin=origin,
                start=_instant(start, "--start", zone), end=_instant(end, "--end", zone),
                tz=zone.key if zone else "UTC", rrule=rrule, notice_ref=notice, by=by, at=_now(),
            )  # fmt: skip
            return window.to_dict()

    _print_json(_run(main))


@maintenance_app.command("cancel")
def maintenance_cancel(
    config: ConfigOpt,
    window_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason")],
    by: ByOpt,
) -> None:
    """Cancel a window (it is kept, marked cancelled)."""

    from monitor.sla import commands

    async def main() -> dict[str, Any]:
        async with _context(config) as ctx:
            window = await commands.cancel_window(ctx, window_id, reason=reason, by=by, at=_now())
            return window.to_dict()

    _print_json(_run(main))


@maintenance_app.command("import")
def maintenance_import(
    config: ConfigOpt,
    ics: Annotated[Path, typer.Argument(help="iCalendar (.ics) file of maintenance notices.")],
    by: ByOpt,
    service: Annotated[list[str] | None, typer.Option("--service", "-s")] = None,
    tz: Annotated[str, typer.Option("--tz", help="Zone for floating/all-day times.")] = "UTC",
    origin: Annotated[str, typer.Option("--origin")] = "carrier",
) -> None:
    """Import notices: new UIDs are added, higher SEQUENCE updates, STATUS:CANCELLED cancels."""
    from monitor.sla import commands
    from monitor.sla.maintenance import ALL_SERVICES

    data = ics.read_bytes()

    async def main() -> dict[str, list[str]]:
        async with _context(config) as ctx:
            result = await commands.import_ics(
                ctx, data, services=service or [ALL_SERVICES], origin=origin, tz=tz, by=by,
                at=_now(),
            )  # fmt: skip
            return result.to_dict()

    _print_json(_run(main))


# ---- exclusions ---------------------------------------------------------------------------


@exclude_app.command("add")
def exclude_add(
    config: ConfigOpt,
    outage_id: Annotated[str, typer.Argument()],
    service: ServiceOpt,
    kind: Annotated[
        str, typer.Option("--kind", help="customer_equipment, no_access, authority_order, ...")
    ],
    reason: Annotated[str, typer.Option("--reason")],
    by: ByOpt,
    reference: Annotated[str, typer.Option("--reference")] = "",
) -> None:
    """Classify OUTAGE_ID of SERVICE as excluded (whole outage, audited, revocable)."""
    from monitor.sla import commands

    async def main() -> dict[str, Any]:
        async with _context(config) as ctx:
            record = await commands.add_exclusion(
                ctx, outage_id=outage_id, service=service, kind=kind, reason=reason,
                reference=reference, by=by, at=_now(),
            )  # fmt: skip
            return record.to_dict()

    _print_json(_run(main))


@exclude_app.command("revoke")
def exclude_revoke(
    config: ConfigOpt,
    exclusion_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason")],
    by: ByOpt,
) -> None:
    """Revoke an exclusion: the outage counts again; the record is kept."""

    from monitor.sla import commands

    async def main() -> dict[str, Any]:
        async with _context(config) as ctx:
            record = await commands.revoke_exclusion(
                ctx, exclusion_id, reason=reason, by=by, at=_now()
            )
            return record.to_dict()

    _print_json(_run(main))


@exclude_app.command("list")
def exclude_list(
    config: ConfigOpt, service: Annotated[str | None, typer.Option("--service")] = None
) -> None:
    """Every exclusion, revoked ones included (JSON)."""

    async def main() -> list[dict[str, Any]]:
        async with _context(config) as ctx:
            return [e.to_dict() for e in await ctx.ledger.exclusions(service=service)]

    _print_json(_run(main))


# ---- outages ------------------------------------------------------------------------------


@outages_app.command("list")
def outages_list(config: ConfigOpt, service: ServiceOpt, month: MonthOpt) -> None:
    """SERVICE's outages in MONTH with the minutes counted and why the rest was not (JSON)."""
    from monitor.sla.reports import make_report, report_dict

    async def main() -> list[dict[str, Any]]:
        async with _context(config) as ctx:
            report = await make_report(ctx, service, month, _now(), lang="en")
            outages: list[dict[str, Any]] = report_dict(report)["outages"]
            return outages

    _print_json(_run(main))


@outages_app.command("add")
def outages_add(
    config: ConfigOpt,
    service: ServiceOpt,
    start: Annotated[str, typer.Option("--start", help="First failure (ISO with offset).")],
    evidence: Annotated[str, typer.Option("--evidence", help="Evidence reference.")],
    by: ByOpt,
    end: Annotated[str | None, typer.Option("--end", help="Restoration.")] = None,
    ticket: Annotated[str | None, typer.Option("--ticket-at", help="Ticket opening.")] = None,
    carrier_ticket: Annotated[str, typer.Option("--carrier-ticket")] = "",
    kind: Annotated[str, typer.Option("--kind", help="outage or degradation.")] = "outage",
    note: Annotated[str, typer.Option("--note")] = "",
    trunk: Annotated[
        str | None, typer.Option("--trunk", help="One part of the service (default: all of it).")
    ] = None,
) -> None:
    """Record an outage the monitor did not see (with evidence; times without offset are
    read in the contract's zone)."""
    from monitor.sla import commands

    async def main() -> dict[str, Any]:
        async with _context(config) as ctx:
            zone = _zone(ctx, [service])
            record = await commands.add_manual_outage(
                ctx, service=service, trunk=trunk, kind=kind,
                first_failure_at=_instant(start, "--start", zone),
                restored_at=None if end is None else _instant(end, "--end", zone),
                ticket_opened_at=None if ticket is None else _instant(ticket, "--ticket-at", zone),
                carrier_ticket=carrier_ticket, evidence_ref=evidence, note=note, by=by, at=_now(),
            )  # fmt: skip
            return record.to_dict()

    _print_json(_run(main))


@outages_app.command("withdraw")
def outages_withdraw(
    config: ConfigOpt,
    outage_id: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option("--reason")],
    by: ByOpt,
) -> None:
    """Withdraw a manual outage (kept, marked withdrawn)."""

    from monitor.sla import commands

    async def main() -> dict[str, Any]:
        async with _context(config) as ctx:
            record = await commands.withdraw_manual_outage(
                ctx, outage_id, reason=reason, by=by, at=_now()
            )
            return record.to_dict()

    _print_json(_run(main))


@outages_app.command("correct-ticket")
def outages_correct_ticket(
    config: ConfigOpt,
    outage_id: Annotated[str, typer.Argument()],
    at: Annotated[
        str, typer.Option("--at", help="True ticket opening (ISO; no offset: contract zone).")
    ],
    reason: Annotated[str, typer.Option("--reason")],
    by: ByOpt,
    reference: Annotated[str, typer.Option("--reference")] = "",
) -> None:
    """Correct OUTAGE_ID's ticket opening time, with the reason (the latest correction wins)."""
    from monitor.sla import commands

    async def main() -> dict[str, Any]:
        async with _context(config) as ctx:
            record = await commands.correct_ticket(
                ctx, outage_id=outage_id, value=_instant(at, "--at", _zone(ctx)), previous=None,
                reason=reason, reference=reference, by=by, at=_now(),
            )  # fmt: skip
            return record.to_dict()

    _print_json(_run(main))


# ---- audit --------------------------------------------------------------------------------


@audit_app.command("list")
def audit_list(
    config: ConfigOpt,
    entity: Annotated[
        str | None,
        typer.Option(help="exclusion, manual_outage, ticket_correction or maintenance."),
    ] = None,
    entity_id: Annotated[str | None, typer.Option("--entity-id")] = None,
) -> None:
    """Every change to the ledger: who, when, what, before and after (JSON, oldest first)."""
    from monitor.sla.ledger import AUDIT_ENTITIES

    if entity is not None and entity not in AUDIT_ENTITIES:
        raise typer.BadParameter(f"one of {', '.join(AUDIT_ENTITIES)}", param_hint="--entity")

    async def main() -> list[dict[str, Any]]:
        async with _context(config) as ctx:
            entries = await ctx.ledger.audit_log(entity=entity, entity_id=entity_id)
            return [e.to_dict() for e in entries]

    _print_json(_run(main))
