"""Several agents, one verdict: a trunk is down for the contract while at least `k` of the
agents alive and watching it have it down (each agent's own view: agent_outages), where
`k` is the configured quorum or else a majority of those agents. One agent alone seeing it
down is a vantage-local failure: its view is kept, but no outage and no ticket follow.

The contract outage starts when the quorum is first reached (the k-th earliest first
failure among the agreeing views, the same rule one agent applies to its own streak) and
ends when it is lost. The leader (monitor/leadership.py) reconciles the store with this
every EVALUATE_S; the verdict depends only on the store, so a new leader continues where
the last one stopped, and an outage's id is derived from its trunk and start, so two
leaders racing write the same row once.

`reconcile` is pure: views and the open contract outages in, journal events out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from monitor.events import Event, Outage, OutageClosed, OutageKind, OutageOpened
from monitor.log import get_logger
from monitor.store import Store
from monitor.store.lease import Lease, LeaseLost
from monitor.tickets.ledger import append_with_outbox
from monitor.tickets.routing import TicketRouting
from probes.clock import SYSTEM_CLOCK, Clock, utc_now

log = get_logger("trunkwatch.quorum")

QUORUM_AGENT: Final = "quorum"  # the journal (and hash chain) of the contract's outages
EVALUATE_S: Final = 0.5  # quorum reached → ticket request within about this
# An agent is alive while its heartbeat (every 10 s) is younger than this.
ALIVE_FOR: Final = timedelta(seconds=30)
# Views restored longer ago than this cannot change an open verdict any more.
LOOKBACK: Final = timedelta(days=2)
_IDS: Final = uuid.UUID("6f1c8a0e-31d5-4f0e-9a57-3b8f0c1e2d41")


@dataclass(frozen=True, slots=True)
class View:
    """One agent's own outage of a trunk: first failure to restoration (None: still down)."""

    agent: str
    outage: Outage


def needed(alive: int, quorum: int | None) -> int:
    """How many agreeing agents make an outage: the configured quorum, else a majority."""
    if quorum is not None:
        return quorum
    return alive // 2 + 1


def quorum_spans(views: Iterable[View], k: int) -> list[tuple[datetime, datetime | None]]:
    """The spans during which at least `k` views are open at once, in time order; a span
    still open ends in None."""
    points: list[tuple[datetime, int]] = []
    for view in views:
        points.append((view.outage.first_failure_at, 1))
        if view.outage.restored_at is not None:
            points.append((view.outage.restored_at, -1))
    points.sort()  # at one instant restorations (-1) first: touching views do not overlap
    spans: list[tuple[datetime, datetime | None]] = []
    count = 0
    start: datetime | None = None
    for at, step in points:
        count += step
        if start is None and count >= k:
            start = at
        elif start is not None and count < k:
            spans.append((start, at))
            start = None
    if start is not None:
        spans.append((start, None))
    return spans


def _open_at(view: View, at: datetime) -> bool:
    o = view.outage
    return o.first_failure_at <= at and (o.restored_at is None or o.restored_at > at)


def outage_id(trunk: str, start: datetime) -> str:
    return str(uuid.uuid5(_IDS, f"{trunk}|{start.isoformat()}"))


def reconcile(
    trunk: str,
    views: Sequence[View],
    open_outage: Outage | None,
    k: int,
    now: datetime,
    *,
    judged_until: datetime | None = None,
    known: frozenset[str] = frozenset(),
) -> list[Event]:
    """The events that make the contract's outage of `trunk` agree with the views.

    `judged_until` is the end of the last verdict on `trunk` the store holds (None: none):
    quorum spans that began later and are already over (reached and lost while no agent
    led) are journaled now, opened and closed, unless their id is in `known`; without it,
    only a quorum holding now is looked at."""
    spans = quorum_spans(views, k)
    if open_outage is not None:
        if any(end is None for _, end in spans):
            # A quorum holds now: the same outage goes on, even if the agreeing agents
            # changed (some died, others joined), as one agent keeps one outage open
            # through a failure inside its recovery.
            return []
        began = open_outage.first_failure_at
        # Lost: at the last loss since it began; if its views are gone altogether (their
        # agents died), at the last restoration seen, else when it began.
        ends = [end for _, end in spans if end is not None and end > began]
        if not ends:
            ends = [v.outage.restored_at for v in views if v.outage.restored_at is not None]
        restored = max([began, *[e for e in ends if e <= now]])
        closed = open_outage.closed(restored_at=restored, closed_at=max(now, restored))
        return [OutageClosed(closed)]
    events: list[Event] = []
    for start, end in spans:
        if end is not None and judged_until is None:
            continue  # nothing known of what was judged: only the present counts
        if judged_until is not None and start <= judged_until:
            if end is not None:
                continue  # judged already (or began before what the store remembers)
            start = judged_until  # the part after the last verdict is what is new
        if outage_id(trunk, start) in known:
            continue
        outage = _verdict(trunk, views, start, end, k, now)
        events.append(OutageOpened(outage))
        if end is not None:
            events.append(OutageClosed(outage.closed(restored_at=end, closed_at=max(now, end))))
    return events


