"""The one place that wires config, probes, scheduler, health, store and exporter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from monitor import heap
from monitor.api import ApiDeps, make_api_app
from monitor.certificates import CertificateWatch
from monitor.config import Config
from monitor.endpoints import EndpointWatch
from monitor.events import Event
from monitor.health import TrunkHealth, TrunkPolicies, shared_policy
from monitor.log import MalformedPacketLog, get_logger
from monitor.mass_lines import MassLines
from monitor.metrics.calls import CallMetrics
from monitor.metrics.exporter import Exporter, ExportSources, loop_name, runtime_registry
from monitor.metrics.server import serve_config
from monitor.metrics.sla import SlaMetrics
from monitor.pipeline import Pipeline, Produced
from monitor.probe_settings import options_probes, start_call_probes, target_metrics, trunk_infos
from monitor.registrations import Registrations
from monitor.reload import ReloadReport, reload_monitor
from monitor.scheduler import Scheduler
from monitor.secrets import SecretsNotRead
from monitor.shutdown import stop_in_phases
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.sla.service import SlaContext
from monitor.store import Store, resume
from monitor.store.samples import CallSample, ProbeSample, insert_samples
from monitor.store.writer import JournalWriter
from monitor.tickets.service import TicketService
from probes.options import MalformedCounter, SharedUdp
from probes.result import ProbeResult

if TYPE_CHECKING:
    from probes.pjsua.pool import WorkerPool

log = get_logger("trunkwatch")

# How often this agent tells the store it is alive: the bound on how much of a crash's
# unknown time is attributed to "monitor not running" rather than known state.
HEARTBEAT_S = 10.0
_READERS = ("sla-metrics", "certificates", "control-targets")  # tasks cancelled at once at stop


class Monitor:
    """A running trunkwatch agent: `await start()`, then `await stop()`."""

    def __init__(self, config: Config, *, http_port: int | None = None) -> None:
        if not config.secrets_read:
            raise SecretsNotRead("the monitor needs a config loaded with its secrets")
        self.config = config.watching()  # its own trunks; the quorum and tickets see all
        self.http_port = config.http.port if http_port is None else http_port
        self.store: Store | None = None
        self.health: dict[str, TrunkHealth] = {}
        self.pipeline = Pipeline(config.agent, {}, {})
        self.gaps_recorded = 0
        # A flood of garbage must not flood the log: 10 lines a minute per kind.
        self.malformed = MalformedCounter(on_malformed=MalformedPacketLog(log))
        self.udp: SharedUdp | None = None
        self.call_pool: WorkerPool | None = None
        self.call_metrics = CallMetrics({}, agent=config.agent)
        self.scheduler: Scheduler | None = None
        self.exporter: Exporter | None = None
        self.maintenance = MaintenanceCalendar((s.name, s.parts) for s in config.sla.services)
        self.endpoints = EndpointWatch(self.config)  # https/tcp/tls/icmp, probed like trunks
        self.tickets = TicketService.from_config(config, self.maintenance.covers)
        self.certificates = CertificateWatch.from_config(self.config)
        self.registrations = Registrations(self.config.trunks, agent=config.agent)
        self.sla: SlaContext | None = None
        self.sla_metrics: SlaMetrics | None = None
        self.runner: web.AppRunner | None = None
        self.bound_port = 0
        self.writer = JournalWriter(self._append, self._insert_samples)
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False
        self.reload_lock = asyncio.Lock()
        self.mass_lines = MassLines()

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        with heap.gc_paused():  # one collection at the end, not one per million objects
            await self._start()
        heap.settle()
        self._ready = True
        cfg, url = self.config, f"http://{self.config.http.listen}:{self.bound_port}/metrics"
        fields = {"agent": cfg.agent, "trunks": len(cfg.trunks), "loop": loop_name()}
        log.info("monitor_started", metrics=url, **fields)

    async def _start(self) -> None:
        cfg = self.config
        self.store = await Store.open(
            cfg.store.url, agent=cfg.agent, site=cfg.site, views=cfg.cluster.enabled
        )
        now = datetime.now(UTC)
        gaps_before = len(await self.store.gaps())
        known = await resume(self.store, now)
        self.gaps_recorded = len(await self.store.gaps()) - gaps_before
        for t in cfg.trunks:
            self.health[t.name] = known.get(t.name) or TrunkHealth(t.name)
        policies = TrunkPolicies.of(
            (t.name, shared_policy(t.down_after, t.up_after)) for t in cfg.trunks
        )
        vantage = cfg.vantage.guard(cfg.agent, {t.name: t.carrier for t in cfg.trunks})
        self.pipeline = Pipeline(cfg.agent, self.health, policies, vantage=vantage)
        self.pipeline.registrations = self.registrations

        self.udp = await SharedUdp.open(self.malformed, rcvbuf=cfg.scheduler.udp_rcvbuf)
        scheduled = self.endpoints.attach(self.pipeline, known)
        scheduled += options_probes(self.udp, cfg.trunks, cfg.dns.resolver())
        await self.registrations.start()  # they refresh themselves; a REGISTER is no probe
        calls = await start_call_probes(cfg)
        self.call_pool = calls.pool
        scheduled += calls.scheduled
        self.call_metrics = CallMetrics(calls.profiles, agent=cfg.agent)
        self.pipeline.add_calls(calls.profiles, calls.quality_policies, self.call_metrics)
        limit, drain = cfg.in_flight_limit(len(scheduled)), self.udp.drain  # answers first
        self.scheduler = Scheduler(
            scheduled, self._on_result, max_in_flight=limit, before_tick=drain
        )

        self.sla = SlaContext(self.store, cfg.sla)
        self.sla_metrics = SlaMetrics(self.sla)
        await self.sla_metrics.refresh_maintenance(self.maintenance)
        # After the windows are known: a ticket owed from before a restart may be held.
        await self.tickets.start(self.store)
        self.scheduler.start()  # first probes before the exporter and HTTP are built
        self._register_metrics(self.sla_metrics)
        assert self.exporter is not None
        await self.exporter.prepare_sliced()  # while the first probes go out
        live = lambda: self.endpoints.live_states(self.health)  # noqa: E731
        deps = ApiDeps.from_config(self.sla, cfg.http, cfg.sla, live_state=live, reload=self.reload)
        api = make_api_app(deps)
        self.runner, self.bound_port = await serve_config(
            cfg.http, self.exporter, lambda: self._ready, api, port=self.http_port
        )
        self._tasks.append(asyncio.create_task(self.writer.run(), name="journal-writer"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
        controls = [c.run() for c in cfg.vantage.control_loops(self._on_result)]  # them or us?
        jobs = [self.sla_metrics.run(self.maintenance), self.certificates.run(), *controls]
        for name, job in zip(_READERS, jobs, strict=False):
            self._tasks.append(asyncio.create_task(job, name=name))

    async def stop(self) -> None:
        self._ready = False
        took = await stop_in_phases(self, self._tasks, readers=_READERS)
        heap.thaw()
        log.info("monitor_stopped", agent=self.config.agent, stop_s=took)

    # ---- the hot path's consumer ---------------------------------------------------------

    def _on_result(self, result: ProbeResult) -> None:
        out = self.pipeline.on_result(result, datetime.now(UTC))
        if out is not None:
            self.emit(out)

    def emit(self, out: Produced) -> None:
        """Log, journal and ticket what the pipeline produced."""
        for line in filter(self.mass_lines.admit, out.logs):  # a mass event: counted instead
            getattr(log, line.level)(line.event, **line.fields)
        self.writer.queue_samples(out.probe_samples, out.call_samples)
        if out.events:
            self.writer.queue(out.events)
            self.tickets.on_events(out.events)

    async def reload(self) -> ReloadReport:
        """SIGHUP, `trunkwatch reload`, POST /api/v1/reload: the config file applied again."""
        return await reload_monitor(self)

    async def _append(self, batch: Sequence[Event]) -> None:
        assert self.store is not None
        await self.tickets.append(self.store, batch)  # journal + ticket requests: one transaction

    async def _insert_samples(
        self, probes: Sequence[ProbeSample], calls: Sequence[CallSample]
    ) -> None:
        assert self.store is not None
        await insert_samples(self.store.engine, probes, calls)

    async def _heartbeat_loop(self) -> None:
        while True:  # at least one beat: a stop right after start still logs its summaries
            assert self.store is not None
            try:
                await self.store.heartbeat(datetime.now(UTC))
            except Exception as exc:
                log.error("heartbeat_failed", error=repr(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.writer.stopping.wait(), HEARTBEAT_S)
            for line in filter(None, (self.pipeline.learned_summary(), self.mass_lines.summary())):
                getattr(log, line.level)(line.event, **line.fields)  # one per beat, and at stop
            if self.writer.stopping.is_set():
                return

    def _register_metrics(self, sla_metrics: SlaMetrics) -> None:
        sections = [self.pipeline.render, self.tickets.metrics_section(), sla_metrics.render]
        sections.append(target_metrics(self.scheduler, self.config.agent))  # RFC 3263 targets
        sources = ExportSources(
            agent=self.config.agent,
            loop_name=loop_name(),
            trunks=trunk_infos(self.config.trunks),
            stats=self.pipeline.stats,
            health=self.health,
            scheduler=self.scheduler,
            malformed=self.malformed,
            outages_opened=self.pipeline.outages_opened,
            store_pending=lambda: len(self.writer.pending),
            store_errors=lambda: self.writer.errors,
            gaps_recorded=lambda: self.gaps_recorded,
            samples_dropped=lambda: self.writer.samples_dropped,
            sections=[*sections, self.certificates.render, self.registrations.render],
        )
        self.exporter = Exporter(sources, runtime=runtime_registry(), prepare=False)
