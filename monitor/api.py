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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
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


@dataclass(slots=True)
class ApiDeps:
    """What the API reads and writes through (app.py builds one)."""

    ctx: SlaContext
    token: str | None  # the write token (it also reads); None: writes are refused (403)
    live_state: LiveState | None = None  # trunk name → "up"/"down"/"unknown"
    clock: Clock = SYSTEM_CLOCK
    read_token: str | None = None  # reads: outages, reports, audit
    open_reads: bool = False  # the operator said reads need no token

    @classmethod
    def from_config(
        cls,
        ctx: SlaContext,
        http: HttpSettings,
        sla: ContractsSettings,
        *,
        live_state: LiveState,
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


_BODIES: Final = (
    ManualOutageIn, WithdrawIn, ExclusionIn, RevokeIn, TicketCorrectionIn, MaintenanceIn,
    MaintenancePatch, Error,
)  # fmt: skip


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


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in allowed:
        raise _Problem(400, "bad_query", f"{name} must be one of: {', '.join(allowed)}")
    return value


def _month(request: web.Request, service: str | None = None) -> str:
    value = request.query.get("month")
    if value is None:
        ctx = _deps(request).ctx
        now = utc_now(_deps(request).clock)
        if service is not None:
            return ctx.current_month(service, now).label
        return now.strftime("%Y-%m")
    if not _MONTH_RE.match(value):
        raise _Problem(400, "bad_query", "month must look like 2026-10")
    return value


def _service_param(request: web.Request) -> str:
    name = request.match_info["service"]
    if not _NAME_RE.match(name):
        raise _Problem(400, "bad_path", "service name is not valid")
    _deps(request).ctx.service(name)  # 404 when unknown
    return name


def _instant(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise _Problem(400, "bad_query", f"{name} must be an ISO 8601 instant") from None
    if instant.tzinfo is None:
        raise _Problem(400, "bad_query", f"{name} must carry a UTC offset")
    return instant


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
    lang = _choice(request, "lang", LANGS, "es")
    month = _month(request, name)
    deps = _deps(request)
    report = await make_report(deps.ctx, name, month, utc_now(deps.clock), lang=lang)
    return web.json_response(report_dict(report))


async def service_report(request: web.Request) -> web.Response:
    name = _service_param(request)
    lang = _choice(request, "lang", LANGS, "es")
    fmt = _choice(request, "format", tuple(FORMATS), "pdf")
    month = _month(request, name)
    deps = _deps(request)
    report = await make_report(deps.ctx, name, month, utc_now(deps.clock), lang=lang)
    body = await asyncio.to_thread(render, report, fmt)
    _, media, ext = FORMATS[fmt]
    return web.Response(
        body=body,
        headers={
            "Content-Type": media,
            "Content-Disposition": f'attachment; filename="sla-{name}-{month}-{lang}.{ext}"',
        },
    )


async def list_outages(request: web.Request) -> web.Response:
    deps = _deps(request)
    service = request.query.get("service")
    names = deps.ctx.settings.covered_services()
    if service is not None:
        if not _NAME_RE.match(service):
            raise _Problem(400, "bad_query", "service name is not valid")
        deps.ctx.service(service)
        names = [service]
    kind = request.query.get("kind")
    if kind is not None and kind not in {k.value for k in OutageKind}:
        raise _Problem(400, "bad_query", "kind must be outage or degradation")
    source = request.query.get("source")
    if source is not None and source not in ("monitor", "manual"):
        raise _Problem(400, "bad_query", "source must be monitor or manual")
    out: list[dict[str, Any]] = []
    for name in names:
        month = _month(request, name)
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
    service = request.query.get("service")
    if service is not None and not _NAME_RE.match(service):
        raise _Problem(400, "bad_query", "service name is not valid")
    records = await _deps(request).ctx.ledger.exclusions(service=service)
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
    include = _choice(request, "include_cancelled", ("true", "false"), "true") == "true"
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
    reason, by = request.query.get("reason", ""), request.query.get("by", "")
    if not reason.strip() or not by.strip() or len(reason) > MAX_TEXT or len(by) > 200:
        raise _Problem(400, "bad_query", "reason and by are required query parameters")
    window = await commands.cancel_window(
        deps.ctx, request.match_info["window_id"], reason=reason, by=by, at=utc_now(deps.clock)
    )
    return web.json_response(window.to_dict())


async def import_ics(request: web.Request) -> web.Response:
    _require_token(request)
    deps = _deps(request)
    by = request.query.get("by", "")
    if not by.strip() or len(by) > 200:
        raise _Problem(400, "bad_query", "by is a required query parameter")
    services = [s for s in request.query.get("services", ALL_SERVICES).split(",") if s]
    origin = _choice(request, "origin", tuple(o.value for o in Origin), "carrier")
    result = await commands.import_ics(
        deps.ctx, await request.read(), services=services, origin=origin,
        tz=request.query.get("tz", "UTC"), by=by, at=utc_now(deps.clock),
    )  # fmt: skip
    return web.json_response(result.to_dict())


async def list_tickets(request: web.Request) -> web.Response:
    tickets = await _deps(request).ctx.all_tickets()
    return web.json_response([t.to_dict() for t in tickets])


async def get_audit(request: web.Request) -> web.Response:
    entity = request.query.get("entity")
    if entity is not None and entity not in AUDIT_ENTITIES:
        raise _Problem(400, "bad_query", "unknown entity")
    entries = await _deps(request).ctx.ledger.audit_log(
        entity=entity, entity_id=request.query.get("entity_id")
    )
    return web.json_response([e.to_dict() for e in entries])


async def get_evidence(request: web.Request) -> web.Response:
    deps = _deps(request)
    month = _month(request)
    pdf = _choice(request, "pdf", ("true", "false"), "true") == "true"
    lang = _choice(request, "lang", LANGS, "es")
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


def make_api_app(deps: ApiDeps) -> web.Application:
    """The /api/v1 sub-application."""
    app = web.Application(middlewares=[_errors, _reads], client_max_size=MAX_BODY_BYTES)
    app[DEPS] = deps
    r = app.router
    r.add_get("/openapi.json", get_openapi)
    r.add_get("/services", list_services)
    r.add_get("/services/{service}", get_service)
    r.add_get("/services/{service}/sla", service_sla)
    r.add_get("/services/{service}/report", service_report)
    r.add_get("/outages", list_outages)
    r.add_post("/outages", create_manual_outage)
    r.add_post("/outages/{outage_id}/withdraw", withdraw_manual_outage)
    r.add_post("/outages/{outage_id}/exclusions", create_exclusion)
    r.add_post("/outages/{outage_id}/ticket-corrections", correct_ticket)
    r.add_get("/exclusions", list_exclusions)
    r.add_post("/exclusions/{exclusion_id}/revoke", revoke_exclusion)
    r.add_get("/maintenance", list_windows)
    r.add_post("/maintenance", create_window)
    r.add_post("/maintenance/import", import_ics)
    r.add_get("/maintenance/{window_id}", get_window)
    r.add_patch("/maintenance/{window_id}", patch_window)
    r.add_delete("/maintenance/{window_id}", cancel_window)
    r.add_get("/tickets", list_tickets)
    r.add_get("/audit", get_audit)
    r.add_get("/evidence", get_evidence)
    return app


# ---- OpenAPI 3.1 --------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
_OBJ: Final = {"type": "object"}
_LIST: Final = {"type": "array", "items": {"type": "object"}}


def _q(
    name: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}  # fmt: skip


def _p(name: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "schema": schema}


_MONTH_Q: Final = _q("month", {"type": "string", "pattern": _MONTH}, "YYYY-MM (contract zone)")
_LANG_Q: Final = _q("lang", {"type": "string", "enum": list(LANGS)}, "report language")


def _write(body: str, summary: str, status: str = "201") -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
        "responses": {status: _json(_OBJ), **_WRITE_ERRORS},
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API (JSON Schema 2020-12 component schemas)."""
    _, schemas = models_json_schema(
        [(m, "validation") for m in _BODIES], ref_template="#/components/schemas/{model}"
    )
    components = dict(schemas.get("$defs", {}))
    service = _p("service", _NAME)
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
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/services": {"get": {"summary": "Services with a contract and their live state",
                                  "responses": {"200": _json(_LIST)}}},
            "/services/{service}": {"get": {"summary": "One service", "parameters": [service],
                                            "responses": {"200": _json(_OBJ), **_ERRORS}}},
            "/services/{service}/sla": {"get": {
                "summary": "SLA report data for a month (schema trunkwatch-sla-report/1)",
                "parameters": [service, _MONTH_Q, _LANG_Q],
                "responses": {"200": _json(_OBJ), **_ERRORS}}},
            "/services/{service}/report": {"get": {
                "summary": "The rendered report",
                "parameters": [service, _MONTH_Q, _LANG_Q,
                               _q("format", {"type": "string", "enum": list(FORMATS)}, "format")],
                "responses": {"200": {"description": "the report file"}, **_ERRORS}}},
            "/outages": {
                "get": {
                    "summary": "Outages and degradations of a month, with minutes counted",
                    "parameters": [
                        _q("service", {"type": "string", "pattern": _NAME}, "one service"),
                        _MONTH_Q,
                        _q("kind", {"type": "string", "enum": ["outage", "degradation"]}, "kind"),
                        _q("source", {"type": "string", "enum": ["monitor", "manual"]}, "source"),
                    ],
                    "responses": {"200": _json(_LIST), **_ERRORS}},
                "post": _write("ManualOutageIn", "Record an outage the monitor did not see"),
            },
            "/outages/{outage_id}/withdraw": {"post": {
                **_write("WithdrawIn", "Withdraw a manual outage (kept, marked withdrawn)", "200"),
                "parameters": [_p("outage_id")]}},
            "/outages/{outage_id}/exclusions": {"post": {
                **_write("ExclusionIn", "Classify the outage as excluded"),
                "parameters": [_p("outage_id")]}},
            "/outages/{outage_id}/ticket-corrections": {"post": {
                **_write("TicketCorrectionIn", "Correct the ticket opening time"),
                "parameters": [_p("outage_id")]}},
            "/exclusions": {"get": {
                "summary": "Every exclusion, revoked ones included",
                "parameters": [_q("service", {"type": "string", "pattern": _NAME}, "service")],
                "responses": {"200": _json(_LIST), **_ERRORS}}},
            "/exclusions/{exclusion_id}/revoke": {"post": {
                **_write("RevokeIn", "Revoke an exclusion (kept, marked revoked)", "200"),
                "parameters": [_p("exclusion_id")]}},
            "/maintenance": {
                "get": {"summary": "Maintenance windows",
                        "parameters": [_q("include_cancelled",
                                          {"type": "string", "enum": ["true", "false"]},
                                          "include cancelled windows")],
                        "responses": {"200": _json(_LIST), **_ERRORS}},
                "post": _write("MaintenanceIn", "Create a one-off or recurring window"),
            },
            "/maintenance/import": {"post": {
                "summary": "Import an iCalendar (.ics) file of maintenance notices",
                "security": [{"bearer": []}],
                "parameters": [
                    _q("by", {"type": "string", "minLength": 1, "maxLength": 200}, "actor", True),
                    _q("services", {"type": "string"}, "comma-separated names, or *"),
                    _q("origin", {"type": "string", "enum": [o.value for o in Origin]}, "origin"),
                    _q("tz", {"type": "string"}, "zone for floating and all-day times"),
                ],
                "requestBody": {"required": True, "content": {
                    "text/calendar": {"schema": {"type": "string"}}}},
                "responses": {"200": _json(_OBJ), **_WRITE_ERRORS}}},
            "/maintenance/{window_id}": {
                "get": {"summary": "One window", "parameters": [_p("window_id")],
                        "responses": {"200": _json(_OBJ), **_ERRORS}},
                "patch": {**_write("MaintenancePatch", "Change a window (audited)", "200"),
                          "parameters": [_p("window_id")]},
                "delete": {
                    "summary": "Cancel a window (kept, marked cancelled)",
                    "security": [{"bearer": []}],
                    "parameters": [
                        _p("window_id"),
                        _q("reason", {"type": "string", "minLength": 1}, "why", True),
                        _q("by", {"type": "string", "minLength": 1}, "actor", True),
                    ],
                    "responses": {"200": _json(_OBJ), **_WRITE_ERRORS}},
            },
            "/tickets": {"get": {"summary": "Carrier tickets (read-only)",
                                 "responses": {"200": _json(_LIST)}}},
            "/audit": {"get": {
                "summary": "The audit log of every ledger change",
                "parameters": [
                    _q("entity", {"type": "string", "enum": ["exclusion", "manual_outage",
                                                             "ticket_correction", "maintenance"]},
                       "entity"),
                    _q("entity_id", {"type": "string"}, "entity id"),
                ],
                "responses": {"200": _json(_LIST), **_ERRORS}}},
            "/evidence": {"get": {
                "summary": "A signed evidence bundle for a month (zip)",
                "parameters": [_MONTH_Q, _LANG_Q,
                               _q("pdf", {"type": "string", "enum": ["true", "false"]},
                                  "include PDF reports")],
                "responses": {"200": {"description": "zip of the bundle",
                                      "content": {"application/zip": {}}}, **_ERRORS}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": _json(_OBJ)}}},
        },
    }  # fmt: skip
