"""Is it them or us? An agent that sees every trunk it watches, across several carriers,
failing at once is more likely cut off itself (its uplink, firewall, resolver) than
watching several carriers fail in the same second. Such an agent is *suspect*: its failures
open no outage and no ticket (the contract excludes faults of equipment the carrier did not
supply, and one false ticket lets a carrier dispute all the evidence), and the time it
spends suspect is recorded as unknown (a monitor gap), not as up or down.

Pure: results' verdicts in, a suspect flag and the gap out; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from monitor.events import MonitorGap
from monitor.metrics.exposition import ExpositionFormat, Kind, family, label_text
from probes.result import NOT_THE_TRUNKS_FAULT, Outcome

AGENT_SUSPECT = family(
    "agent_suspect",
    Kind.GAUGE,
    "1 while every trunk this agent watches fails at once (likely its own network): its "
    "failures open no outage and the time is unknown.",
)

SUSPECT_REASON: Final = "vantage_suspect"


@dataclass(frozen=True, slots=True)
class VantagePolicy:
    """When every watched trunk fails at once: at least `min_trunks` trunks of at least
    `min_carriers` carriers (0 turns the rule off)."""

    min_trunks: int = 2
    min_carriers: int = 2

    @property
    def enabled(self) -> bool:
        return self.min_carriers > 0 and self.min_trunks > 0


@dataclass(slots=True)
class VantageGuard:
    """Tracks which trunks' latest verdict is a failure, and whether that is all of them."""

    agent: str
    carriers: Mapping[str, str]  # trunk → carrier, for every trunk this agent watches
    policy: VantagePolicy = field(default_factory=VantagePolicy)
    failing: dict[str, datetime] = field(default_factory=dict)  # trunk → its streak's start
    suspect_since: datetime | None = None
    possible: bool = field(init=False)  # enough trunks and carriers for the rule to apply

    def __post_init__(self) -> None:
        n_carriers = len(set(self.carriers.values()))
        self.possible = (
            self.policy.enabled
            and len(self.carriers) >= self.policy.min_trunks
            and n_carriers >= self.policy.min_carriers
        )

    @property
    def suspect(self) -> bool:
        return self.suspect_since is not None

    def concerns(self, trunk: str, outcome: Outcome) -> bool:
        """Whether this result changes or meets the rule. Usually not (an answer from a
        trunk that was answering, nobody suspect): the hot path then skips it, allocation-free."""
        if not self.possible or outcome in NOT_THE_TRUNKS_FAULT:
            return False
        return outcome is not Outcome.OK or self.suspect_since is not None or trunk in self.failing

    def failed(self, trunk: str, streak_started_at: datetime) -> bool:
        """A failure of `trunk` (its failing streak began at `streak_started_at`); True when
        it makes the agent suspect (the moment every trunk is failing)."""
        if trunk not in self.carriers:
            return False
        self.failing.setdefault(trunk, streak_started_at)
        everyone = len(self.failing) == len(self.carriers)
        if self.suspect_since is None and self.possible and everyone:
            # Cut off since the earliest of the streaks: every later failure is ours.
            self.suspect_since = min(self.failing.values())
            return True
        return False

    def answered(self, trunk: str, sent_at: datetime) -> MonitorGap | None:
        """An answer from `trunk` (sent at `sent_at`). It ends a suspect spell, which it
        returns as a gap of this agent's watch; every other trunk's failures then start over
        (those seen while suspect were ours)."""
        since = self.suspect_since
        if since is None:
            self.failing.pop(trunk, None)
            return None
        self.suspect_since = None
        self.failing.clear()
        if sent_at <= since:
            return None
        return MonitorGap(agent=self.agent, start=since, end=sent_at, reason=SUSPECT_REASON)

    def render(self, fmt: ExpositionFormat) -> str:
        value = "1.0" if self.suspect else "0.0"
        labels = label_text(agent=self.agent)
        return f"{AGENT_SUSPECT.header(fmt)}{AGENT_SUSPECT.sample}{{{labels}}} {value}\n"
