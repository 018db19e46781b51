"""Which sinks an outage's ticket goes to, and which carriers get grouped tickets (no I/O)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.events import OutageKind
from monitor.tickets.config import TicketsSettings


@dataclass(slots=True, frozen=True)
class _Route:
    sinks: tuple[str, ...]
    carriers: frozenset[str]
    trunks: tuple[str, ...]
    degradations: bool
    causes: frozenset[str] = frozenset()

    def matches(self, trunk: str, carrier: str, cause: str | None = None) -> bool:
        if self.causes and cause not in self.causes:
            return False
        if not self.carriers and not self.trunks:
            return True
        if carrier in self.carriers:
            return True
        return any(fnmatch.fnmatchcase(trunk, pattern) for pattern in self.trunks)


@dataclass(slots=True, frozen=True)
class TicketRouting:
    """Routes from the ``tickets:`` section and the trunk → carrier map from ``trunks:``.

    With sinks but no routes, every outage goes to every sink.
    """

    routes: tuple[_Route, ...] = ()
    carriers: Mapping[str, str] = field(default_factory=dict)  # trunk → carrier
    grouping: bool = False
    grouped_carriers: frozenset[str] = frozenset()  # empty with grouping on: every carrier
    group_window_s: float = 0.0

    @classmethod
    def build(
        cls, settings: TicketsSettings | None, trunk_carriers: Iterable[tuple[str, str]]
    ) -> TicketRouting:
        carriers = dict(trunk_carriers)
        if settings is None or not settings.sinks:
            return cls(carriers=carriers)
        routes = [
            _Route(
                sinks=tuple(r.sinks),
                carriers=frozenset(r.carriers),
                trunks=tuple(r.trunks),
                degradations=settings.degradations if r.degradations is None else r.degradations,
                causes=frozenset(r.probable_causes),
            )
            for r in settings.routes
        ]
        if not routes:
            routes = [
                _Route(
                    sinks=tuple(s.name for s in settings.sinks),
                    carriers=frozenset(),
                    trunks=(),
                    degradations=settings.degradations,
                )
            ]
        return cls(
            routes=tuple(routes),
            carriers=carriers,
            grouping=settings.grouping.enabled,
            grouped_carriers=frozenset(settings.grouping.carriers),
            group_window_s=settings.grouping.window,
        )

    def carrier_of(self, trunk: str) -> str:
        return self.carriers.get(trunk, "")

    def trunks_of(self, carrier: str) -> frozenset[str]:
        return frozenset(t for t, c in self.carriers.items() if c == carrier)

    def sinks_for(self, trunk: str, kind: OutageKind, cause: str | None = None) -> tuple[str, ...]:
        """Sink names for an outage of ``trunk``, in config order, each once; ``cause`` (its
        probable cause, monitor/probable_cause.py) tells routes by probable cause apart."""
        carrier = self.carrier_of(trunk)
        out: list[str] = []
        for route in self.routes:
            if kind is OutageKind.DEGRADATION and not route.degradations:
                continue
            if route.matches(trunk, carrier, cause):
                out.extend(s for s in route.sinks if s not in out)
        return tuple(out)

    def groups(self, carrier: str) -> bool:
        """Whether this carrier's simultaneous outages share one ticket.

        A trunk without a carrier is never grouped: "" is not a carrier, and a carrier
        with a single trunk has nothing to group.
        """
        if not self.grouping or not carrier:
            return False
        if self.grouped_carriers and carrier not in self.grouped_carriers:
            return False
        return len(self.trunks_of(carrier)) > 1
