"""The one place that wires config, probes, scheduler, health, store and exporter."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from monitor.api import ApiDeps, make_api_app
from monitor.call_metrics import CallMetrics
from monitor.config import CallsSettings, Config, TrunkConfig
from monitor.events import Event, MonitorGap, OutageClosed, OutageOpened, TrunkStateChanged
from monitor.exporter import (
    Exporter,
    ExportSources,
    ExtraGauge,
    TrunkInfo,
    loop_name,
    runtime_registry,
)
from monitor.health import HealthPolicy, QualityPolicy, TrunkHealth, reduce, reduce_quality
from monitor.log import RateLimitedLog, get_logger, truncate_untrusted
from monitor.maintenance import ALL_SERVICES, MaintenanceWindow, occurrences
from monitor.scheduler import Scheduler
from monitor.secrets import SecretsNotRead
from monitor.server import make_app, serve
from monitor.service_sla import SlaContext
from monitor.sla_metrics import METRICS as SLA_METRICS
from monitor.sla_metrics import REFRESH_INTERVAL_S as SLA_REFRESH_S
from monitor.sla_metrics import SlaMetrics
from monitor.stats import ProbeStats
from monitor.store import Store, resume
from monitor.store.samples import CallSample, ProbeSample, insert_samples
from monitor.tickets.service import TicketService
from monitor.transition_samples import TransitionSampler
from probes.clock import utc_from_ns
from probes.options import MalformedCounter, OptionsSettings, SharedUdp
from probes.probe import Probe
from probes.result import NOT_THE_TRUNKS_FAULT, MediaDirection, Outcome, ProbeResult

if TYPE_CHECKING:
    from probes.call import CallSettings
    from probes.media.thresholds import ThresholdProfile
    from probes.pjsua.pool import WorkerPool

log = get_logger("trunkwatch")

# How often this agent tells the store it is alive: the bound on how much of a crash's
# unknown time is attributed to "monitor not running" rather than known state.
HEARTBEAT_S = 10.0
# Journal write retry backoff (seconds): a locked or unreachable database loses nothing.
WRITE_RETRY_MIN_S = 0.5
WRITE_RETRY_MAX_S = 30.0
# Sample rows held while the database is unreachable; past this the oldest are dropped
# (logged): samples are evidence detail, the journal is what must never be lost.
MAX_PENDING_SAMPLES = 20_000
# The events that keep the probe samples around them (monitor/transition_samples.py).
# Samples are kept around the opening and closing of outages and degradations: the
# UNKNOWN -> UP of every trunk at start-up is no evidence, and capturing it for 10,000
# trunks at once stalled the probe loop (measured: lateness p99 349 ms).
_TRANSITIONS = (OutageOpened, OutageClosed)


def call_settings(trunk: TrunkConfig, calls: CallsSettings) -> CallSettings:
    """The call probe's settings from a trunk's `call:` (credentials: the trunk's `auth`)."""
    from probes.call import CallSettings

    call, auth = trunk.call, trunk.auth
    assert call is not None
    return CallSettings(
        trunk=trunk.name,
        uri=call.uri,
        codecs=call.codecs,
        max_call_s=call.max_call,
        answer_timeout_s=call.answer_timeout,
        from_uri=call.from_uri,
        username=auth.username if auth else None,
        password=auth.password.get_secret_value() if auth else None,
        realm=auth.realm if auth else None,
        registrar=call.registrar,
        proxy=call.proxy,
        expect_tone=call.expect_tone,
        profile=calls.profile(call.profile),
    )


def options_settings(trunk: TrunkConfig) -> OptionsSettings:
    auth = trunk.auth
    return OptionsSettings(
        trunk=trunk.name,
        uri=trunk.uri,
        timeout=trunk.timeout,
        alive_codes=trunk.alive_codes,
        from_uri=trunk.from_uri,
        user_agent=trunk.user_agent,
        max_forwards=trunk.max_forwards,
        username=auth.username if auth else None,
        password=auth.password.get_secret_value() if auth else None,
        tls_verify=trunk.tls.verify,
        tls_ca_file=trunk.tls.ca_file,
        tls_server_name=trunk.tls.server_name,
        tls_cert_file=trunk.tls.cert_file,
        tls_key_file=trunk.tls.key_file,
    )


@dataclass(slots=True)
class _Writer:
    """Journal events queued in memory and written in batches, retried until stored."""

    pending: list[Event] = field(default_factory=list)
    probe_samples: list[ProbeSample] = field(default_factory=list)
    call_samples: list[CallSample] = field(default_factory=list)
    errors: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Monitor:
    """A running trunkwatch agent: `await start()`, then `await stop()`."""

    def __init__(self, config: Config, *, http_port: int | None = None) -> None:
        if not config.secrets_read:
            raise SecretsNotRead("the monitor needs a config loaded with its secrets")
        self.config = config
        self.http_port = config.http.port if http_port is None else http_port
        self.store: Store | None = None
        self.health: dict[str, TrunkHealth] = {}
        self.policies: dict[str, HealthPolicy] = {}
        self.stats: dict[str, ProbeStats] = {}
        self.outages_opened: dict[str, int] = {}
        self.gaps_recorded = 0
        self.malformed = MalformedCounter(on_malformed=self._log_malformed)
        self.udp: SharedUdp | None = None
        self.call_pool: WorkerPool | None = None
        self.call_metrics = CallMetrics({})
        self.quality_policies: dict[str, QualityPolicy] = {}
        self.probes: list[Probe] = []
        self.scheduler: Scheduler | None = None
        self.exporter: Exporter | None = None
        self.tickets = TicketService(
            config.tickets,
            [(t.name, t.carrier) for t in config.trunks],
            in_maintenance=self._in_maintenance,
        )
        self._maintenance: list[MaintenanceWindow] = []
        # Which services each trunk is part of: maintenance windows name services.
        self._services_of: dict[str, set[str]] = {}
        for service in config.sla.services:
            for part in service.parts:
                self._services_of.setdefault(part, set()).add(service.name)
        self.sla: SlaContext | None = None
        self.sla_metrics: SlaMetrics | None = None
        self.runner: web.AppRunner | None = None
        self.bound_port = 0
        self._writer = _Writer()
        self.sampler = TransitionSampler(config.agent)
        self._call_profiles: dict[str, ThresholdProfile | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._ready = False
        # A flood of garbage must not flood the log: 10 lines a minute per kind.
        self._malformed_log = RateLimitedLog(log)
        self._samples_log = RateLimitedLog(log)

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self.store = await Store.open(cfg.store.url, agent=cfg.agent)
        now = datetime.now(UTC)
        gaps_before = len(await self.store.gaps())
        restored = await resume(self.store, now)
        self.gaps_recorded = len(await self.store.gaps()) - gaps_before
        for gap in (await self.store.gaps())[gaps_before:]:
            log.warning("monitor_gap", start=gap.start.isoformat(), end=gap.end.isoformat())
        for trunk in cfg.trunks:
            self.health[trunk.name] = restored.get(trunk.name) or TrunkHealth(trunk.name)
            self.policies[trunk.name] = HealthPolicy(trunk.down_after, trunk.up_after)
            self.stats[trunk.name] = ProbeStats(trunk.name, "options")
            outage = self.health[trunk.name].open_outage
            if outage is not None:
                log.info("outage_resumed", trunk=trunk.name, outage_id=outage.id)

        self.udp = await SharedUdp.open(self.malformed, rcvbuf=cfg.scheduler.udp_rcvbuf)
        scheduled: list[tuple[Probe, float]] = []
        for trunk in cfg.trunks:
            probe = self.udp.probe(options_settings(trunk))
            self.probes.append(probe)
            scheduled.append((probe, trunk.interval))
        scheduled += await self._call_probes()
        self.scheduler = Scheduler(
            scheduled, self._on_result, max_in_flight=cfg.scheduler.max_in_flight
        )

        self.sla = SlaContext(self.store, cfg.sla)
        await self._refresh_maintenance()
        # After the windows are known: a ticket owed from before a restart may be held.
        await self.tickets.start(self.store)
        self.sla_metrics = SlaMetrics(self.sla)
        self._register_metrics()
        assert self.exporter is not None
        app = make_app(self.exporter, lambda: self._ready)
        api_token = cfg.sla.api_token(os.environ)
        app.add_subapp(
            "/api/v1",
            make_api_app(
                ApiDeps(
                    self.sla,
                    api_token,
                    live_state=lambda: {n: h.state.value for n, h in self.health.items()},
                )
            ),
        )
        self.runner, self.bound_port = await serve(app, cfg.http.listen, self.http_port)

        self._tasks.append(asyncio.create_task(self._write_loop(), name="journal-writer"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
        self._tasks.append(asyncio.create_task(self._sla_metrics_loop(), name="sla-metrics"))
        self.scheduler.start()
        # Everything allocated so far lives for the whole run: keep it out of GC scans.
        gc.collect()
        gc.freeze()
        self._ready = True
        log.info(
            "monitor_started",
            agent=cfg.agent,
            trunks=len(cfg.trunks),
            metrics=f"http://{cfg.http.listen}:{self.bound_port}/metrics",
            loop=loop_name(),
        )

    async def _call_probes(self) -> list[tuple[Probe, float]]:
        """G.711 test calls on a pool of pjsua2 worker processes, for trunks with `call:`."""
        cfg = self.config
        trunks = [t for t in cfg.trunks if t.call is not None]
        if not trunks:
            return []
        from probes.call import CallProbe
        from probes.pjsua.pool import PoolSettings, WorkerPool

        calls = cfg.calls
        self.call_pool = WorkerPool(
            PoolSettings(
                max_calls=calls.max_calls,
                sip_address=calls.sip_address,
                sip_port=calls.sip_port,
                media_address=calls.media_address,
                rtp_port_min=calls.rtp_port_min,
                user_agent=f"trunkwatch/{cfg.agent}",
            )
        )
        await self.call_pool.start()
        self.call_metrics = CallMetrics({t.name: calls.profile(t.call.profile) for t in trunks})  # type: ignore[union-attr]
        scheduled: list[tuple[Probe, float]] = []
        for trunk in trunks:
            assert trunk.call is not None
            self.quality_policies[trunk.name] = QualityPolicy(
                trunk.call.degrade_after, trunk.call.recover_after
            )
            self._call_profiles[trunk.name] = calls.profile(trunk.call.profile)
            probe = CallProbe(call_settings(trunk, calls), self.call_pool)
            self.probes.append(probe)
            scheduled.append((probe, trunk.call.interval))
        return scheduled

    async def stop(self) -> None:
        self._ready = False
        if self.scheduler is not None:
            self.scheduler.stop()
        for probe in self.probes:
            await probe.close()
        if self.call_pool is not None:
            await self.call_pool.stop()
            self.call_pool = None
        if self.udp is not None:
            self.udp.close()
        # The writer and the heartbeat end between writes: a task cancelled inside a write
        # transaction keeps SQLite's write lock until its connection is collected, and the
        # final writes below would time out on it ("database is locked").
        self._stopping.set()
        self._writer.wake.set()
        for task in self._tasks:
            if task.get_name() == "sla-metrics":
                task.cancel()  # reads only
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.store is not None:
            await self._flush(final=True)
            self._queue_samples(self.sampler.drain(), ())
            await self._flush_samples()
            await self.tickets.stop()
            await self.store.heartbeat(datetime.now(UTC))
            await self.store.close()
            self.store = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        gc.unfreeze()
        log.info("monitor_stopped", agent=self.config.agent)

    # ---- the hot path's consumer ---------------------------------------------------------

    def _on_result(self, result: ProbeResult) -> None:
        if result.probe != "options":
            self._on_call_result(result)
            return
        self.stats[result.trunk].record(result)
        done = self.sampler.record(
            result.trunk,
            (result.sent_wall_ns, result.outcome.value, result.rtt_ns, result.status_code),
        )
        if done is not None:
            self._queue_samples(done, ())
        events = reduce(
            self.health[result.trunk],
            result,
            datetime.now(UTC),
            self.policies[result.trunk],
        )
        if events:
            self._emit(events)

    def _on_call_result(self, result: ProbeResult) -> None:
        """A test call judges quality (DEGRADED); availability is the OPTIONS probes' job."""
        self.call_metrics.record(result)
        if result.outcome in NOT_THE_TRUNKS_FAULT:
            return
        self._queue_samples((), (_call_sample(self.config.agent, result, self._call_profiles),))
        health = self.health[result.trunk]
        if health.open_outage is not None:
            return  # the outage already says it; a failing call adds nothing
        verdict = _quality_verdict(result)
        if verdict is not None:
            log.info(
                "test_call_below_profile", trunk=result.trunk, verdict=verdict, detail=result.detail
            )
        events = reduce_quality(
            health,
            verdict,
            utc_from_ns(result.sent_wall_ns),
            datetime.now(UTC),
            self.quality_policies[result.trunk],
        )
        if events:
            self._emit(events)

    def _emit(self, events: Sequence[Event]) -> None:
        for event in events:
            _log_event(event)
            if isinstance(event, OutageOpened):
                trunk = event.outage.trunk
                self.outages_opened[trunk] = self.outages_opened.get(trunk, 0) + 1
            if isinstance(event, _TRANSITIONS) and event.trunk is not None:
                before = self.sampler.transition(event.trunk, event.kind, event.at)
                self._queue_samples(before, ())
        self._writer.pending.extend(events)
        self._writer.wake.set()
        self.tickets.on_events(events)

    # ---- background tasks ------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while not self._stopping.is_set():
            await self._writer.wake.wait()
            self._writer.wake.clear()
            await self._flush()
            await self._flush_samples()

    def _queue_samples(self, probes: Sequence[ProbeSample], calls: Sequence[CallSample]) -> None:
        w = self._writer
        w.probe_samples.extend(probes)
        w.call_samples.extend(calls)
        excess = len(w.probe_samples) + len(w.call_samples) - MAX_PENDING_SAMPLES
        if excess > 0:
            self._samples_log.error("samples_dropped", now_ns=time.monotonic_ns(), count=excess)
            dropped = min(excess, len(w.probe_samples))
            del w.probe_samples[:dropped]
            del w.call_samples[: excess - dropped]
        w.wake.set()

    async def _flush_samples(self) -> None:
        """One batch; on failure the rows stay queued for the next wake-up."""
        w = self._writer
        probes, calls = list(w.probe_samples), list(w.call_samples)
        if self.store is None or not (probes or calls):
            return
        try:
            await insert_samples(self.store.engine, probes, calls)
        except Exception as exc:
            w.errors += 1
            log.error("samples_write_failed", error=repr(exc)[:200], pending=len(probes + calls))
            return
        del w.probe_samples[: len(probes)]
        del w.call_samples[: len(calls)]

    async def _flush(self, *, final: bool = False) -> None:
        """Write what is pending; on failure keep it and retry with backoff (loses nothing)."""
        delay = WRITE_RETRY_MIN_S
        while self._writer.pending and self.store is not None:
            batch = list(self._writer.pending)
            try:
                # The journal and the tickets those events owe: one transaction.
                await self.tickets.append(self.store, batch)
            except Exception as exc:
                self._writer.errors += 1
                log.error("journal_write_failed", error=repr(exc)[:200], pending=len(batch))
                if final or self._stopping.is_set():  # stop() makes the last try
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX_S)
                continue
            del self._writer.pending[: len(batch)]

    async def _heartbeat_loop(self) -> None:
        while not self._stopping.is_set():
            assert self.store is not None
            try:
                await self.store.heartbeat(datetime.now(UTC))
            except Exception as exc:
                log.error("heartbeat_failed", error=repr(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), HEARTBEAT_S)

    async def _sla_metrics_loop(self) -> None:
        # The SLA gauges come from the same computation as the reports, at their own pace;
        # maintenance windows are re-read with them (the API and CLI may add some).
        assert self.sla_metrics is not None
        while True:
            await self._refresh_maintenance()
            await self.sla_metrics.refresh(datetime.now(UTC))
            await asyncio.sleep(SLA_REFRESH_S)

    async def _refresh_maintenance(self) -> None:
        assert self.sla is not None
        try:
            self._maintenance = await self.sla.ledger.windows(include_cancelled=False)
        except Exception as exc:  # keep the last list; tickets must not stop on this
            log.error("maintenance_refresh_failed", error=repr(exc)[:200])

    def _in_maintenance(self, trunk: str, at: datetime) -> bool:
        """In memory (the outbox asks about every held ticket each second): no ticket is
        opened inside a window of a service the trunk is part of."""
        services = self._services_of.get(trunk, set())
        for window in self._maintenance:
            if window.cancelled:
                continue
            if ALL_SERVICES in window.services or services & set(window.services):
                if occurrences(window, at, at + timedelta(microseconds=1)):
                    return True
        return False

    def _sla_gauges(self) -> tuple[ExtraGauge, ...]:
        if self.sla_metrics is None:
            return ()
        return tuple(
            ExtraGauge(s.name, SLA_METRICS[s.name], s.labels, s.value)
            for s in self.sla_metrics.samples()
        )

    # ---- metrics and logs -------------------------------------------------------------------

    def _register_metrics(self) -> None:
        cfg = self.config
        sources = ExportSources(
            agent=cfg.agent,
            loop_name=loop_name(),
            trunks=[TrunkInfo(t.name, t.carrier, _transport_of(t.uri)) for t in cfg.trunks],
            stats=list(self.stats.values()),
            health=self.health,
            scheduler=self.scheduler,
            malformed=self.malformed,
            outages_opened=self.outages_opened,
            store_pending=lambda: len(self._writer.pending),
            store_errors=lambda: self._writer.errors,
            gaps_recorded=lambda: self.gaps_recorded,
            gauges=self._sla_gauges,
            families=self.call_metrics.render,
        )
        runtime = runtime_registry()
        runtime.register(self.tickets.collector())
        self.exporter = Exporter(sources, runtime=runtime)

    def _log_malformed(self, kind: str, data: bytes, addr: tuple[str, int] | None) -> None:
        self._malformed_log.warning(
            "sip_malformed_packet",
            now_ns=time.monotonic_ns(),
            key=kind,
            kind=kind,
            peer=f"{addr[0]}:{addr[1]}" if addr else None,
            size=len(data),
            head=truncate_untrusted(data),
        )


def _quality_verdict(result: ProbeResult) -> str | None:
    """None when a test call met its profile; else why not (violated metrics or outcome)."""
    if result.outcome is not Outcome.OK:
        return result.outcome.value  # the call itself failed: busy, no_audio, ...
    call = result.call
    if call is None or not call.violations:
        return None
    return ",".join(sorted({v.metric.value for v in call.violations}))


def _call_sample(
    agent: str, result: ProbeResult, profiles: dict[str, ThresholdProfile | None]
) -> CallSample:
    """A test call's figures as stored: per direction the worst window the profile judges."""
    from probes.media.thresholds import Metric

    call = result.call
    directions = [] if call is None else [d for d in (call.rx, call.tx) if d is not None]

    def worst(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    def jitter(d: MediaDirection | None) -> float | None:
        if d is None:
            return None
        return d.jitter_worst_s if d.jitter_worst_s is not None else d.jitter_s

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
        rx_jitter_s=None if call is None else jitter(call.rx),
        tx_jitter_s=None if call is None else jitter(call.tx),
        loss_ratio=worst(
            [
                d.worst_loss_ratio if d.worst_loss_ratio is not None else d.loss_ratio
                for d in directions
            ]
        ),
        burst_loss_ratio=worst([d.burst_loss_ratio for d in directions]),
        rtt_s=None if call is None else call.rtt_s,
        one_way_latency_s=None if call is None else call.one_way_latency_s,
        violations=() if call is None else tuple(sorted({v.metric.value for v in call.violations})),
        profile=profile.name if profile is not None else (call.profile if call else None),
        limits=limits,
    )


def _transport_of(uri: str) -> str:
    from probes.sip.uri import SipUri

    return SipUri.parse(uri).transport


def _log_event(event: Event) -> None:
    if isinstance(event, TrunkStateChanged):
        log.info(
            f"trunk_{event.new.value}",
            trunk=event.trunk,
            previous=event.old.value,
            cause=event.cause,
        )
    elif isinstance(event, OutageOpened):
        o = event.outage
        log.warning(
            f"{o.kind.value}_opened",
            trunk=o.trunk,
            outage_id=o.id,
            first_failure_at=o.first_failure_at.isoformat(),
            confirmed_at=o.confirmed_at.isoformat(),
            outcome=o.first_outcome,
            detail=o.detail,
        )
    elif isinstance(event, OutageClosed):
        o = event.outage
        assert o.restored_at is not None
        log.info(
            f"{o.kind.value}_closed",
            trunk=o.trunk,
            outage_id=o.id,
            first_failure_at=o.first_failure_at.isoformat(),
            restored_at=o.restored_at.isoformat(),
            duration_s=round((o.restored_at - o.first_failure_at).total_seconds(), 3),
        )
    elif isinstance(event, MonitorGap):
        log.warning("monitor_gap", start=event.start.isoformat(), end=event.end.isoformat())
