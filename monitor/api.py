"""The operator HTTP API under /api/v1, described by the OpenAPI 3.1 document it serves.

``make_api_app(deps)`` returns an aiohttp sub-application; mount it with
``app.add_subapp("/api/v1", make_api_app(deps))``. Reads are open (like /metrics, bind the
listener accordingly); writes need ``Authorization: Bearer <token>`` (``sla.api_token_env``).
Every input is validated; errors are JSON ``{"error": code, "message": text, "detail": [...]}``
with a 4xx status. Nothing is deleted: DELETE on a window cancels it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar, cast

from aiohttp import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import models_json_schema

from monitor.log import get_logger
from monitor.sla import ExclusionKind, OutageKind, commands
from monitor.sla.evidence import EvidenceError, export_bundle, zip_bundle
from monitor.sla.intervals import SlaInputError
from monitor.sla.ledger import (
    AUDIT_ENTITIES,
    LedgerConflict,
    LedgerError,
    LedgerNotFound,
)
from monitor.sla.maintenance import (
    ALL_SERVICES,
    MaintenanceError,
    Origin,
)
from monitor.sla.reports import FORMATS, ReportsExtraMissing, make_report, render, report_dict
from monitor.sla.reports.i18n import LANGS
from monitor.sla.service import SlaContext, UnknownService
from probes.clock import SYSTEM_CLOCK, Clock, utc_now

if TYPE_CHECKING:
    from monitor.config import HttpSettings
    from monitor.reload import ReloadReport
    from monitor.sla.contracts import ContractsSettings

__all__ = ["API_VERSION", "ApiDeps", "make_api_app", "openapi_document"]

log = get_logger("trunkwatch.api")

API_VERSION: Final = "1.0.0"
MAX_BODY_BYTES: Final = 2 * 1024 * 1024  # the largest body is an .ics import (MAX_ICS_BYTES)
MAX_TEXT: Final = 2000  # matches the ledger's limit on reasons and references
_MONTH = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_MONTH_RE: Final = re.compile(_MONTH)
_NAME_RE: Final = re.compile(_NAME)

LiveState = Callable[[], Mapping[str, str]]
Reload = Callable[[], Awaitable["ReloadReport"]]


@dataclass(slots=True)
class ApiDeps:
    """What the API reads and writes through (app.py builds one)."""

    ctx: SlaContext
    token: str | None  # the write token (it also reads); None: writes are refused (403)
    live_state: LiveState | None = None  # trunk name → "up"/"down"/"unknown"
    clock: Clock = SYSTEM_CLOCK
    read_token: str | None = None  # reads: outages, reports, audit
    open_reads: bool = False  # the operator said reads need no token
    reload: Reload | None = None  # the daemon's config reload (None: not a daemon)

    @classmethod
    def from_config(
        cls,
        ctx: SlaContext,
        http: HttpSettings,
        sla: ContractsSettings,
        *,
        live_state: LiveState,
        reload: Reload | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> ApiDeps:
        """The API's tokens from the environment variables the config names."""
        write = env.get(http.write_token_env) if http.write_token_env else None
        return cls(
            ctx,
            write or sla.api_token(env),  # sla.api_token_env: the older name
            live_state=live_state,
            read_token=env.get(http.read_token_env) if http.read_token_env else None,
            open_reads=http.open_reads,
            reload=reload,
        )


DEPS: Final = web.AppKey("trunkwatch_api_deps", ApiDeps)


# ---- request bodies -----------------------------------------------------------------------

_BODY = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
Actor = Annotated[str, Field(min_length=1, max_length=200, description="who makes the change")]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
Reference = Annotated[str, Field(max_length=MAX_TEXT)]
ServiceName = Annotated[str, Field(pattern=_NAME)]


class ManualOutageIn(BaseModel):
    """An outage the monitor did not see, with evidence the carrier can check."""

    model_config = _BODY
    service: ServiceName
    kind: OutageKind = OutageKind.OUTAGE
    first_failure_at: AwareDatetime
    restored_at: AwareDatetime | None = None
    ticket_opened_at: AwareDatetime | None = None
    carrier_ticket: Reference = ""
    evidence_ref: Reason
    note: Reference = ""
    by: Actor
    trunk: ServiceName | None = None  # one part of the service; None: all of it


