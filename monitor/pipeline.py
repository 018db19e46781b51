"""The result pipeline: a probe result in; journal events, sample rows and log lines out.

No I/O: the monitor feeds every result through :meth:`Pipeline.on_result` and does the
writing and logging itself (``monitor/store/writer.py``, ``log_lines``). The pipeline owns
the per-trunk state the verdicts need: health, OPTIONS statistics, the transition sampler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Protocol

from monitor.control import CONTROL_PROBE
from monitor.events import (
    Event,
    MonitorGap,
    OutageClosed,
    OutageOpened,
    TrunkState,
    TrunkStateChanged,
)
from monitor.health import HealthPolicy, QualityPolicy, TrunkHealth, reduce, reduce_quality
from monitor.metrics.calls import CallMetrics
from monitor.metrics.exposition import ExpositionFormat
from monitor.metrics.stats import StatsTable
from monitor.probable_cause import mark_customer_certificate, probable_cause
from monitor.store.samples import CallSample
from monitor.transition_samples import ProbeSampleRun, TransitionSampler
from monitor.vantage import Side, VantageGuard
from probes.instants import utc_from_ns
from probes.media.thresholds import Metric, ThresholdProfile
from probes.result import NOT_THE_TRUNKS_FAULT, MediaDirection, Outcome, ProbeResult

__all__ = ["LogLine", "Pipeline", "Produced", "call_sample", "log_lines", "quality_verdict"]

# The events that keep the probe samples around them (monitor/transition_samples.py).
# Samples are kept around the opening and closing of outages and degradations: the
# UNKNOWN -> UP of every trunk at start-up is no evidence, and capturing it for 10,000
# trunks at once stalled the probe loop (measured: lateness p99 349 ms).
_TRANSITIONS: Final = (OutageOpened, OutageClosed)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One structured log line: level, stable event name, fields."""

    level: str  # "info" or "warning"
    event: str
    fields: Mapping[str, object]


@dataclass(slots=True)
class Produced:
    """What one result produced: events to journal (and ticket), sample rows, log lines."""

    events: list[Event] = field(default_factory=list)
    probe_samples: list[ProbeSampleRun] = field(default_factory=list)
    call_samples: list[CallSample] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)


class EndpointRecorder(Protocol):
    """Keeps an endpoint's last figures for /metrics (monitor/endpoints.py)."""

    def record(self, result: ProbeResult) -> None: ...
    def render(self, fmt: ExpositionFormat) -> str: ...


