"""Reload without a restart (SIGHUP, `trunkwatch reload`, POST /api/v1/reload).

At 100,000 trunks a restart costs a minute of unknown time. A reload validates the config
file again first: when it is invalid the running config stays and the problem is logged and
returned. When valid, trunks are added, removed (their open outages end as `removed`, not
as restored) or changed in place: untouched trunks keep their schedule (no probe skipped),
changed ones keep their state and open outage. Sections a running agent cannot swap (its
name, store, listener, scheduler, vantage rule and control targets, DNS, cluster, test
calls, endpoints, ticket sinks) are reported as needing a restart and keep running
as they were.

`trunk_changes` and `restart_required` are pure; `apply` does the swapping.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from monitor.certificates import targets as certificate_targets
from monitor.config import Config, ConfigError, TrunkConfig, load_config
from monitor.events import OutageClosed
from monitor.health import TrunkHealth, shared_policy
from monitor.log import get_logger
from monitor.pipeline import Produced
from monitor.probe_settings import options_probes, trunk_infos
from monitor.scheduler import Scheduled

if TYPE_CHECKING:
    from monitor.app import Monitor

log = get_logger("trunkwatch.reload")
T = TypeVar("T")

# Whole sections a running agent keeps until it restarts.
RESTART_SECTIONS: Final = (
    "agent", "site", "store", "http", "scheduler", "vantage", "dns", "cluster", "calls",
    "endpoints",
)  # fmt: skip
# Trunks added, removed or changed between two turns of the probe loop: ~1 ms of work.
SLICE: Final = 500
OPTIONS: Final = frozenset({"options"})
# The ticket sinks and their delivery are built once, at start.
TICKETS_RESTART: Final = ("sinks", "outbox", "language", "timezone")
# What a trunk's OPTIONS probe is made of: a change means a new probe (same state).
PROBE_FIELDS: Final = (
    "uri", "interval", "timeout", "alive_codes", "from_uri", "user_agent", "max_forwards",
    "auth", "tls", "targets",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TrunkChanges:
    """How the new config's trunks differ from the running ones."""

    added: tuple[TrunkConfig, ...] = ()
    removed: tuple[str, ...] = ()
    reprobed: tuple[TrunkConfig, ...] = ()  # their probe changed (URI, interval, timeout...)
    retuned: tuple[TrunkConfig, ...] = ()  # only policy or labels (down_after, carrier...)
    unchanged: int = 0

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.reprobed or self.retuned)


def trunk_changes(old: Sequence[TrunkConfig], new: Sequence[TrunkConfig]) -> TrunkChanges:
    """Added, removed, changed and unchanged trunks, by name (new config order)."""
    before = {t.name: t for t in old}
    names = {t.name for t in new}
    added: list[TrunkConfig] = []
    reprobed: list[TrunkConfig] = []
    retuned: list[TrunkConfig] = []
    unchanged = 0
    for trunk in new:
        was = before.get(trunk.name)
        if was is None:
            added.append(trunk)
        elif was == trunk:
            unchanged += 1
        elif any(getattr(was, f) != getattr(trunk, f) for f in PROBE_FIELDS):
            reprobed.append(trunk)
        else:
            retuned.append(trunk)
    removed = tuple(t.name for t in old if t.name not in names)
    return TrunkChanges(tuple(added), removed, tuple(reprobed), tuple(retuned), unchanged)


async def _slices(items: Sequence[T]) -> AsyncIterator[Sequence[T]]:
    """`items` a slice at a time, with a turn of the event loop between slices."""
    for start in range(0, len(items), SLICE):
        if start:
            await asyncio.sleep(0)
        yield items[start : start + SLICE]


def restart_required(old: Config, new: Config, trunks: Sequence[TrunkConfig]) -> list[str]:
    """What changed that only a restart applies (config paths, in file order); `trunks`:
    the new config's trunks this agent probes."""
    out = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]
    for part in TICKETS_RESTART:
        if getattr(old.tickets, part) != getattr(new.tickets, part):
            out.append(f"tickets.{part}")
    calls = {t.name: t.call for t in old.trunks}
    for trunk in trunks:
        if trunk.call is not None and calls.get(trunk.name) != trunk.call:
            out.append(f"trunks[{trunk.name}].call")  # test calls start at the next restart
    return out


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a reload did, or why it did nothing (`error`: the running config stays)."""

    source: str
    ok: bool
    error: str | None = None
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    outages_removed: tuple[str, ...] = ()  # ids of the open outages ended as `removed`
    restart_required: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "error": self.error,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "outages_removed": list(self.outages_removed),
            "restart_required": list(self.restart_required),
        }


async def reload_monitor(monitor: Monitor) -> ReloadReport:
    """Read the monitor's config file again and apply it (one reload at a time)."""
    source = monitor.config.source
    async with monitor.reload_lock:
        started = time.monotonic()
        loaded_config, error, problems = await _load(source)
        if loaded_config is None:
            log.error("reload_refused", config=source, problems=problems)
            return ReloadReport(source, ok=False, error=error)
        new = loaded_config
        loaded = time.monotonic()
        report = await apply(monitor, new)
        fields = {k: v for k, v in report.to_dict().items() if k != "error"}
        load_s, apply_s = round(loaded - started, 3), round(time.monotonic() - loaded, 3)
        log.info("config_reloaded", load_s=load_s, apply_s=apply_s, **fields)
        if report.restart_required:
            log.warning("reload_needs_restart", config=source, changes=report.restart_required)
        return report