class WithdrawIn(BaseModel):
    model_config = _BODY
    reason: Reason
    by: Actor


class ExclusionIn(BaseModel):
    """Classify a whole outage of a service as not counted (typed, audited, revocable)."""

    model_config = _BODY
    service: ServiceName
    kind: ExclusionKind
    reason: Reason
    reference: Reference = ""
    by: Actor


class RevokeIn(BaseModel):
    model_config = _BODY
    reason: Reason
    by: Actor


class TicketCorrectionIn(BaseModel):
    """The true ticket opening time of an outage (e.g. from the carrier's own log)."""

    model_config = _BODY
    value: AwareDatetime
    previous: AwareDatetime | None = None
    reason: Reason
    reference: Reference = ""
    by: Actor


class MaintenanceIn(BaseModel):
    """A one-off or recurring (RFC 5545 RRULE) maintenance window."""

    model_config = _BODY
    title: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    services: Annotated[list[Annotated[str, Field(pattern=rf"{_NAME}|^\*$")]], Field(min_length=1)]
    origin: Origin = Origin.CARRIER
    start: AwareDatetime
    end: AwareDatetime
    tz: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    rrule: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    exdates: list[AwareDatetime] = Field(default_factory=list, max_length=1000)
    notice_ref: Reference = ""
    by: Actor


class MaintenancePatch(BaseModel):
    """Fields to change on a window; absent fields keep their value."""

    model_config = _BODY
    title: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] | None = None
    services: (
        Annotated[list[Annotated[str, Field(pattern=rf"{_NAME}|^\*$")]], Field(min_length=1)] | None
    ) = None
    origin: Origin | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    tz: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    rrule: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    exdates: list[AwareDatetime] | None = Field(default=None, max_length=1000)
    notice_ref: Reference | None = None
    by: Actor


class Error(BaseModel):
    error: str
    message: str
    detail: list[dict[str, Any]] = Field(default_factory=list)


# ---- query parameters ---------------------------------------------------------------------


def _one_of(default: str | None, values: Iterable[str], description: str) -> Any:
    """A string field limited to `values` (checked by _Query, listed as the schema's enum)."""
    return Field(default, description=description, json_schema_extra={"enum": list(values)})


class _Query(BaseModel):
    """Query parameters: one model per route, validated and documented from the same fields."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="after")
    def _enums(self) -> _Query:
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra
            value = getattr(self, name)
            if isinstance(extra, dict) and value is not None:
                allowed = cast(list[str], extra["enum"])
                if value not in allowed:
                    raise ValueError(f"{name} must be one of: {', '.join(allowed)}")
        return self


Month = Annotated[str | None, Field(pattern=_MONTH, description="YYYY-MM (contract zone)")]
Service = Annotated[str | None, Field(pattern=_NAME, description="one service")]
Flag = Literal["true", "false"]
_Q = TypeVar("_Q", bound=_Query)


class ReportQuery(_Query):
    month: Month = None
    lang: str = _one_of("es", LANGS, "report language")


class RenderQuery(ReportQuery):
    format: str = _one_of("pdf", FORMATS, "file format")


class OutagesQuery(_Query):
    service: Service = None
    month: Month = None
    kind: OutageKind | None = Field(None, description="outage or degradation")
    source: Literal["monitor", "manual"] | None = Field(None, description="who recorded it")


class ExclusionsQuery(_Query):
    service: Service = None


class WindowsQuery(_Query):
    include_cancelled: Flag = Field("true", description="include cancelled windows")


class ImportQuery(_Query):
    by: Actor
    services: str = Field(ALL_SERVICES, description="comma-separated names, or *")
    origin: Origin = Field(Origin.CARRIER, description="who announced the maintenance")
    tz: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        "UTC", description="zone for floating and all-day times"
    )


class CancelQuery(_Query):
    reason: Reason
    by: Actor


class AuditQuery(_Query):
    entity: str | None = _one_of(None, AUDIT_ENTITIES, "entity")
    entity_id: str | None = Field(None, max_length=200, description="entity id")


class EvidenceQuery(ReportQuery):
    pdf: Flag = Field("true", description="include PDF reports")


# ---- errors -------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, detail: list[Any] | None = None) -> web.Response:
    return web.json_response(
        {"error": code, "message": message, "detail": detail or []}, status=status
    )


class _Problem(Exception):
    def __init__(self, status: int, code: str, message: str, detail: list[Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Problem as p:
        return _error(p.status, p.code, p.message, p.detail)
    except ValidationError as exc:
        detail = [
            {"loc": [str(x) for x in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return _error(400, "validation", "the request body is not valid", detail)
    except UnknownService as exc:
        return _error(404, "not_found", str(exc.args[0]))
    except LedgerNotFound as exc:
        return _error(404, "not_found", str(exc))
    except LedgerConflict as exc:
        return _error(409, "conflict", str(exc))
    except (LedgerError, SlaInputError, MaintenanceError, EvidenceError) as exc:
        return _error(422, "invalid", str(exc))
    except ReportsExtraMissing as exc:
        return _error(501, "not_installed", str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception as exc:
        log.error("api_internal_error", path=request.path, error=repr(exc)[:300])
        return _error(500, "internal", "internal error (logged)")


def _deps(request: web.Request) -> ApiDeps:
    return request.app[DEPS]


def _bearer(request: web.Request) -> bytes | None:
    """The bearer token sent, as bytes (any header, however malformed: never a 500)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip().encode("utf-8", "surrogateescape")


