"""`trunkwatch demo`: monitor a built-in responder on loopback that fails on a schedule."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.log import get_logger
from probes.responder import ResponderMode, SipResponder

log = get_logger("trunkwatch.demo")


@dataclass(slots=True, frozen=True)
class DemoScript:
    """Every `period` seconds the responder goes silent at `silent_at` for `silent_for`."""

    interval: float = 1.0
    silent_at: float = 10.0
    silent_for: float = 20.0
    period: float = 60.0


DEMO_CONFIG = """\
agent: demo
store:
  url: "sqlite:///{db}"
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
"""


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
    db_path: Path | None = None,
    script: DemoScript = DemoScript(),
) -> Monitor:
    """Run until `stop` is set; returns the (stopped) monitor for callers that inspect it."""
    responder = SipResponder("127.0.0.1", 0)
    await responder.start()
    with tempfile.TemporaryDirectory(prefix="trunkwatch-demo-") as tmp:
        db = db_path or Path(tmp) / "demo.db"
        text = DEMO_CONFIG.format(
            db=db,
            http_port=http_port,
            interval=script.interval,
            timeout=round(script.interval * 0.8, 3),
            sip_port=responder.port,
        )
        monitor = Monitor(config_from_text(text, source="<demo>"))
        try:
            await monitor.start()
            log.info(
                "demo_started",
                responder=f"sip:127.0.0.1:{responder.port}",
                metrics=f"http://127.0.0.1:{monitor.bound_port}/metrics",
                silent_at=script.silent_at,
                silent_for=script.silent_for,
            )
            await _script(responder, script, stop)
        finally:
            await monitor.stop()
            await responder.stop()
    return monitor
