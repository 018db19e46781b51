"""The /api/v1 operator API through aiohttp's test client, on the worked example's store."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sla_world import ACTOR, NOW, SERVICE, TRUNK, mx, worked_example

from monitor.api import ROUTES, ApiDeps, make_api_app, openapi_document
from probes.clock import FakeClock
from probes.instants import ns_from_utc

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(
    tmp_path: Path, aiohttp_client: Callable[[web.Application], Awaitable[Client]]
) -> AsyncIterator[Client]:
    store, ctx = await worked_example(tmp_path)
    root = web.Application()
    deps = ApiDeps(
        ctx,
        TOKEN,
        live_state=lambda: {TRUNK: "up"},
        clock=FakeClock(wall=ns_from_utc(NOW)),
        open_reads=True,
    )
    root.add_subapp("/api/v1", make_api_app(deps))
    try:
        yield await aiohttp_client(root)
    finally:
        await store.close()


async def _json(response: Any, status: int) -> Any:
    body = await response.text()
    assert response.status == status, body
    return json.loads(body)


async def test_openapi_document_is_served_and_3_1(client: Client) -> None:
    doc = await _json(await client.get("/api/v1/openapi.json"), 200)
    assert doc["openapi"] == "3.1.0"
    assert doc == json.loads(json.dumps(openapi_document()))
    assert "ManualOutageIn" in doc["components"]["schemas"]


async def test_services_and_sla(client: Client) -> None:
    services = await _json(await client.get("/api/v1/services"), 200)
    assert services == [
        {
            "name": SERVICE,
            "rule": "all",
            "parts": [TRUNK],
            "contract": "carrierx-2026",
            "carrier": "CarrierX",
            "target_pct": "99.5",
            "state": "up",
            "trunks": {TRUNK: "up"},
        }
    ]
    sla = await _json(await client.get(f"/api/v1/services/{SERVICE}/sla?month=2026-10"), 200)
    assert sla["availability"]["pct"] == "99.6528"
    assert sla["unclaimed"]["minutes"] == "2.00"
    await _json(await client.get("/api/v1/services/nope/sla?month=2026-10"), 404)
    bad = await _json(await client.get(f"/api/v1/services/{SERVICE}/sla?month=2026-13"), 400)
    assert bad["error"] == "bad_query"
    report = await client.get(f"/api/v1/services/{SERVICE}/report?month=2026-10&format=csv")
    assert report.status == 200 and "99.6528" in await report.text()


async def test_writes_need_the_token(client: Client) -> None:
    body = {"reason": "x", "by": ACTOR}
    r = await client.post("/api/v1/exclusions/any/revoke", json=body)
    assert (await _json(r, 401))["error"] == "unauthorized"
    r = await client.post(
        "/api/v1/exclusions/any/revoke", json=body, headers={"Authorization": "Bearer wrong"}
    )
    await _json(r, 401)
    r = await client.post("/api/v1/exclusions/any/revoke", json=body, headers=AUTH)
    assert (await _json(r, 404))["error"] == "not_found"


async def test_manual_outage_exclusion_and_revocation(client: Client) -> None:
    manual = {
        "service": SERVICE,
        "first_failure_at": mx(10, 10, 8).isoformat(),
        "restored_at": mx(10, 10, 9).isoformat(),
        "ticket_opened_at": mx(10, 10, 8).isoformat(),
        "evidence_ref": "carrier RFO",
        "by": ACTOR,
    }
    created = await _json(await client.post("/api/v1/outages", json=manual, headers=AUTH), 201)
    outages = await _json(await client.get(f"/api/v1/outages?service={SERVICE}&month=2026-10"), 200)
    assert {o["id"]: o["counted"]["minutes"] for o in outages}[created["id"]] == "60.00"
    exclusion = {"service": SERVICE, "kind": "force_majeure", "reason": "hurricane", "by": ACTOR}
    made = await _json(
        await client.post(
            f"/api/v1/outages/{created['id']}/exclusions", json=exclusion, headers=AUTH
        ),
        201,
    )
    again = await client.post(
        f"/api/v1/outages/{created['id']}/exclusions", json=exclusion, headers=AUTH
    )
    assert (await _json(again, 409))["error"] == "conflict"
    sla = await _json(await client.get(f"/api/v1/services/{SERVICE}/sla?month=2026-10"), 200)
    assert sla["availability"]["tnodisp"]["minutes"] == "150.00"
    revoke = {"reason": "wrong classification", "by": ACTOR}
    await _json(
        await client.post(f"/api/v1/exclusions/{made['id']}/revoke", json=revoke, headers=AUTH),
        200,
    )
    sla = await _json(await client.get(f"/api/v1/services/{SERVICE}/sla?month=2026-10"), 200)
    assert sla["availability"]["tnodisp"]["minutes"] == "210.00"
    audit = await _json(await client.get("/api/v1/audit?entity=exclusion"), 200)
    assert [a["action"] for a in audit][-2:] == ["exclusion.create", "exclusion.revoke"]


async def test_exclusion_validation(client: Client) -> None:
    bad_kind = {"service": SERVICE, "kind": "aliens", "reason": "x", "by": ACTOR}
    r = await _json(
        await client.post("/api/v1/outages/o1/exclusions", json=bad_kind, headers=AUTH), 400
    )
    assert r["error"] == "validation" and r["detail"][0]["loc"] == ["kind"]
    unknown = {"service": SERVICE, "kind": "misuse", "reason": "x", "by": ACTOR}
    await _json(
        await client.post("/api/v1/outages/zzz/exclusions", json=unknown, headers=AUTH), 404
    )
    naive = {
        "service": SERVICE,
        "first_failure_at": "2026-10-10T08:00:00",
        "evidence_ref": "e",
        "by": ACTOR,
    }
    r = await _json(await client.post("/api/v1/outages", json=naive, headers=AUTH), 400)
    assert r["detail"][0]["loc"] == ["first_failure_at"]
    r = await client.post("/api/v1/outages", data=b"{not json", headers=AUTH)
    assert (await _json(r, 400))["error"] == "bad_json"


async def test_maintenance_crud_and_ics_import(client: Client) -> None:
    window = {
        "title": "weekly",
        "services": [SERVICE],
        "start": mx(10, 4, 2).isoformat(),
        "end": mx(10, 4, 3).isoformat(),
        "tz": "America/Mexico_City",
        "rrule": "FREQ=WEEKLY;COUNT=3",
        "notice_ref": "N-1",
        "by": ACTOR,
    }
    made = await _json(await client.post("/api/v1/maintenance", json=window, headers=AUTH), 201)
    patched = await _json(
        await client.patch(
            f"/api/v1/maintenance/{made['id']}",
            json={"title": "weekly v2", "by": ACTOR},
            headers=AUTH,
        ),
        200,
    )
    assert patched["title"] == "weekly v2" and patched["updated_by"] == ACTOR
    bad = dict(window, rrule="FREQ=SOMETIMES")
    r = await _json(await client.post("/api/v1/maintenance", json=bad, headers=AUTH), 422)
    assert "RECUR" in r["message"]
    cancelled = await _json(
        await client.delete(
            f"/api/v1/maintenance/{made['id']}?reason=postponed&by=noc", headers=AUTH
        ),
        200,
    )
    assert cancelled["cancelled_by"] == "noc"
    listed = await _json(await client.get("/api/v1/maintenance"), 200)
    assert made["id"] in {w["id"] for w in listed}  # cancelled, never deleted
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//carrier//EN\r\nBEGIN:VEVENT\r\n"
        "UID:notice-1@carrier\r\nDTSTAMP:20261001T000000Z\r\nDTSTART:20261015T060000Z\r\n"
        "DTEND:20261015T080000Z\r\nSUMMARY:Core upgrade\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    r = await client.post(
        f"/api/v1/maintenance/import?by=noc&services={SERVICE}",
        data=ics.encode(),
        headers={**AUTH, "Content-Type": "text/calendar"},
    )
    assert (await _json(r, 200))["created"] == ["notice-1@carrier"]
    r = await client.post("/api/v1/maintenance/import?by=noc", data=b"garbage", headers=AUTH)
    assert (await _json(r, 422))["error"] == "invalid"


async def test_tickets_and_evidence_zip(client: Client) -> None:
    tickets = await _json(await client.get("/api/v1/tickets"), 200)
    assert sorted(t["carrier_ref"] for t in tickets) == ["CX-1001", "CX-1002", "CX-1003"]
    r = await client.get("/api/v1/evidence?month=2026-10&pdf=false")
    assert r.status == 200
    with zipfile.ZipFile(io.BytesIO(await r.read())) as z:
        names = set(z.namelist())
    assert {"manifest.json", "manifest.sig", "journal/events.csv"} <= names


def test_the_document_is_generated_from_the_routes_served() -> None:
    doc = openapi_document()
    app = make_api_app(ApiDeps(None, None))  # type: ignore[arg-type]  # routes only
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        query = [p["name"] for p in op.get("parameters", ()) if p["in"] == "query"]
        assert query == list(route.query.model_fields if route.query else ())
        assert ("requestBody" in op) == (route.body is not None or route.raw_body is not None)
        assert ("security" in op) == (route.body is not None or route.write)


async def test_query_parameters_are_checked_by_the_documented_models(client: Client) -> None:
    doc = openapi_document()
    lang = next(
        p
        for p in doc["paths"]["/services/{service}/sla"]["get"]["parameters"]
        if p["name"] == "lang"
    )
    assert lang["schema"]["enum"] == ["es", "en"]
    bad = await _json(await client.get(f"/api/v1/services/{SERVICE}/sla?lang=fr"), 400)
    assert bad["error"] == "bad_query"
    assert "lang must be one of: es, en" in json.dumps(bad["detail"])
    bad = await _json(await client.get("/api/v1/outages?kind=blip"), 400)
    assert bad["detail"][0]["loc"] == ["kind"]
    bad = await _json(await client.get("/api/v1/audit?entity=nope"), 400)
    assert bad["error"] == "bad_query"
    r = await client.delete(
        "/api/v1/maintenance/any?reason=%20&by=me", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert (await _json(r, 400))["error"] == "bad_query"  # a blank reason is no reason
