"""Start-up protocol: rebuild health from the journal and record the time nobody watched."""

from __future__ import annotations

from datetime import datetime

import structlog

from monitor.events import Event, MonitorGap, as_utc
from monitor.health import TrunkHealth, mark_unknown, replay
from monitor.store.store import Store

GAP_REASON_NOT_RUNNING = "monitor_not_running"

log = structlog.get_logger("trunkwatch.store")


async def resume(store: Store, now: datetime) -> dict[str, TrunkHealth]:
    """Replay the journal; journal the gap since the last sign of life and its UNKNOWN states.

    The last sign of life is the later of the last heartbeat and the last journaled event
    (both prove the monitor was running then). A trunk with an open outage comes back DOWN
    with the same outage; every other trunk becomes UNKNOWN, because a gap is unknown time.
    """
    now = as_utc(now, "now")
    journal = await store.load_journal()
    healths = replay(journal)
    last_seen = _last_sign_of_life(await store.last_heartbeat(), journal)
    new_events: list[Event] = []
    if last_seen is not None and now > last_seen:
        gap = MonitorGap(agent=store.agent, start=last_seen, end=now, reason=GAP_REASON_NOT_RUNNING)
        new_events.append(gap)
        log.info(
            "monitor_gap",
            agent=store.agent,
            start=gap.start.isoformat(),
            end=gap.end.isoformat(),
            seconds=(gap.end - gap.start).total_seconds(),
            reason=gap.reason,
        )
    new_events.extend(mark_unknown(healths, now, GAP_REASON_NOT_RUNNING))
    await store.append(new_events)
    await store.heartbeat(now)
    for health in healths.values():
        if health.open_outage is not None:
            log.info("outage_resumed", trunk=health.trunk, outage_id=health.open_outage.id)
    log.info(
        "journal_replayed",
        agent=store.agent,
        events=len(journal),
        trunks=len(healths),
        open_outages=sum(1 for h in healths.values() if h.open_outage is not None),
    )
    return healths


def _last_sign_of_life(heartbeat: datetime | None, journal: list[Event]) -> datetime | None:
    candidates = [heartbeat] if heartbeat is not None else []
    candidates.extend(e.at for e in journal)
    return max(candidates, default=None)