def _load_here(source: str) -> tuple[bytes | None, str | None, int]:
    """Read and validate the file; the config pickled, or the problems (ConfigError itself
    does not survive pickling: its message would be split into characters)."""
    try:
        return pickle.dumps(load_config(source)), None, 0
    except ConfigError as exc:
        return None, str(exc), len(exc.problems)


async def _load(source: str) -> tuple[Config | None, str | None, int]:
    """The config file read and validated in a process of its own: in a thread it would
    hold the GIL for seconds at 100,000 trunks and starve the probe loop (measured: the
    probes skipped around a reload of 10,000 trunks)."""
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        blob, error, problems = await loop.run_in_executor(pool, _load_here, source)
    except (OSError, BrokenProcessPool) as exc:  # no child process here: the thread will do
        log.warning("reload_in_thread", error=repr(exc)[:200])
        blob, error, problems = await asyncio.to_thread(_load_here, source)
    finally:
        pool.shutdown(wait=False)
    if blob is None:
        return None, error, problems
    return await asyncio.to_thread(pickle.loads, blob), None, 0


async def apply(monitor: Monitor, new: Config) -> ReloadReport:
    """Swap `new` (validated, with its secrets) into the running monitor, a slice of trunks
    at a time: the probe loop runs between slices (100,000 trunks must not stall it)."""
    old = monitor.config
    # The running agent's own sections stay; its trunks are the ones it probes.
    kept = {s: getattr(old, s) for s in RESTART_SECTIONS}
    running = new.model_copy(update=kept)
    mine = running.watching()
    pending = restart_required(old, new, mine.trunks)
    if any(p.startswith("tickets.") for p in pending):
        running = running.model_copy(update={"tickets": old.tickets})
        mine = running.watching()
    changes = await asyncio.to_thread(trunk_changes, old.trunks, mine.trunks)
    pipeline, scheduler, udp = monitor.pipeline, monitor.scheduler, monitor.udp
    assert scheduler is not None and udp is not None
    now = datetime.now(UTC)
    resolver = old.dns.resolver()

    gone: list[Scheduled] = []
    removed = Produced()
    async for names in _slices(changes.removed):
        gone += scheduler.remove(set(names))
        for name in names:
            out = pipeline.remove_trunk(name, now)
            removed.events += out.events
            removed.probe_samples += out.probe_samples
            removed.logs += out.logs
    pipeline.stats.compact()  # new columns: a sliced snapshot keeps reading the old ones
    async for trunks in _slices(changes.reprobed):
        before = {
            i.probe.trunk: i for i in scheduler.remove({t.name for t in trunks}, kinds=OPTIONS)
        }
        gone += before.values()
        for probe, interval in options_probes(udp, trunks, resolver):
            scheduler.add(probe, interval, after=before[probe.trunk])
    for trunk in (*changes.reprobed, *changes.retuned):
        pipeline.policies[trunk.name] = shared_policy(trunk.down_after, trunk.up_after)
    async for trunks in _slices(changes.added):
        for trunk in trunks:
            policy = shared_policy(trunk.down_after, trunk.up_after)
            pipeline.add_trunk(TrunkHealth(trunk.name), policy)
        for probe, interval in options_probes(udp, trunks, resolver):
            scheduler.add(probe, interval)
    if changes.any:
        scheduler.set_limit(mine.in_flight_limit(len(scheduler.items)))
        carriers = {t.name: t.carrier for t in mine.trunks}
        pipeline.set_vantage(mine.vantage.guard(mine.agent, carriers))
    if monitor.exporter is not None:
        src = monitor.exporter.src  # a new list: a sliced snapshot may be reading the old one
        src.trunks = await asyncio.to_thread(trunk_infos, mine.trunks)

    # Both walk every trunk (routes, URIs): in a thread, each swaps its result in at once.
    await asyncio.to_thread(monitor.tickets.follow, running)
    monitor.certificates.retarget(await asyncio.to_thread(certificate_targets, mine))
    monitor.maintenance.set_services((s.name, s.parts) for s in running.sla.services)
    if monitor.sla is not None:
        monitor.sla.settings = running.sla
    await monitor.registrations.update(mine.trunks)
    monitor.config = mine
    monitor.emit(removed)  # journal, tickets and log lines of the removed trunks' outages
    for item in gone:
        await item.probe.close()

    ended = tuple(e.outage.id for e in removed.events if isinstance(e, OutageClosed))
    report = ReloadReport(
        running.source,
        ok=True,
        added=len(changes.added),
        removed=len(changes.removed),
        changed=len(changes.reprobed) + len(changes.retuned),
        unchanged=changes.unchanged,
        outages_removed=ended,
        restart_required=tuple(pending),
    )
    return report
