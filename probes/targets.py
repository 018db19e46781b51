"""Every RFC 3263 target of a trunk probed on its own (issue 14): one OPTIONS probe per
resolved target (host, port, transport and address fixed), all started each round, and one
result for the trunk by its rule (probes/target_rule.py).

Only trunks RFC 3263 gives several targets use this (a host name without a port, with
`dns: rfc3263`); IP and host:port trunks keep the plain OptionsProbe and its cost. The
targets are re-resolved at the start of the first round after their TTL ran out; targets
that appear or vanish in DNS are added or dropped then.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog

from probes.clock import SYSTEM_CLOCK, Clock
from probes.dns.rfc3263 import DnsFailure, Target
from probes.options import (
    MalformedCounter,
    OptionsProbe,
    OptionsSettings,
    UdpSipTransport,
    build_ssl_context,
)
from probes.probe import ResultCallback
from probes.result import Outcome, ProbeResult
from probes.target_rule import TargetRule, aggregate
from probes.untrusted import truncate_untrusted

if TYPE_CHECKING:
    from probes.dns.resolver import SipResolver

log = structlog.get_logger("probes.targets")

# A fixed target is never resolved again (its trunk re-resolves and replaces it instead).
_NEVER_STALE_NS = 2**62
# Without a TTL (numeric hosts only) the targets are asked for again this often.
NO_TTL_REFRESH_NS = 300 * 1_000_000_000
MAX_DETAIL_CHARS = 120


def target_labels(targets: Sequence[Target]) -> list[str]:
    """`host:port/transport` per target; `@address` added where one host has several."""
    keys = Counter((t.host, t.port, t.transport) for t in targets)
    out = []
    for t in targets:
        label = f"{t.host}:{t.port}/{t.transport}"
        out.append(f"{label}@{t.address}" if keys[(t.host, t.port, t.transport)] > 1 else label)
    return out


class TargetProbe(OptionsProbe):
    """An OptionsProbe of one located target: the Request-URI stays the trunk's URI, the
    request goes to the target's address, port and transport."""

    __slots__ = ("label", "target")

    def __init__(
        self,
        settings: OptionsSettings,
        target: Target,
        label: str,
        *,
        udp: UdpSipTransport | None,
        udp_v6: UdpSipTransport | None,
        malformed: MalformedCounter,
        clock: Clock,
    ) -> None:
        super().__init__(
            replace(settings, dns=None), udp=udp, udp_v6=udp_v6, malformed=malformed, clock=clock
        )
        self.target = target
        self.label = label
        if target.transport != self.transport_name:
            # NAPTR/SRV chose the transport, not the URI (RFC 3263 §4.1).
            self.transport_name = target.transport
            self._set_ssl(build_ssl_context(settings) if target.transport == "tls" else None)

    async def _resolve(self, deadline: int) -> tuple[Outcome | None, str]:
        # Called once, on the first probe: the address is the target's, already resolved.
        family = socket.AF_INET6 if self.target.family == "ipv6" else socket.AF_INET
        self._use((self.target.address, self.target.port), family, _NEVER_STALE_NS)
        return None, ""


@dataclass(slots=True, frozen=True)
class TargetState:
    """One target's last result, for /metrics."""

    label: str
    up: bool | None  # None: not probed yet
    rtt_s: float | None


