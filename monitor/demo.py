"""`trunkwatch demo`: monitor a built-in responder on loopback that fails on a schedule.

The demo keeps what a real deployment keeps in one folder (``trunkwatch-demo/`` by default):
the config it runs (``trunkwatch.yaml``, with a contract and a ticket sink), the store and the
evidence key, so the month-end commands (``sla report``, ``evidence export``) work on it
afterwards. Its ticket sink is a built-in carrier helpdesk on loopback that answers the
webhook with a ticket number, as a carrier's system would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from monitor.app import Monitor
from monitor.config import load_config
from monitor.log import get_logger
from monitor.tickets.webhook import WebhookVerificationError, verify
from probes.responder import ResponderMode, SipResponder

log = get_logger("trunkwatch.demo")


@dataclass(slots=True, frozen=True)
class DemoScript:
    """Every `period` seconds the responder goes silent at `silent_at` for `silent_for`."""

    interval: float = 1.0
    silent_at: float = 10.0
    silent_for: float = 20.0
    period: float = 60.0


DEFAULT_DIR = Path("trunkwatch-demo")
CONFIG_NAME = "trunkwatch.yaml"
SECRET_NAME = "webhook.secret"
SERVICE = "demo-voice"
CONTRACT_TZ = "America/Mexico_City"
DEMO_CONFIG = """\
# Written by `trunkwatch demo` at each start: the config of the demo's monitor, for the
# month-end commands (README, "Month end"). The helpdesk URL changes at every start.
agent: demo
store:
  url: "sqlite:///demo.db"
http:
  listen: 127.0.0.1
  port: {http_port}
defaults:
  interval: {interval}
  timeout: {timeout}
  down_after: 3
  up_after: 2
trunks:
  - name: demo-trunk
    carrier: demo-carrier
    uri: "sip:127.0.0.1:{sip_port};transport=udp"
tickets:
  language: en
  sinks:
    - name: demo-helpdesk
      type: webhook
      url: "{helpdesk_url}"
      secret_file: {secret_name}
sla:
  signing_key_file: evidence.key
  services:
    - {{name: {service}, rule: all, parts: [demo-trunk]}}
  contracts:
    - name: demo-contract
      carrier: Demo Carrier
      services: [{service}]
      target_pct: 99.9
      basis: thirty_day
      clock: ticket
      tz: {tz}
      acceptance: 2026-01-01
      monthly_fee: 1000
      currency: MXN
      credit_tiers: [{{below_pct: 99.9, credit_pct: 10}}]
"""


@dataclass
class DemoHelpdesk:
    """The carrier's helpdesk of the demo: checks each webhook (docs/tickets-webhook.md) and
    answers with a ticket number, the same one again for a retried delivery."""

    secret: str
    numbers: dict[str, str] = field(default_factory=dict)  # ticket_key → number
    runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/tickets", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/tickets"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(self.secret, request.headers, body, datetime.now(UTC))
            data = json.loads(body)
            key, kind = str(data["data"]["ticket_key"]), str(data["type"])
        except (WebhookVerificationError, ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)[:200]}, status=400)
        if kind == "ticket.open" and key not in self.numbers:
            self.numbers[key] = f"DEMO-{len(self.numbers) + 1}"
            log.info("demo_helpdesk_ticket", number=self.numbers[key])
        return web.json_response({"ticket_id": self.numbers.get(key, "")})


def webhook_secret(folder: Path) -> str:
    """The demo's webhook secret, made once and kept (0600) beside its config."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_NAME
    if not path.exists():
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
    return path.read_text().strip()


async def _script(responder: SipResponder, script: DemoScript, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    cycle = 0
    while not stop.is_set():
        silent_from = start + cycle * script.period + script.silent_at
        if await _wait_until(stop, silent_from):
            return
        responder.mode = ResponderMode.SILENT
        log.warning("demo_responder_silent", seconds=script.silent_for)
        if await _wait_until(stop, silent_from + script.silent_for):
            return
        responder.mode = ResponderMode.NORMAL
        log.info("demo_responder_answering")
        cycle += 1


async def _wait_until(stop: asyncio.Event, when: float) -> bool:
    """Sleep until loop time `when`; True if stop was set first."""
    delay = when - asyncio.get_running_loop().time()
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, delay))
    except TimeoutError:
        return False
    return True


async def run_demo(
    stop: asyncio.Event,
    *,
    http_port: int = 9465,
    folder: Path = DEFAULT_DIR,
    script: DemoScript = DemoScript(),
) -> Monitor:
    """Run until `stop` is set; returns the (stopped) monitor for callers that inspect it."""
    responder = SipResponder("127.0.0.1", 0)
    await responder.start()
    helpdesk = DemoHelpdesk(webhook_secret(folder))
    config_file = folder / CONFIG_NAME
    try:
        # Blocking, once, before the monitor starts: nothing else waits on the loop yet.
        config_file.write_text(
            DEMO_CONFIG.format(
                http_port=http_port,
                interval=script.interval,
                timeout=round(script.interval * 0.8, 3),
                sip_port=responder.port,
                helpdesk_url=await helpdesk.start(),
                secret_name=SECRET_NAME,
                service=SERVICE,
                tz=CONTRACT_TZ,
            )
        )
        monitor = Monitor(load_config(config_file))
        try:
            await monitor.start()
            log.info(
                "demo_started",
                responder=f"sip:127.0.0.1:{responder.port}",
                metrics=f"http://127.0.0.1:{monitor.bound_port}/metrics",
                config=str(config_file),
                silent_at=script.silent_at,
                silent_for=script.silent_for,
            )
            await _script(responder, script, stop)
        finally:
            await monitor.stop()
    finally:
        await helpdesk.stop()
        await responder.stop()
    return monitor
