"""TLS certificates the services depend on: every SIP-TLS trunk's and every configured
endpoint's (Edge, reverse proxy, directory sync), fetched and judged every interval
(probes/tls), with their expiry and validity on /metrics. An expired customer
certificate takes voice down for remote users in a way the contract counts as the
customer's fault: the NOC must see it coming weeks ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.log import get_logger
from monitor.metrics.exposition import (
    ExpositionFormat,
    Kind,
    family,
    label_text,
    sample_line,
)
from probes.clock import SYSTEM_CLOCK, Clock, utc_now
from probes.sip.uri import SipUri, default_port
from probes.tls.anchors import AnchorLoadError, load_trust_anchors
from probes.tls.fetch import CertFetchError, fetch_chain
from probes.tls.report import REASONS, CertInspectError, CertReport

if TYPE_CHECKING:
    from monitor.config import Config

log = get_logger("trunkwatch.certificates")

EXPIRY = family(
    "tls_cert_expiry_timestamp_seconds",
    Kind.GAUGE,
    "When the served leaf certificate expires (Unix time).",
)
VALID = family(
    "tls_cert_valid",
    Kind.GAUGE,
    "0 while the served certificate has this problem (reason), else 1.",
)
CHECKED = family(
    "tls_cert_check_success",
    Kind.GAUGE,
    "1 if the last check got a certificate (TLS handshake done), 0 if not.",
)
TRUNK_ROLE = "sip_trunk"


@dataclass(frozen=True, slots=True)
class CertTarget:
    """Where to fetch one certificate, and the names it is shown under."""

    name: str
    role: str
    host: str
    port: int
    sni: str | None
    ca_file: Path | None

    @property
    def expected_host(self) -> str:
        return self.sni or self.host


def _may_be_tls(uri: str) -> bool:
    """False only for a URI that cannot be TLS: not sips:, no "tls", nothing %-escaped."""
    lowered = uri.lower()
    return lowered.startswith("sips:") or "tls" in lowered or "%" in lowered


def targets(config: Config) -> list[CertTarget]:
    """The SIP-TLS trunks (unless certificates.trunks is false), then the endpoints: those of
    `certificates.endpoints`, then the tls and https ones of the top-level `endpoints:`."""
    settings = config.certificates
    out: list[CertTarget] = []
    if settings.trunks:
        for trunk in config.trunks:
            if not _may_be_tls(trunk.uri):
                continue  # 100,000 URI parses at start-up to find the few TLS trunks
            uri = SipUri.parse(trunk.uri)
            if uri.transport != "tls" or not trunk.tls.verify:
                continue
            port = uri.port or default_port("tls")
            name = trunk.tls.server_name
            out.append(CertTarget(trunk.name, TRUNK_ROLE, uri.host, port, name, trunk.tls.ca_file))
    probed = [e for e in config.endpoints if e.kind in ("tls", "https") and e.verify]
    for e in (*settings.endpoints, *probed):
        port = e.port if e.port is not None else 443
        out.append(CertTarget(e.name, e.role, e.host, port, e.sni, e.ca_file))
    return out


@dataclass(frozen=True, slots=True)
class CertState:
    """The last check of one target: a report, or why there is none."""

    report: CertReport | None
    error: str | None
    checked_at: datetime


class CertificateWatch:
    """Checks every target each `interval_s`; `render` writes the last results."""

    def __init__(
        self,
        targets: list[CertTarget],
        *,
        interval_s: float,
        timeout_s: float,
        agent: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.targets = targets
        self._agent = f"{label_text(agent=agent)},"  # `agent` sorts first in each label set
        self._interval = interval_s
        self._timeout = timeout_s
        self._clock = clock
        self.states: dict[str, CertState] = {}
        self._anchors: dict[Path | None, list[bytes]] = {}
        self._retargeted = asyncio.Event()

    @classmethod
    def from_config(cls, config: Config) -> CertificateWatch:
        settings = config.certificates
        return cls(
            targets(config),
            interval_s=settings.interval,
            timeout_s=settings.timeout,
            agent=config.agent,
        )

    async def check(self, target: CertTarget) -> CertState:
        now = utc_now(self._clock)
        try:
            anchors = await self._trust(target.ca_file)
            chain = await fetch_chain(
                target.host, target.port, sni=target.expected_host, timeout=self._timeout
            )
            # Imported here: cryptography is ~8 MB resident, for daemons that check no TLS.
            from probes.tls.cert import inspect_chain

            report = inspect_chain(chain, target.expected_host, anchors, now)
            state = CertState(report, None, now)
        except CertFetchError as exc:
            state = CertState(None, exc.reason, now)
        except (AnchorLoadError, CertInspectError) as exc:
            state = CertState(None, type(exc).__name__, now)
        self._log_change(target, self.states.get(target.name), state)
        self.states[target.name] = state
        return state

    async def _trust(self, ca_file: Path | None) -> list[bytes]:
        anchors = self._anchors.get(ca_file)
        if anchors is None:  # the system store is a few hundred certificates: read once
            anchors = await asyncio.to_thread(load_trust_anchors, ca_file)
            self._anchors[ca_file] = anchors
        return anchors

    async def run(self) -> None:
        while True:
            self._retargeted.clear()
            for target in list(self.targets):
                await self.check(target)
            # asyncio.timeout, not wait_for: 3.11's wait_for, cancelled (at stop) just after
            # a reload set the event, left its inner wait pending and stop() waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._retargeted.wait()

    def retarget(self, targets: list[CertTarget]) -> None:
        """A reload's targets: checked now (not an interval later), the others forgotten."""
        self.targets = targets
        names = {t.name for t in targets}
        self.states = {n: s for n, s in self.states.items() if n in names}
        self._retargeted.set()

    def render(self, fmt: ExpositionFormat) -> str:
        expiry: list[str] = []
        valid: list[str] = []
        checked: list[str] = []
        for target in self.targets:
            state = self.states.get(target.name)
            if state is None:
                continue  # not checked yet: no figure rather than a wrong one
            labels = self._agent + label_text(endpoint=target.name, role=target.role)
            checked.append(sample_line(CHECKED.sample, labels, float(state.report is not None)))
            report = state.report
            if report is None:
                continue
            expiry.append(sample_line(EXPIRY.sample, labels, report.not_after.timestamp()))
            for reason in REASONS:
                reasoned = label_text(endpoint=target.name, reason=reason, role=target.role)
                with_reason = self._agent + reasoned
                ok = 0.0 if reason in report.reasons else 1.0
                valid.append(sample_line(VALID.sample, with_reason, ok))
        if not self.targets:
            return ""
        return "".join(
            (
                EXPIRY.header(fmt), *expiry,
                VALID.header(fmt), *valid,
                CHECKED.header(fmt), *checked,
            )
        )  # fmt: skip

    def _log_change(self, target: CertTarget, before: CertState | None, after: CertState) -> None:
        def verdict(state: CertState | None) -> tuple[str, ...] | None:
            if state is None:
                return None
            if state.report is None:
                return ("unreachable", state.error or "")
            return state.report.reasons

        if verdict(before) == verdict(after):
            return
        report = after.report
        fields: dict[str, object] = {"endpoint": target.name, "role": target.role}
        if report is None:
            log.warning("certificate_unreachable", **fields, reason=after.error)
        elif report.reasons:
            log.warning(
                "certificate_problem",
                **fields,
                reasons=list(report.reasons),
                not_after=report.not_after.isoformat(),
            )
        else:
            log.info(
                "certificate_ok",
                **fields,
                not_after=report.not_after.isoformat(),
                days_left=report.days_left,
            )