class TargetsProbe:
    """One trunk's RFC 3263 targets, each probed on its own; one aggregated result per round."""

    kind = "options"

    def __init__(
        self,
        settings: OptionsSettings,
        rule: TargetRule,
        *,
        udp: UdpSipTransport | None,
        udp_v6: UdpSipTransport | None,
        malformed: MalformedCounter,
        clock: Clock = SYSTEM_CLOCK,
        resolver: SipResolver | None = None,
    ) -> None:
        if settings.dns is None:
            raise ValueError("a multi-target trunk needs the RFC 3263 resolver settings")
        self.settings = settings
        self.trunk = settings.trunk
        self.rule: TargetRule = rule
        self.max_targets = settings.dns.max_targets
        self._udp, self._udp_v6, self._malformed, self._clock = udp, udp_v6, malformed, clock
        if resolver is None:
            from probes.dns.resolver import SipResolver  # dnspython: with the first such trunk

            resolver = SipResolver(settings.dns)
        self._resolver = resolver
        self.probes: dict[str, TargetProbe] = {}  # by label, in RFC 3263 order
        self.last: dict[str, ProbeResult] = {}
        self.ignored = 0  # targets beyond max_targets, not probed
        self._capped_logged = False
        self._expires_ns = 0  # monotonic; 0: resolve at the next round
        self._on_done: ResultCallback | None = None
        self._started_ns = 0
        self._started_wall_ns = 0
        self._waiting: dict[str, ProbeResult | None] = {}
        self._task: asyncio.Task[None] | None = None

    # ---- the Probe interface -------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._on_done is not None

    def start(self, on_done: ResultCallback) -> None:
        if self._on_done is not None:
            on_done(self._trunk_result(Outcome.PROBE_CRASHED, "previous probe still running"))
            return
        self._on_done = on_done
        self._started_ns = self._clock.monotonic_ns()
        self._started_wall_ns = self._clock.wall_ns()
        if self.probes and self._started_ns < self._expires_ns:
            self._fan_out()
            return
        # Rare path (first round, TTL ran out, or DNS failed last time): a task is fine here.
        self._task = asyncio.get_running_loop().create_task(self._resolve_and_fan_out())
        self._task.add_done_callback(self._task_done)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        for probe in self.probes.values():
            await probe.close()
        if self._on_done is not None:
            self._finish(self._trunk_result(Outcome.PROBE_CRASHED, "probe closed"))

    def states(self) -> list[TargetState]:
        """Each probed target's last result, in RFC 3263 order."""
        out = []
        for label in self.probes:
            last = self.last.get(label)
            up = None if last is None else last.outcome is Outcome.OK
            rtt = None if last is None or last.rtt_ns is None or not up else last.rtt_ns / 1e9
            out.append(TargetState(label, up, rtt))
        return out

    # ---- resolution ------------------------------------------------------------------

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._on_done is not None:
            # A bug, not the trunk's fault: the type only (a message may quote peer bytes).
            self._finish(self._trunk_result(Outcome.PROBE_CRASHED, f"bug: {type(exc).__name__}"))

    async def _resolve_and_fan_out(self) -> None:
        uri = self.settings.uri
        try:
            found = await asyncio.wait_for(self._resolver.resolve(uri), self.settings.timeout)
        except TimeoutError:
            await self._forget_targets()
            self._finish(self._trunk_result(Outcome.DNS, f"locating {uri} timed out"))
            return
        except DnsFailure as exc:
            await self._forget_targets()
            detail = truncate_untrusted(f"{uri}: {exc.kind}: {exc.detail}", MAX_DETAIL_CHARS)
            self._finish(self._trunk_result(Outcome.DNS, detail))
            return
        await self._follow(found.targets)
        ttl_ns = NO_TTL_REFRESH_NS if found.ttl is None else max(1, found.ttl) * 1_000_000_000
        self._expires_ns = self._clock.monotonic_ns() + ttl_ns
        self._fan_out()

    async def _follow(self, targets: Sequence[Target]) -> None:
        """Keep the probes of targets still in DNS, add new ones, close the vanished."""
        total = len(targets)
        kept = list(targets[: self.max_targets])
        self.ignored = total - len(kept)
        if self.ignored and not self._capped_logged:
            self._capped_logged = True
            log.warning(
                "trunk_targets_capped",
                trunk=self.trunk,
                resolved=total,
                probed=len(kept),
                ignored=self.ignored,
            )
        wanted = dict(zip(target_labels(kept), kept, strict=True))
        before = self.probes
        gone = [label for label, probe in before.items() if wanted.get(label) != probe.target]
        for label in gone:
            await before[label].close()
            self.last.pop(label, None)
        self.probes = {}
        for label, target in wanted.items():
            old = before.get(label)
            self.probes[label] = (
                old if old is not None and old.target == target else self._new(label, target)
            )
        added = [label for label in self.probes if label not in before or label in gone]
        if added or gone:
            log.info(
                "trunk_targets_changed",
                trunk=self.trunk,
                targets=list(self.probes),
                added=added,
                removed=[label for label in gone if label not in wanted],
            )

    async def _forget_targets(self) -> None:
        for probe in self.probes.values():
            await probe.close()
        if self.probes:
            removed = list(self.probes)
            log.info(
                "trunk_targets_changed", trunk=self.trunk, targets=[], added=[], removed=removed
            )
        self.probes = {}
        self.last = {}
        self._expires_ns = 0

    def _new(self, label: str, target: Target) -> TargetProbe:
        return TargetProbe(
            self.settings,
            target,
            label,
            udp=self._udp,
            udp_v6=self._udp_v6,
            malformed=self._malformed,
            clock=self._clock,
        )

    # ---- a round -----------------------------------------------------------------------

    def _fan_out(self) -> None:
        if self._on_done is None:
            return  # closed while resolving
        self._waiting = dict.fromkeys(self.probes)
        for label, probe in list(self.probes.items()):
            probe.start(self._done_for(label))

    def _done_for(self, label: str) -> ResultCallback:
        def done(result: ProbeResult) -> None:
            if label not in self._waiting or self._waiting[label] is not None:
                return  # a closed target's last word, or a result from a finished round
            self._waiting[label] = result
            self.last[label] = result
            if all(r is not None for r in self._waiting.values()):
                self._round_done()

        return done

    def _round_done(self) -> None:
        pairs = [(label, r) for label, r in self._waiting.items() if r is not None]
        self._waiting = {}
        now = self._clock.monotonic_ns()
        result = aggregate(
            self.trunk,
            self.rule,
            pairs,
            sent_wall_ns=self._started_wall_ns,
            duration_ns=now - self._started_ns,
        )
        self._finish(result)

    def _trunk_result(self, outcome: Outcome, detail: str) -> ProbeResult:
        return ProbeResult(
            trunk=self.trunk,
            probe=self.kind,
            outcome=outcome,
            sent_wall_ns=self._started_wall_ns or self._clock.wall_ns(),
            duration_ns=self._clock.monotonic_ns() - self._started_ns,
            detail=detail,
        )

    def _finish(self, result: ProbeResult) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(result)
