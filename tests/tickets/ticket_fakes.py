"""aiohttp fakes of ticket APIs that cannot run here, each keeping to its documented contract.

- PagerDuty Events API v2 (developer.pagerduty.com "Send an Alert Event", "Events API v2
  Overview"): POST /v2/enqueue, routing key in the body (32 characters), 202
  {"status": "success", "message": "Event processed", "dedup_key"}, 400 {"status": "invalid
  event", "message": "Event object is invalid", "errors": [...]}, 429 to slow down;
  triggers with an open alert's dedup_key join it, resolve closes it.
- ServiceNow Table API: /api/now/table/{table}, basic auth, 201/200 {"result": ...}, errors
  {"error": {"message", "detail"}, "status": "failure"}; sysparm_query "a=b^ORDERBYc".
- Jira Service Management: /rest/servicedeskapi/request (201), .../comment (201),
  .../transition (204), errors {"errorMessage", "i18nErrorMessage"}; JQL search
  {"issues": [...]}; basic auth email:api-token.
- Zammad: /api/v1/tickets (201), /api/v1/ticket_articles (201), PUT /api/v1/tickets/{id}
  (200), /api/v1/tickets/search?expand=true (a list), "Authorization: Token token=…",
  errors {"error", "error_human"}.

Every fake can be told to lose replies (process the request, then answer 504 as a gateway
whose upstream reply was lost) and to rate-limit (429 + Retry-After).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

PD_ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters
SN_USER, SN_PASSWORD = "trunkwatch", "sn-password"
JIRA_EMAIL, JIRA_TOKEN = "noc@customer.example", "jira-api-token"
ZAMMAD_TOKEN = "zammad-token-123"


@dataclass
class Fake(ABC):
    """Common plumbing: an aiohttp server on loopback and the fault switches."""

    lose_replies: int = 0  # process, then answer 504 this many times
    rate_limit: int = 0  # answer 429 (not processed) this many times
    hold: asyncio.Event | None = None  # process writes, then hold their replies until set
    processed: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, json
    runner: web.AppRunner | None = None
    url: str = ""

    @abstractmethod
    def routes(self, app: web.Application) -> None: ...

    async def start(self) -> str:
        app = web.Application(middlewares=[self._faults])
        self.routes(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append((request.method, request.path, body))
        if self.rate_limit > 0:
            self.rate_limit -= 1
            return web.json_response(self.too_many(), status=429, headers={"Retry-After": "1"})
        response: web.StreamResponse = await handler(request)
        if request.method != "GET":
            self.processed.set()
            if self.hold is not None:
                await self.hold.wait()
        if self.lose_replies > 0 and request.method != "GET":
            self.lose_replies -= 1
            return web.Response(status=504, text="upstream timed out")
        return response

    def too_many(self) -> Any:
        return {"error": "rate limited"}


def _now() -> datetime:
    return datetime.now(UTC)


# --- PagerDuty --------------------------------------------------------------------------------


@dataclass
class PagerDutyFake(Fake):
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # dedup_key → alert
    resolved: list[dict[str, Any]] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self.enqueue)

    def too_many(self) -> Any:
        return {
            "status": "throttle event",
            "message": "Requests for this service are arriving too quickly.",
        }

    @staticmethod
    def invalid(*errors: str) -> web.Response:
        return web.json_response(
            {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": list(errors),
            },
            status=400,
        )

    async def enqueue(self, request: web.Request) -> web.Response:
        try:
            event = await request.json()
        except ValueError:
            return self.invalid("Invalid JSON")
        if len(str(event.get("routing_key", ""))) != 32:
            return self.invalid("Length of 'routing_key' is incorrect (should be 32 characters)")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            return self.invalid(
                "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
            )
        key = event.get("dedup_key") or secrets.token_hex(16)
        if len(key) > 255:
            return self.invalid("'dedup_key' is too long (maximum is 255 characters)")
        if action == "trigger":
            payload = event.get("payload") or {}
            missing = [f for f in ("summary", "source", "severity") if not payload.get(f)]
            if missing:
                return self.invalid(*(f"'payload.{f}' is missing or blank" for f in missing))
            if payload["severity"] not in ("critical", "error", "warning", "info"):
                return self.invalid("'payload.severity' is invalid")
            if len(payload["summary"]) > 1024:
                return self.invalid("'payload.summary' is too long")
            alert = self.alerts.get(key)
            if alert is None:
                self.alerts[key] = {"payload": payload, "log": [payload], "status": "triggered"}
            else:
                alert["log"].append(payload)  # a trigger on an open alert joins it
        elif key in self.alerts:
            self.alerts[key]["status"] = "resolved" if action == "resolve" else "acknowledged"
            if action == "resolve":
                self.resolved.append(self.alerts.pop(key))
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": key}, status=202
        )


# --- ServiceNow -------------------------------------------------------------------------------


@dataclass
class ServiceNowFake(Fake):
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # sys_id → record

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/now/table/{table}", self.create)
        app.router.add_get("/api/now/table/{table}", self.query)
        app.router.add_patch("/api/now/table/{table}/{sys_id}", self.patch)

    @staticmethod
    def error(status: int, message: str, detail: str | None = None) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "detail": detail}, "status": "failure"}, status=status
        )

    def too_many(self) -> Any:
        return {"error": {"message": "Too many requests", "detail": None}, "status": "failure"}

    def _denied(self, request: web.Request) -> web.Response | None:
        expected = "Basic " + base64.b64encode(f"{SN_USER}:{SN_PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self.error(401, "User Not Authenticated", "Required to provide Auth information")
        if request.match_info["table"] != "incident":
            return self.error(400, f"Invalid table {request.match_info['table']}")
        return None

    @staticmethod
    def _fields(record: dict[str, Any], request: web.Request) -> dict[str, Any]:
        wanted = request.query.get("sysparm_fields")
        if not wanted:
            return record
        return {k: record.get(k, "") for k in wanted.split(",")}

    async def create(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        body = await request.json()
        sys_id = secrets.token_hex(16)
        record = {
            **{k: str(v) for k, v in body.items()},
            "sys_id": sys_id,
            "number": f"INC{10001 + len(self.records):07d}",
            "sys_created_on": _now().strftime("%Y-%m-%d %H:%M:%S"),
            "state": "1",
            "work_notes_journal": [],
        }
        self.records[sys_id] = record
        return web.json_response(
            {"result": self._fields(record, request)},
            status=201,
            headers={"Location": f"{self.url}/api/now/table/incident/{sys_id}"},
        )

    async def query(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        conditions: list[tuple[str, str]] = []
        order: str | None = None
        for part in request.query.get("sysparm_query", "").split("^"):
            if part.startswith("ORDERBY"):
                order = part[len("ORDERBY") :]
            elif "=" in part:
                name, _, value = part.partition("=")
                conditions.append((name, value))
        found = [r for r in self.records.values() if all(r.get(k) == v for k, v in conditions)]
        if order:
            found.sort(key=lambda r: str(r.get(order, "")))
        limit = int(request.query.get("sysparm_limit", "10000"))
        return web.json_response({"result": [self._fields(r, request) for r in found[:limit]]})

    async def patch(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        record = self.records.get(request.match_info["sys_id"])
        if record is None:
            return self.error(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        body = await request.json()
        if body.get("state") == "6" and not (body.get("close_code") and body.get("close_notes")):
            return self.error(
                403, "Data Policy Exception: Resolution code, Resolution notes are mandatory"
            )
        if "work_notes" in body:
            record["work_notes_journal"].append(body.pop("work_notes"))
        record.update({k: str(v) for k, v in body.items()})
        return web.json_response({"result": self._fields(record, request)})


# --- Jira Service Management ---------------------------------------------------------------


@dataclass
class JiraFake(Fake):
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → issue
    service_desk_id: str = "1"
    request_type_id: str = "10"
    resolve_transition_id: str = "761"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/rest/servicedeskapi/request", self.create)
        app.router.add_post("/rest/servicedeskapi/request/{key}/comment", self.comment)
        app.router.add_post("/rest/servicedeskapi/request/{key}/transition", self.transition)
        app.router.add_get("/rest/api/3/search/jql", self.search)

    @staticmethod
    def error(status: int, message: str, key: str) -> web.Response:
        return web.json_response(
            {"errorMessage": message, "i18nErrorMessage": {"i18nKey": key, "parameters": []}},
            status=status,
        )

    def too_many(self) -> Any:
        return {"errorMessage": "Rate limit exceeded."}

    def _denied(self, request: web.Request) -> web.Response | None:
        expected = "Basic " + base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return self.error(
                401, "Client must be authenticated to access this resource.", "sd.auth"
            )
        return None

    async def create(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        body = await request.json()
        if (body.get("serviceDeskId"), body.get("requestTypeId")) != (
            self.service_desk_id,
            self.request_type_id,
        ):
            return self.error(
                400,
                "The request type you are trying to use does not exist.",
                "sd.request.create.error.request.type.not.found",
            )
        values = body.get("requestFieldValues") or {}
        if not values.get("summary"):
            return self.error(
                400, "Summary: Summary is required.", "sd.request.create.error.summary"
            )
        number = len(self.issues) + 1
        key = f"NOC-{number}"
        now = _now()
        self.issues[key] = {
            "issueId": str(10000 + number),
            "issueKey": key,
            "summary": values["summary"],
            "description": values.get("description", ""),
            "fields": values,
            "comments": [],
            "status": "Waiting for support",
            "created": now,
        }
        return web.json_response(
            {
                "issueId": str(10000 + number),
                "issueKey": key,
                "requestTypeId": self.request_type_id,
                "serviceDeskId": self.service_desk_id,
                "createdDate": {
                    "iso8601": now.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                    "epochMillis": int(now.timestamp() * 1000),
                },
                "currentStatus": {"status": "Waiting for support"},
                "_links": {
                    "web": f"{self.url}/servicedesk/customer/portal/1/{key}",
                    "self": f"{self.url}/rest/servicedeskapi/request/{10000 + number}",
                },
            },
            status=201,
        )

    async def comment(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        issue = self.issues.get(request.match_info["key"])
        if issue is None:
            return self.error(404, "The request could not be found.", "sd.request.not.found")
        body = await request.json()
        issue["comments"].append({"body": body["body"], "public": body.get("public", True)})
        return web.json_response(
            {"id": str(len(issue["comments"])), "body": body["body"], "public": body.get("public")},
            status=201,
        )

    async def transition(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        issue = self.issues.get(request.match_info["key"])
        if issue is None:
            return self.error(404, "The request could not be found.", "sd.request.not.found")
        body = await request.json()
        if body.get("id") != self.resolve_transition_id:
            return self.error(
                400, "The transition is not valid for this request.", "sd.transition.invalid"
            )
        comment = (body.get("additionalComment") or {}).get("body")
        if comment:
            issue["comments"].append({"body": comment, "public": True})
        issue["status"] = "Resolved"
        return web.Response(status=204)

    async def search(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        match = re.match(r'^summary ~ "\\"(.+?)\\""', request.query.get("jql", ""))
        if match is None:
            return web.json_response({"errorMessages": ["Error in the JQL Query"]}, status=400)
        phrase = match.group(1)
        found = sorted(
            (i for i in self.issues.values() if phrase in i["summary"]), key=lambda i: i["created"]
        )
        limit = int(request.query.get("maxResults", "50"))
        return web.json_response(
            {
                "issues": [
                    {"id": i["issueId"], "key": i["issueKey"], "fields": {"summary": i["summary"]}}
                    for i in found[:limit]
                ],
                "isLast": True,
            }
        )


# --- Zammad ---------------------------------------------------------------------------------


@dataclass
class ZammadFake(Fake):
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    groups: tuple[str, ...] = ("Users",)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/tickets", self.create)
        app.router.add_get("/api/v1/tickets/search", self.search)
        app.router.add_put("/api/v1/tickets/{id}", self.update)
        app.router.add_post("/api/v1/ticket_articles", self.article)

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message, "error_human": message}, status=status)

    def too_many(self) -> Any:
        return {"error": "Too many requests", "error_human": "Too many requests"}

    def _denied(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Token token={ZAMMAD_TOKEN}":
            return self.error(401, "Authentication failed")
        return None

    def _ticket_json(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ticket.items() if k != "articles"}

    async def create(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        body = await request.json()
        for name in ("title", "group", "customer"):
            if not body.get(name):
                return self.error(422, f"Missing required attribute: {name}")
        if body["group"] not in self.groups:
            return self.error(422, f"No lookup value found for 'group': \"{body['group']}\"")
        if not isinstance(body.get("article"), dict) or not body["article"].get("body"):
            return self.error(422, "Need at least one article for a new ticket")
        ticket_id = len(self.tickets) + 1
        ticket = {
            "id": ticket_id,
            "number": str(31000 + ticket_id),
            "title": body["title"],
            "group": body["group"],
            "priority": body.get("priority", "2 normal"),
            "state": "new",
            "created_at": _now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "articles": [body["article"]],
        }
        self.tickets[ticket_id] = ticket
        return web.json_response(self._ticket_json(ticket), status=201)

    async def search(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        match = re.match(r'^title:"(.+)"$', request.query.get("query", ""))
        needle = match.group(1) if match else request.query.get("query", "")
        found = [self._ticket_json(t) for t in self.tickets.values() if needle in t["title"]]
        return web.json_response(found[: int(request.query.get("limit", "50"))])

    async def update(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        ticket = self.tickets.get(int(request.match_info["id"]))
        if ticket is None:
            return self.error(404, f"Couldn't find Ticket with 'id'={request.match_info['id']}")
        body = await request.json()
        if "article" in body:
            ticket["articles"].append(body.pop("article"))
        ticket.update(body)
        return web.json_response(self._ticket_json(ticket))

    async def article(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied:
            return denied
        body = await request.json()
        ticket = self.tickets.get(int(body.get("ticket_id", 0)))
        if ticket is None:
            return self.error(404, f"Couldn't find Ticket with 'id'={body.get('ticket_id')}")
        ticket["articles"].append(body)
        return web.json_response({"id": len(ticket["articles"]), **body}, status=201)