def _matches(given: bytes | None, token: str | None) -> bool:
    return (
        given is not None
        and token is not None
        and hmac.compare_digest(given, token.encode("utf-8", "surrogateescape"))
    )


def _require_token(request: web.Request) -> None:
    token = _deps(request).token
    if token is None:
        raise _Problem(403, "writes_disabled", "API writes are disabled: set http.write_token_env")
    given = _bearer(request)
    if given is None:
        raise _Problem(401, "unauthorized", "writes need Authorization: Bearer <token>")
    if not _matches(given, token):
        raise _Problem(401, "unauthorized", "the bearer token is not valid")


@web.middleware
async def _reads(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Reads need the read or the write token, unless the operator opened them."""
    deps = _deps(request)
    if request.method in ("GET", "HEAD") and not deps.open_reads:
        if not request.path.endswith("/openapi.json"):
            given = _bearer(request)
            if not (_matches(given, deps.read_token) or _matches(given, deps.token)):
                return _error(401, "unauthorized", "reads need Authorization: Bearer <token>")
    return await handler(request)


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    _require_token(request)
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Problem(400, "bad_json", "the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise _Problem(400, "bad_json", "the request body must be a JSON object")
    return model.model_validate(data)


def _query(request: web.Request, model: type[_Q]) -> _Q:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        detail = [
            {"loc": [str(x) for x in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise _Problem(400, "bad_query", "the query parameters are not valid", detail) from None


def _month(request: web.Request, month: str | None, service: str | None = None) -> str:
    """The month asked for, or the current one (in the service's contract zone)."""
    if month is not None:
        return month
    deps = _deps(request)
    now = utc_now(deps.clock)
    if service is not None:
        return deps.ctx.current_month(service, now).label
    return now.strftime("%Y-%m")


def _service_param(request: web.Request) -> str:
    name = request.match_info["service"]
    if not _NAME_RE.match(name):
        raise _Problem(400, "bad_path", "service name is not valid")
    _deps(request).ctx.service(name)  # 404 when unknown
    return name


# ---- handlers -----------------------------------------------------------------------------


def _service_view(deps: ApiDeps, name: str) -> dict[str, Any]:
    service, contract = deps.ctx.service(name)
    live = deps.live_state() if deps.live_state is not None else {}
    trunks = {part: live.get(part, "unknown") for part in service.parts}
    down = [s == "down" for s in trunks.values()]
    if trunks and all(s == "up" for s in trunks.values()):
        state = "up"
    elif (all(down) if service.rule.value == "all" else any(down)) and down:
        state = "down"
    elif any(down):
        state = "degraded"
    else:
        state = "unknown"
    return {
        "name": name,
        "rule": service.rule.value,
        "parts": list(service.parts),
        "contract": contract.name,
        "carrier": contract.carrier,
        "target_pct": f"{contract.target_pct:f}",
        "state": state,
        "trunks": trunks,
    }


async def list_services(request: web.Request) -> web.Response:
    deps = _deps(request)
    return web.json_response([_service_view(deps, n) for n in deps.ctx.settings.covered_services()])


async def get_service(request: web.Request) -> web.Response:
    return web.json_response(_service_view(_deps(request), _service_param(request)))


async def service_sla(request: web.Request) -> web.Response:
    name = _service_param(request)
    q = _query(request, ReportQuery)
    month = _month(request, q.month, name)
    deps = _deps(request)
    report = await make_report(deps.ctx, name, month, utc_now(deps.clock), lang=q.lang)
    return web.json_response(report_dict(report))


async def service_report(request: web.Request) -> web.Response:
    name = _service_param(request)
    q = _query(request, RenderQuery)
    lang = q.lang
    month = _month(request, q.month, name)
    deps = _deps(request)
    report = await make_report(deps.ctx, name, month, utc_now(deps.clock), lang=lang)
    body = await asyncio.to_thread(render, report, q.format)
    _, media, ext = FORMATS[q.format]
    return web.Response(
        body=body,
        headers={
            "Content-Type": media,
            "Content-Disposition": f'attachment; filename="sla-{name}-{month}-{lang}.{ext}"',
        },
    )


async def list_outages(request: web.Request) -> web.Response:
    deps = _deps(request)
    q = _query(request, OutagesQuery)
    names = deps.ctx.settings.covered_services()
    if q.service is not None:
        deps.ctx.service(q.service)  # 404 when unknown
        names = [q.service]
    kind = None if q.kind is None else q.kind.value
    source = q.source
    out: list[dict[str, Any]] = []
    for name in names:
        month = _month(request, q.month, name)
        report = await make_report(deps.ctx, name, month, utc_now(deps.clock), lang="en")
        for o in report_dict(report)["outages"]:
            if (kind is None or o["kind"] == kind) and (source is None or o["source"] == source):
                out.append({"service": name, "period": month, **o})
    return web.json_response(out)


async def create_manual_outage(request: web.Request) -> web.Response:
    body: ManualOutageIn = await _body(request, ManualOutageIn)
    deps = _deps(request)
    record = await commands.add_manual_outage(
        deps.ctx, service=body.service, trunk=body.trunk, kind=body.kind,
        first_failure_at=body.first_failure_at, restored_at=body.restored_at,
        ticket_opened_at=body.ticket_opened_at, carrier_ticket=body.carrier_ticket,
        evidence_ref=body.evidence_ref, note=body.note, by=body.by, at=utc_now(deps.clock),
    )  # fmt: skip
    return web.json_response(record.to_dict(), status=201)


async def withdraw_manual_outage(request: web.Request) -> web.Response:
    body: WithdrawIn = await _body(request, WithdrawIn)
    deps = _deps(request)
    record = await commands.withdraw_manual_outage(
        deps.ctx,
        request.match_info["outage_id"],
        reason=body.reason,
        by=body.by,
        at=utc_now(deps.clock),
    )
    return web.json_response(record.to_dict())


async def create_exclusion(request: web.Request) -> web.Response:
    body: ExclusionIn = await _body(request, ExclusionIn)
    deps = _deps(request)
    record = await commands.add_exclusion(
        deps.ctx, outage_id=request.match_info["outage_id"], service=body.service,
        kind=body.kind, reason=body.reason, reference=body.reference, by=body.by,
        at=utc_now(deps.clock),
    )  # fmt: skip
    return web.json_response(record.to_dict(), status=201)


async def list_exclusions(request: web.Request) -> web.Response:
    q = _query(request, ExclusionsQuery)
    records = await _deps(request).ctx.ledger.exclusions(service=q.service)
    return web.json_response([r.to_dict() for r in records])


async def revoke_exclusion(request: web.Request) -> web.Response:
    body: RevokeIn = await _body(request, RevokeIn)
    deps = _deps(request)
    record = await commands.revoke_exclusion(
        deps.ctx, request.match_info["exclusion_id"], reason=body.reason, by=body.by,
        at=utc_now(deps.clock),
    )  # fmt: skip
    return web.json_response(record.to_dict())


async def correct_ticket(request: web.Request) -> web.Response:
    body: TicketCorrectionIn = await _body(request, TicketCorrectionIn)
    deps = _deps(request)
    record = await commands.correct_ticket(
        deps.ctx, outage_id=request.match_info["outage_id"], value=body.value,
        previous=body.previous, reason=body.reason, reference=body.reference, by=body.by,
        at=utc_now(deps.clock),
    )  # fmt: skip
    return web.json_response(record.to_dict(), status=201)


async def list_windows(request: web.Request) -> web.Response:
    include = _query(request, WindowsQuery).include_cancelled == "true"
    windows = await _deps(request).ctx.ledger.windows(include_cancelled=include)
    return web.json_response([w.to_dict() for w in windows])


async def create_window(request: web.Request) -> web.Response:
    body: MaintenanceIn = await _body(request, MaintenanceIn)
    deps = _deps(request)
    stored = await commands.add_window(
        deps.ctx, title=body.title, services=body.services, origin=body.origin,
        start=body.start, end=body.end, tz=body.tz, rrule=body.rrule, exdates=body.exdates,
        notice_ref=body.notice_ref, by=body.by, at=utc_now(deps.clock),
    )  # fmt: skip
    return web.json_response(stored.to_dict(), status=201)


async def get_window(request: web.Request) -> web.Response:
    window = await _deps(request).ctx.ledger.window(request.match_info["window_id"])
    return web.json_response(window.to_dict())


async def patch_window(request: web.Request) -> web.Response:
    body: MaintenancePatch = await _body(request, MaintenancePatch)
    deps = _deps(request)
    changes = body.model_dump(exclude_unset=True, exclude={"by"})
    if changes.get("exdates") is not None:
        changes["exdates"] = tuple(changes["exdates"])
    for required in ("title", "services", "origin", "start", "end", "tz", "exdates"):
        if required in changes and changes[required] is None:
            raise _Problem(400, "validation", f"{required} cannot be null")
    if "notice_ref" in changes and changes["notice_ref"] is None:
        changes["notice_ref"] = ""
    window = await commands.update_window(
        deps.ctx, request.match_info["window_id"], changes, by=body.by, at=utc_now(deps.clock)
    )
    return web.json_response(window.to_dict())


async def cancel_window(request: web.Request) -> web.Response:
    _require_token(request)
    deps = _deps(request)
    q = _query(request, CancelQuery)
    window = await commands.cancel_window(
        deps.ctx, request.match_info["window_id"], reason=q.reason, by=q.by, at=utc_now(deps.clock)
    )
    return web.json_response(window.to_dict())


async def import_ics(request: web.Request) -> web.Response:
    _require_token(request)
    deps = _deps(request)
    q = _query(request, ImportQuery)
    services = [s for s in q.services.split(",") if s]
    result = await commands.import_ics(
        deps.ctx, await request.read(), services=services, origin=q.origin.value,
        tz=q.tz, by=q.by, at=utc_now(deps.clock),
    )  # fmt: skip
    return web.json_response(result.to_dict())


async def post_reload(request: web.Request) -> web.Response:
    _require_token(request)
    deps = _deps(request)
    if deps.reload is None:
        raise _Problem(404, "no_daemon", "reload needs a running monitor (trunkwatch run)")
    report = await deps.reload()
    if not report.ok:
        message = "the config file is not valid: the running config stays"
        problems = (report.error or "").splitlines()  # each names file, line and field
        raise _Problem(422, "config_invalid", message, problems)
    return web.json_response(report.to_dict())


async def list_tickets(request: web.Request) -> web.Response:
    tickets = await _deps(request).ctx.all_tickets()
    return web.json_response([t.to_dict() for t in tickets])


async def get_audit(request: web.Request) -> web.Response:
    q = _query(request, AuditQuery)
    entries = await _deps(request).ctx.ledger.audit_log(entity=q.entity, entity_id=q.entity_id)
    return web.json_response([e.to_dict() for e in entries])


async def get_evidence(request: web.Request) -> web.Response:
    deps = _deps(request)
    q = _query(request, EvidenceQuery)
    month = _month(request, q.month)
    pdf, lang = q.pdf == "true", q.lang
    with tempfile.TemporaryDirectory(prefix="trunkwatch-evidence-") as tmp:
        bundle = await export_bundle(
            deps.ctx, month, Path(tmp) / "bundle", utc_now(deps.clock),
            key_path=deps.ctx.settings.signing_key_file, lang=lang, include_pdf=pdf,
        )  # fmt: skip
        data = await asyncio.to_thread(zip_bundle, bundle)
    return web.Response(
        body=data,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="trunkwatch-evidence-{month}.zip"',
        },
    )


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


# ---- routes: what is served and what the OpenAPI document says, from one table ------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OBJ: Final = {"type": "object"}
_LIST: Final = {"type": "array", "items": {"type": "object"}}


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: its handler, and the models it validates its input with."""

    method: str
    path: str
    handler: Handler
    summary: str
    query: type[_Query] | None = None
    body: type[BaseModel] | None = None  # a JSON body: a write
    write: bool = False  # a write without a JSON body (query or raw body)
    status: int = 200
    returns: Mapping[str, Any] = field(default_factory=lambda: _json(_OBJ))
    raw_body: str | None = None  # the media type of a non-JSON body


def _json(schema: Mapping[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_FILE: Final = {"description": "the report file"}
_ZIP: Final = {"description": "zip of the bundle", "content": {"application/zip": {}}}

ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/openapi.json", get_openapi, "This document"),
    Route("GET", "/services", list_services, "Services with a contract and their live state",
          returns=_json(_LIST)),
    Route("GET", "/services/{service}", get_service, "One service"),
    Route("GET", "/services/{service}/sla", service_sla,
          "SLA report data for a month (schema trunkwatch-sla-report/1)", query=ReportQuery),
    Route("GET", "/services/{service}/report", service_report, "The rendered report",
          query=RenderQuery, returns=_FILE),
    Route("GET", "/outages", list_outages,
          "Outages and degradations of a month, with minutes counted", query=OutagesQuery,
          returns=_json(_LIST)),
    Route("POST", "/outages", create_manual_outage, "Record an outage the monitor did not see",
          body=ManualOutageIn, status=201),
    Route("POST", "/outages/{outage_id}/withdraw", withdraw_manual_outage,
          "Withdraw a manual outage (kept, marked withdrawn)", body=WithdrawIn),
    Route("POST", "/outages/{outage_id}/exclusions", create_exclusion,
          "Classify the outage as excluded", body=ExclusionIn, status=201),
    Route("POST", "/outages/{outage_id}/ticket-corrections", correct_ticket,
          "Correct the ticket opening time", body=TicketCorrectionIn, status=201),
    Route("GET", "/exclusions", list_exclusions, "Every exclusion, revoked ones included",
          query=ExclusionsQuery, returns=_json(_LIST)),
    Route("POST", "/exclusions/{exclusion_id}/revoke", revoke_exclusion,
          "Revoke an exclusion (kept, marked revoked)", body=RevokeIn),
    Route("GET", "/maintenance", list_windows, "Maintenance windows", query=WindowsQuery,
          returns=_json(_LIST)),
    Route("POST", "/maintenance", create_window, "Create a one-off or recurring window",
          body=MaintenanceIn, status=201),
    Route("POST", "/maintenance/import", import_ics,
          "Import an iCalendar (.ics) file of maintenance notices", query=ImportQuery,
          write=True, raw_body="text/calendar"),
    Route("GET", "/maintenance/{window_id}", get_window, "One window"),
    Route("PATCH", "/maintenance/{window_id}", patch_window, "Change a window (audited)",
          body=MaintenancePatch),
    Route("DELETE", "/maintenance/{window_id}", cancel_window,
          "Cancel a window (kept, marked cancelled)", query=CancelQuery, write=True),
    Route("GET", "/tickets", list_tickets, "Carrier tickets (read-only)", returns=_json(_LIST)),
    Route("GET", "/audit", get_audit, "The audit log of every ledger change", query=AuditQuery,
          returns=_json(_LIST)),
    Route("POST", "/reload", post_reload,
          "Apply the config file again: trunks added, removed and changed without a restart",
          write=True),
    Route("GET", "/evidence", get_evidence, "A signed evidence bundle for a month (zip)",
          query=EvidenceQuery, returns=_ZIP),
)  # fmt: skip


def make_api_app(deps: ApiDeps) -> web.Application:
    """The /api/v1 sub-application."""
    app = web.Application(middlewares=[_errors, _reads], client_max_size=MAX_BODY_BYTES)
    app[DEPS] = deps
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app


# ---- OpenAPI 3.1, generated from ROUTES and their models ----------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERRORS: Final = {
    "400": _json(_ref("Error"), "invalid input"),
    "404": _json(_ref("Error"), "not found"),
    "422": _json(_ref("Error"), "valid JSON, but the change cannot be made"),
}
_WRITE_ERRORS: Final = {
    **_ERRORS,
    "401": _json(_ref("Error"), "missing or wrong bearer token"),
    "403": _json(_ref("Error"), "writes are disabled"),
    "409": _json(_ref("Error"), "conflicts with the record's state"),
}
_PATH_PARAM: Final = re.compile(r"\{([a-z_]+)\}")


def _path_parameters(path: str) -> list[dict[str, Any]]:
    out = []
    for name in _PATH_PARAM.findall(path):
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}
        if name == "service":
            schema["pattern"] = _NAME
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _query_parameters(model: type[_Query]) -> list[dict[str, Any]]:
    """One parameter per field, its schema from the model's own JSON schema."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.get("$defs", {})
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        # An optional parameter is simply left out: its schema is the non-null branch.
        branches = [b for b in prop.pop("anyOf", ()) if b.get("type") != "null"]
        if branches:
            prop.update(branches[0])
        if "$ref" in prop:  # an enum: inline it, a parameter has no component of its own
            prop.update(defs[prop.pop("$ref").rsplit("/", 1)[1]])
        if prop.get("default") is None:
            prop.pop("default", None)
        description = prop.pop("description", name)
        prop.pop("title", None)
        out.append({"name": name, "in": "query", "required": name in required,
                    "schema": prop, "description": description})  # fmt: skip
    return out


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary}
    parameters = _path_parameters(route.path)
    if route.query is not None:
        parameters += _query_parameters(route.query)
    if parameters:
        op["parameters"] = parameters
    writes = route.body is not None or route.write
    if writes:
        op["security"] = [{"bearer": []}]
    if route.body is not None:
        content = {"application/json": {"schema": _ref(route.body.__name__)}}
        op["requestBody"] = {"required": True, "content": content}
    elif route.raw_body is not None:
        content = {route.raw_body: {"schema": {"type": "string"}}}
        op["requestBody"] = {"required": True, "content": content}
    errors = _WRITE_ERRORS if writes else _ERRORS
    if route.path == "/openapi.json":
        errors = {}
    op["responses"] = {str(route.status): dict(route.returns), **errors}
    return op


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API (JSON Schema 2020-12 component schemas)."""
    models: list[type[BaseModel]] = [r.body for r in ROUTES if r.body is not None]
    models = [*dict.fromkeys(models), Error]
    _, schemas = models_json_schema(
        [(m, "validation") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trunkwatch operator API",
            "version": API_VERSION,
            "description": (
                "Services and live state, outages (manual entries, exclusions, ticket-time "
                "corrections), maintenance windows, tickets, SLA per service and month, and "
                "signed evidence bundles. Writes need a bearer token; nothing is deleted."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": dict(schemas.get("$defs", {})),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": paths,
    }