def _verdict(
    trunk: str, views: Sequence[View], start: datetime, end: datetime | None, k: int, now: datetime
) -> Outage:
    """The contract's outage from `start`: confirmed now, or for a span already over, when
    its k-th member had confirmed (as a leader watching then would have)."""
    members = sorted((v for v in views if _open_at(v, start)), key=_first_failure)
    agents = sorted({v.agent for v in members})
    confirmed = max(now, start)
    if end is not None:
        kth = sorted(v.outage.confirmed_at for v in members)[: max(k, 1)]
        confirmed = min(end, max(start, kth[-1] if kth else start))
    return Outage(
        id=outage_id(trunk, start),
        trunk=trunk,
        kind=OutageKind.OUTAGE,
        first_failure_at=start,
        confirmed_at=confirmed,
        first_outcome=members[0].outage.first_outcome if members else "timeout",
        detail=f"quorum {k}: {', '.join(agents)}"[:500],
    )


def _first_failure(view: View) -> datetime:
    return view.outage.first_failure_at


def evaluate(
    views: Iterable[tuple[str, Outage]],
    open_outages: Iterable[Outage],
    alive: Iterable[str],
    trunks: Mapping[str, int | None],
    now: datetime,
    *,
    watchers: Mapping[str, frozenset[str]] | None = None,
    judged: Mapping[str, datetime] | None = None,
    known: frozenset[str] = frozenset(),
) -> list[Event]:
    """Every trunk's events: `views` of the agents (dead agents' views do not count),
    the contract outages still open, and each trunk's configured quorum (None: a majority
    of the agents alive that probe it: `watchers`, where a trunk not named probes with all).
    `judged`: per trunk, the end of its last verdict (see `reconcile`); `known`: verdict ids."""
    living = frozenset(alive)
    named = watchers or {}
    by_trunk: dict[str, list[View]] = {}
    for agent, outage in views:
        if outage.kind is OutageKind.OUTAGE:
            by_trunk.setdefault(outage.trunk, []).append(View(agent, outage))
    open_by_trunk = {o.trunk: o for o in open_outages if o.kind is OutageKind.OUTAGE}
    events: list[Event] = []
    for trunk, quorum in trunks.items():
        watching = living & named[trunk] if named.get(trunk) else living
        if not watching:
            continue  # nobody watches: unknown time, not a verdict
        mine = [v for v in by_trunk.get(trunk, []) if v.agent in watching]
        k = needed(len(watching), quorum)
        until = None if judged is None else judged.get(trunk, now - LOOKBACK)
        events += reconcile(
            trunk, mine, open_by_trunk.get(trunk), k, now, judged_until=until, known=known
        )
    return events


class QuorumLoop:
    """The leader's side: every EVALUATE_S, read the agents' views and write the verdict
    (journaled as QUORUM_AGENT, with its ticket requests, in one transaction)."""

    def __init__(
        self,
        store: Store,
        routing: TicketRouting,
        trunks: Mapping[str, int | None],
        leads: Callable[[], bool],
        *,
        watchers: Mapping[str, frozenset[str]] | None = None,
        lease: Callable[[], Lease | None] = lambda: None,
        wake: Callable[[], None] = lambda: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._views = store
        self._watchers = watchers or {}
        self._wake = wake  # the outbox worker: new requests are due now
        self._verdicts = Store(store.engine, QUORUM_AGENT)
        self._routing = routing
        self._trunks = trunks
        self._leads = leads
        self._lease = lease  # the leader's lease: verdicts are written fenced by it
        self._clock = clock

    def retarget(
        self,
        routing: TicketRouting,
        trunks: Mapping[str, int | None],
        watchers: Mapping[str, frozenset[str]],
    ) -> None:
        """The trunks, their quorums and ticket routes after a reload."""
        self._routing, self._trunks, self._watchers = routing, trunks, watchers

    async def step(self) -> list[Event]:
        if not self._leads():
            return []
        now = utc_now(self._clock)
        views = await self._views.agent_views(since=now - LOOKBACK)
        beats = await self._views.heartbeats()
        alive = [agent for agent, seen in beats.items() if now - seen < ALIVE_FOR]
        # The verdicts of the lookback: the open ones go on; after the last closed one of a
        # trunk, spans reached and lost while no agent led are journaled now.
        verdicts = await self._verdicts.outages(since=now - LOOKBACK)
        still_open = [o for o in verdicts if o.restored_at is None]
        judged: dict[str, datetime] = {}
        for o in verdicts:
            if o.restored_at is not None and o.restored_at > judged.get(o.trunk, now - LOOKBACK):
                judged[o.trunk] = o.restored_at
        events = evaluate(
            views, still_open, alive, self._trunks, now, watchers=self._watchers,
            judged=judged, known=frozenset(o.id for o in verdicts),
        )  # fmt: skip
        if events:
            try:
                await append_with_outbox(
                    self._verdicts, events, self._routing, now, fenced=self._lease()
                )
            except LeaseLost:  # deposed meanwhile: the new leader decides
                log.warning("quorum_write_fenced", agent=self._views.agent)
                return []
            self._wake()
            for event in events:
                if isinstance(event, OutageOpened | OutageClosed):
                    how = "opened" if isinstance(event, OutageOpened) else "closed"
                    o = event.outage
                    log.warning(f"quorum_outage_{how}", trunk=o.trunk, outage_id=o.id)
        return events

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again next round
                log.error("quorum_evaluation_failed", error=repr(exc)[:200])
            await asyncio.sleep(EVALUATE_S)
