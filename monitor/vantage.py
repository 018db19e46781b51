"""Is it them or us? An agent that sees every trunk it watches, across several carriers,
failing at once is more likely cut off itself (its uplink, firewall, resolver) than
watching several carriers fail in the same second. Such an agent is *suspect*: its failures
open no outage and no ticket (the contract excludes faults of equipment the carrier did not
supply, and one false ticket lets a carrier dispute all the evidence), and the time it
spends suspect is recorded as unknown (a monitor gap), not as up or down.

With `control_targets` (vantage.control_targets: the other site's agent, a public
resolver...), the agent asks them before blaming itself: if any answered since the trunks
began failing, the fault is on the carriers' side and their outages proceed; only when
the control targets fail too (or have not answered since) is the agent suspect.

Pure: results' verdicts in, a suspect flag and the gap out; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
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

CONTROL_TARGET_UP = family(
    "control_target_up",
    Kind.GAUGE,
    "1 if the control target (vantage.control_targets) answered its last probe, 0 if not.",
)

SUSPECT_REASON: Final = "vantage_suspect"


class Side(StrEnum):
    """Whose fault it is that every trunk fails at once."""

    OURS = "ours"  # this agent's own network: suspect
    THEIRS = "theirs"  # the carriers': a control target answered meanwhile


def side(controls: Mapping[str, datetime | None], since: datetime) -> Side:
    """THEIRS when any control target answered at or after `since` (the trunks' first
    failure); `controls` maps each to its last answer (None: its last probe failed or none
    yet). Without control targets, or none heard since, it is OURS (the plain heuristic):
    an answer from before the failures says nothing about now."""
    if any(at is not None and at >= since for at in controls.values()):
        return Side.THEIRS
    return Side.OURS


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
    # Control target → its last answer (None: failing, or not heard yet); empty: none set.
    controls: dict[str, datetime | None] = field(default_factory=dict)
    # When every trunk failing was found to be the carriers' fault (logged once per spell).
    their_side_since: datetime | None = None
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

    def failed(self, trunk: str, streak_started_at: datetime, at: datetime) -> Side | None:
        """A failure of `trunk` (sent at `at`; its failing streak began at
        `streak_started_at`): the side newly judged when it makes every trunk fail, else None."""
        if trunk not in self.carriers:
            return None
        self.failing.setdefault(trunk, streak_started_at)
        return self._judge(at)

    def control(self, target: str, answered: bool, at: datetime) -> Side | None:
        """A control target's result (sent at `at`): the side newly judged, if it changed."""
        if target not in self.controls:
            return None
        self.controls[target] = at if answered else None
        return self._judge(at)

    def _judge(self, at: datetime) -> Side | None:
        if not self.possible or len(self.failing) < len(self.carriers):
            return None
        since = min(self.failing.values())
        if self.controls and side(self.controls, since) is Side.THEIRS:
            if self.their_side_since is not None:
                return None
            # A suspicion raised before a control target answered was wrong: no gap (the
            # time was not ours), and the trunks' streaks go on to their outages.
            self.their_side_since, self.suspect_since = at, None
            return Side.THEIRS
        if self.suspect_since is not None:
            return None
        # Cut off since the earliest of the streaks (every later failure is ours), or, when
        # the control targets answered until now, since they stopped.
        self.suspect_since = since if self.their_side_since is None else at
        self.their_side_since = None
        return Side.OURS

    def answered(self, trunk: str, sent_at: datetime) -> MonitorGap | None:
        """An answer from `trunk` (sent at `sent_at`). It ends a suspect spell, which it
        returns as a gap of this agent's watch; every other trunk's failures then start over
        (those seen while suspect were ours)."""
        self.their_side_since = None  # not every trunk fails any more
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
        out = f"{AGENT_SUSPECT.header(fmt)}{AGENT_SUSPECT.sample}{{{labels}}} {value}\n"
        if self.controls:
            out += CONTROL_TARGET_UP.header(fmt)
            for target, answered in self.controls.items():
                labels = label_text(agent=self.agent, target=target)
                up = "0.0" if answered is None else "1.0"
                out += f"{CONTROL_TARGET_UP.sample}{{{labels}}} {up}\n"
        return out
