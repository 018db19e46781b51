"""Control targets (vantage.control_targets): what the agent probes besides its trunks to
tell "our side" from "their side" when every trunk fails at once (monitor/vantage.py).

A target is a SIP URI (probed with OPTIONS, probes/options.py) or `tcp://HOST:PORT`
(a connect, probes/connect.py). Every `interval` all are probed at once; each result goes
to the same consumer as the trunks' results, with probe kind CONTROL_PROBE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from monitor.log import get_logger
from probes.connect import connect_once
from probes.hostport import split_host_port
from probes.options import OptionsSettings, probe_options_once
from probes.result import Outcome, ProbeResult
from probes.sip.errors import SipParseError
from probes.sip.uri import SipUri

log = get_logger("trunkwatch.control")

CONTROL_PROBE = "control"


@dataclass(frozen=True, slots=True)
class ControlTarget:
    """One control target as configured: `name` is the text itself (the metric's label)."""

    name: str
    host: str = ""  # tcp:// only
    port: int = 0

    @property
    def is_sip(self) -> bool:
        return not self.host


def parse_target(text: str) -> ControlTarget:
    """`sip:…`/`sips:…` or `tcp://HOST:PORT`; ValueError says what is wrong."""
    if text.startswith("tcp://"):
        rest = text.removeprefix("tcp://").rstrip("/")
        host, port = split_host_port(rest, 0)
        if port == 0:
            raise ValueError("tcp:// needs a port: tcp://HOST:PORT")
        return ControlTarget(text, host, port)
    if text.lower().startswith(("sip:", "sips:")):
        try:
            uri = SipUri.parse(text)
        except SipParseError as exc:
            raise ValueError(f"not a valid SIP URI: {exc}") from None
        if uri.password is not None:
            raise ValueError("a SIP URI with a password would put it in the metrics")
        return ControlTarget(text)
    raise ValueError("expected a SIP URI (sip:HOST) or tcp://HOST:PORT")


class ControlLoop:
    """Probes every target every `interval` seconds; `on_result` gets each result."""

    def __init__(
        self,
        targets: Sequence[ControlTarget],
        interval: float,
        timeout: float,
        on_result: Callable[[ProbeResult], None],
    ) -> None:
        self.targets = tuple(targets)
        self.interval = interval
        self.timeout = timeout
        self._on_result = on_result

    async def probe(self, target: ControlTarget) -> ProbeResult:
        if not target.is_sip:
            return await connect_once(
                target.name, target.host, target.port, self.timeout, probe=CONTROL_PROBE
            )
        settings = OptionsSettings(trunk=target.name, uri=target.name, timeout=self.timeout)
        result, _ = await probe_options_once(settings)
        # Any SIP answer counts: even a 404 proves the path to that host works.
        alive = result.ok or result.status_code is not None
        return replace(result, probe=CONTROL_PROBE, outcome=Outcome.OK if alive else result.outcome)

    async def step(self) -> None:
        for result in await asyncio.gather(*map(self.probe, self.targets)):
            self._on_result(result)

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug: say so, keep asking
                log.error("control_probe_failed", error=repr(exc)[:200])
            await asyncio.sleep(self.interval)