class RequiredRegistrations(Protocol):
    """Which trunks must be registered, and whether one's registration is lost now."""

    @property
    def required(self) -> frozenset[str]: ...
    def lost(self, trunk: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class _NoRegistrations:
    required: frozenset[str] = frozenset()

    def lost(self, trunk: str) -> bool:
        return False


NO_REGISTRATIONS: Final = _NoRegistrations()


class Pipeline:
    """Per-trunk verdicts: OPTIONS results decide availability, test calls quality."""

    def __init__(
        self,
        agent: str,
        health: dict[str, TrunkHealth],
        policies: dict[str, HealthPolicy],
        *,
        quality_policies: dict[str, QualityPolicy] | None = None,
        call_profiles: Mapping[str, ThresholdProfile | None] | None = None,
        call_metrics: CallMetrics | None = None,
        vantage: VantageGuard | None = None,
    ) -> None:
        self.agent = agent
        # None: no suspect rule (a test's single trunk, or the operator turned it off).
        self.vantage = vantage
        self.health = health
        self.policies = policies
        self.quality_policies = quality_policies or {}
        self.call_profiles = call_profiles or {}
        self.call_metrics = call_metrics or CallMetrics({}, agent=agent)
        self.stats = StatsTable(health)
        self.sampler = TransitionSampler(agent)
        self.outages_opened: dict[str, int] = {}
        self.learned: dict[str, int] = {}  # state → trunks that reached it from UNKNOWN
        # Trunks whose registration is required, and whether it is lost now (app wires it).
        self.registrations: RequiredRegistrations = NO_REGISTRATIONS
        # Endpoints (https/tcp/tls/icmp): availability like a trunk's, outside the trunks'
        # own dicts so the OPTIONS statistics, the trunk metrics and the vantage rule skip them.
        self.endpoint_health: dict[str, TrunkHealth] = {}
        self.endpoint_policies: dict[str, HealthPolicy] = {}
        self.endpoint_metrics: EndpointRecorder | None = None
        self.certified: frozenset[str] = frozenset()  # tls/https endpoints (probable causes)

    def learned_summary(self) -> LogLine | None:
        """The trunks whose first state became known since the last call, by state."""
        if not self.learned:
            return None
        counts, self.learned = self.learned, {}
        return LogLine("info", "trunk_states_learned", dict(sorted(counts.items())))

    def render(self, fmt: ExpositionFormat) -> str:
        """The pipeline's own /metrics section: test calls, whether the agent is suspect, and
        the endpoints."""
        vantage = "" if self.vantage is None else self.vantage.render(fmt)
        endpoints = "" if self.endpoint_metrics is None else self.endpoint_metrics.render(fmt)
        return self.call_metrics.render(fmt) + vantage + endpoints

    def add_calls(
        self,
        profiles: Mapping[str, ThresholdProfile | None],
        policies: Mapping[str, QualityPolicy],
        metrics: CallMetrics,
    ) -> None:
        """The test calls' threshold profiles, quality policies and metrics."""
        self.call_profiles = profiles
        self.quality_policies.update(policies)
        self.call_metrics = metrics

    def add_trunk(self, health: TrunkHealth, policy: HealthPolicy) -> None:
        """Watch one more trunk (a reload); its state starts as `health` says."""
        self.health[health.trunk] = health
        self.policies[health.trunk] = policy
        self.stats.add(health.trunk)

    def remove_trunk(self, trunk: str, now: datetime) -> Produced:
        """Stop watching a trunk (a reload): its open outage and degradation end as
        `removed` (not restored: nobody saw it come back), its state becomes UNKNOWN."""
        health = self.health.pop(trunk)
        out = Produced()
        for interval in (health.open_outage, health.open_degradation):
            if interval is not None:
                out.events.append(OutageClosed(interval.removed(now)))
        if health.state is not TrunkState.UNKNOWN:
            out.events.append(
                TrunkStateChanged(trunk, now, health.state, TrunkState.UNKNOWN, "removed")
            )
        self._transitions(out)
        out.probe_samples += self.sampler.forget(trunk)
        self.policies.pop(trunk, None)
        self.quality_policies.pop(trunk, None)
        self.stats.remove(trunk)
        self.outages_opened.pop(trunk, None)
        return out

    def set_vantage(self, guard: VantageGuard | None) -> None:
        """The suspect rule for a changed set of trunks (a reload), keeping what the last
        one knew of the trunks still watched."""
        old = self.vantage
        if guard is not None and old is not None:
            guard.failing.update((t, at) for t, at in old.failing.items() if t in guard.carriers)
            guard.suspect_since = old.suspect_since
            guard.controls.update(old.controls)
            guard.their_side_since = old.their_side_since
        self.vantage = guard

    def add_endpoints(
        self,
        health: dict[str, TrunkHealth],
        policies: Mapping[str, HealthPolicy],
        metrics: EndpointRecorder,
        certified: frozenset[str] = frozenset(),
    ) -> None:
        """The endpoints' health (shared, live), policies and metrics; `certified` names
        the tls/https ones (their certificate failing is a probable cause)."""
        self.endpoint_health = health
        self.endpoint_policies = dict(policies)
        self.endpoint_metrics = metrics
        self.certified = certified

    def on_result(self, result: ProbeResult, now: datetime) -> Produced | None:
        """What the result produced; None (the usual case) when nothing at all.

        The OPTIONS path allocates nothing when the trunk's state holds: at 10,000 results
        a second an empty `Produced` per result (five objects) cost measurable CPU.
        """
        if result.probe != "options":
            if result.probe == CONTROL_PROBE:
                return self.on_control(result)
            if result.trunk in self.endpoint_health:
                return self._endpoint(result, now)
            out = Produced()
            self._call(result, now, out)
        else:
            trunk = result.trunk
            if trunk in self.registrations.required and result.outcome is Outcome.OK:
                if self.registrations.lost(trunk):
                    detail = "answered, but its required registration is not in force"
                    result = replace(result, outcome=Outcome.UNREGISTERED, detail=detail)
            self.stats.record(result)
            raw = (result.sent_wall_ns, result.outcome.value, result.rtt_ns, result.status_code)
            done = self.sampler.record(trunk, raw)
            vantage = self.vantage
            if vantage is not None and vantage.concerns(trunk, result.outcome):
                return self._vantage(result, now, done)
            events = reduce(self.health[trunk], result, now, self.policies[trunk])
            if done is None and not events:
                return None
            out = Produced(events=list(events), probe_samples=done or [])
        if out.events:
            self._transitions(out)
        return out

    def _vantage(
        self, result: ProbeResult, now: datetime, done: list[ProbeSampleRun] | None
    ) -> Produced | None:
        """The OPTIONS verdict when the agent may be cut off itself (monitor/vantage.py)."""
        guard = self.vantage
        assert guard is not None
        trunk, health = result.trunk, self.health[result.trunk]
        sent_at = utc_from_ns(result.sent_wall_ns)
        logs: list[LogLine] = []
        events: list[Event] = []
        if result.outcome is Outcome.OK:
            gap = guard.answered(trunk, sent_at)
            if gap is not None:
                for other in self.health.values():
                    if other.state is not TrunkState.DOWN:
                        other.fail_streak = 0  # its failures while we were cut off were ours
                events.append(gap)  # logged as monitor_gap (reason vantage_suspect)
        else:
            started = (health.streak_started_at if health.fail_streak else None) or sent_at
            judged = guard.failed(trunk, started, sent_at)
            if judged is not None:
                logs.append(_side_line(guard, judged))
            if guard.suspect:
                # Not the trunk's failure: no streak, no outage, no ticket.
                out = Produced(probe_samples=done or [], logs=logs)
                return out if (done or logs) else None
        events.extend(reduce(health, result, now, self.policies[trunk]))
        if done is None and not events and not logs:
            return None
        out = Produced(events=events, probe_samples=done or [], logs=logs)
        if out.events:
            self._transitions(out)
        return out

    def on_control(self, result: ProbeResult) -> Produced | None:
        """A control target's result (vantage.control_targets): it may tell that every trunk
        failing is the carriers' fault (their outages proceed) or ours (suspect)."""
        guard = self.vantage
        if guard is None:
            return None
        judged = guard.control(result.trunk, result.ok, utc_from_ns(result.sent_wall_ns))
        return None if judged is None else Produced(logs=[_side_line(guard, judged)])

    def _endpoint(self, result: ProbeResult, now: datetime) -> Produced | None:
        """An endpoint's result: health, outages and samples as for a trunk's OPTIONS."""
        if self.endpoint_metrics is not None:
            self.endpoint_metrics.record(result)
        name = result.trunk
        if result.outcome is Outcome.TLS and name in self.certified:
            result = replace(result, detail=mark_customer_certificate(result.detail))
        raw = (result.sent_wall_ns, result.outcome.value, result.rtt_ns, result.status_code)
        done = self.sampler.record(name, raw)
        guard = self.vantage
        if guard is not None and guard.suspect and result.outcome is not Outcome.OK:
            # This agent seems cut off (monitor/vantage.py): not the endpoint's failure either.
            return Produced(probe_samples=done) if done else None
        events = reduce(self.endpoint_health[name], result, now, self.endpoint_policies[name])
        if done is None and not events:
            return None
        out = Produced(events=list(events), probe_samples=done or [])
        if out.events:
            self._transitions(out)
            for event in out.events:
                if isinstance(event, OutageOpened):
                    o = event.outage
                    cause = probable_cause(o.first_outcome, o.detail)
                    if cause is not None:
                        fields = {"trunk": o.trunk, "outage_id": o.id, "cause": cause}
                        out.logs.append(LogLine("warning", "outage_probable_cause", fields))
        return out

    def _call(self, result: ProbeResult, now: datetime, out: Produced) -> None:
        """A test call judges quality (DEGRADED); availability is the OPTIONS probes' job."""
        self.call_metrics.record(result)
        if result.outcome in NOT_THE_TRUNKS_FAULT:
            return
        out.call_samples.append(call_sample(self.agent, result, self.call_profiles))
        health = self.health[result.trunk]
        if health.open_outage is not None:
            return  # the outage already says it; a failing call adds nothing
        verdict = quality_verdict(result)
        if verdict is not None:
            fields: dict[str, object] = {
                "trunk": result.trunk,
                "verdict": verdict,
                "detail": result.detail,
            }
            out.logs.append(LogLine("info", "test_call_below_profile", fields))
        out.events.extend(
            reduce_quality(
                health,
                verdict,
                utc_from_ns(result.sent_wall_ns),
                now,
                self.quality_policies[result.trunk],
            )
        )

    def _transitions(self, out: Produced) -> None:
        out.logs.extend(log_lines(out.events, self.learned))
        for event in out.events:
            if isinstance(event, OutageOpened):
                trunk = event.outage.trunk
                self.outages_opened[trunk] = self.outages_opened.get(trunk, 0) + 1
            if isinstance(event, _TRANSITIONS) and event.trunk is not None:
                out.probe_samples.extend(self.sampler.transition(event.trunk, event.kind, event.at))


def _side_line(guard: VantageGuard, judged: Side) -> LogLine:
    """vantage_suspect (ours), or vantage_their_side (a control target still answers)."""
    fields: dict[str, object] = {
        "trunks": len(guard.carriers),
        "carriers": len(set(guard.carriers.values())),
    }
    if judged is Side.OURS:
        assert guard.suspect_since is not None
        fields["since"] = guard.suspect_since.isoformat()
        fields["control_targets"] = len(guard.controls)
        return LogLine("warning", "vantage_suspect", fields)
    answering = sorted(t for t, at in guard.controls.items() if at is not None)
    fields["answering"] = ",".join(answering)
    return LogLine("warning", "vantage_their_side", fields)


def quality_verdict(result: ProbeResult) -> str | None:
    """None when a test call met its profile; else why not (violated metrics or outcome)."""
    if result.outcome is not Outcome.OK:
        return result.outcome.value  # the call itself failed: busy, no_audio, ...
    call = result.call
    if call is None or not call.violations:
        return None
    return ",".join(sorted({v.metric.value for v in call.violations}))


def _worst(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _jitter(d: MediaDirection | None) -> float | None:
    if d is None:
        return None
    return d.jitter_worst_s if d.jitter_worst_s is not None else d.jitter_s


def call_sample(
    agent: str, result: ProbeResult, profiles: Mapping[str, ThresholdProfile | None]
) -> CallSample:
    """A test call's figures as stored: per direction the worst window the profile judges."""
    call = result.call
    directions = [] if call is None else [d for d in (call.rx, call.tx) if d is not None]
    profile = profiles.get(result.trunk)
    limits: dict[str, float | None] = {}
    if profile is not None:
        limits = {
            Metric.ONE_WAY_LATENCY.value: profile.one_way_latency_s,
            Metric.RTT.value: profile.rtt_s,
            Metric.JITTER.value: profile.jitter_s,
            Metric.LOSS.value: profile.loss_ratio,
            Metric.BURST_LOSS.value: profile.burst_loss_ratio,
        }
    return CallSample(
        agent=agent,
        trunk=result.trunk,
        at=utc_from_ns(result.sent_wall_ns),
        outcome=result.outcome.value,
        mos=None if call is None else call.mos,
        rx_jitter_s=None if call is None else _jitter(call.rx),
        tx_jitter_s=None if call is None else _jitter(call.tx),
        loss_ratio=_worst(
            [
                d.worst_loss_ratio if d.worst_loss_ratio is not None else d.loss_ratio
                for d in directions
            ]
        ),
        burst_loss_ratio=_worst([d.burst_loss_ratio for d in directions]),
        rtt_s=None if call is None else call.rtt_s,
        one_way_latency_s=None if call is None else call.one_way_latency_s,
        violations=() if call is None else tuple(sorted({v.metric.value for v in call.violations})),
        profile=profile.name if profile is not None else (call.profile if call else None),
        limits=limits,
        rtt_source=None if call is None or call.rtt_source is None else call.rtt_source.value,
    )


def log_lines(events: Sequence[Event], learned: dict[str, int] | None = None) -> list[LogLine]:
    """One log line per state change, with stable event names. A trunk's first known state
    (from UNKNOWN: at start-up, after a gap) is only counted in `learned` when given: 10,000
    trunks starting are one summary line (`Pipeline.learned_summary`), not 10,000."""
    lines: list[LogLine] = []
    fields: dict[str, object]
    for event in events:
        if (
            learned is not None
            and isinstance(event, TrunkStateChanged)
            and event.old is TrunkState.UNKNOWN
        ):
            learned[event.new.value] = learned.get(event.new.value, 0) + 1
        elif isinstance(event, TrunkStateChanged):
            fields = {"trunk": event.trunk, "previous": event.old.value, "cause": event.cause}
            lines.append(LogLine("info", f"trunk_{event.new.value}", fields))
        elif isinstance(event, OutageOpened):
            o = event.outage
            fields = {
                "trunk": o.trunk,
                "outage_id": o.id,
                "first_failure_at": o.first_failure_at.isoformat(),
                "confirmed_at": o.confirmed_at.isoformat(),
                "outcome": o.first_outcome,
                "detail": o.detail,
            }
            lines.append(LogLine("warning", f"{o.kind.value}_opened", fields))
        elif isinstance(event, OutageClosed):
            o = event.outage
            assert o.restored_at is not None
            fields = {
                "trunk": o.trunk,
                "outage_id": o.id,
                "first_failure_at": o.first_failure_at.isoformat(),
                "restored_at": o.restored_at.isoformat(),
                "duration_s": round((o.restored_at - o.first_failure_at).total_seconds(), 3),
            }
            # "removed": its trunk left the config; it was not seen to come back.
            ended = "closed" if o.end_cause is None else o.end_cause
            lines.append(LogLine("info", f"{o.kind.value}_{ended}", fields))
        elif isinstance(event, MonitorGap):
            fields = {
                "start": event.start.isoformat(),
                "end": event.end.isoformat(),
                "reason": event.reason,
            }
            lines.append(LogLine("warning", "monitor_gap", fields))
    return lines
