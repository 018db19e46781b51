"""Per-target metrics of the RFC 3263 trunks (probes/targets.py), read at scrape time from
the scheduler's probes: the target label is `host:port/transport`, at most dns.max_targets
per trunk, so the series stay bounded whatever DNS answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.metrics.exposition import (
    ExpositionFormat,
    Kind,
    Section,
    count_text,
    family,
    label_text,
    sample_line,
)
from probes.targets import TargetsProbe

if TYPE_CHECKING:
    from monitor.scheduler import Scheduler

TARGET_UP = family(
    "target_up",
    Kind.GAUGE,
    "1 while the trunk's RFC 3263 target (host:port/transport) answered its last OPTIONS, else 0.",
)
TARGET_RTT = family(
    "target_rtt_seconds",
    Kind.GAUGE,
    "The target's last OPTIONS round trip, while it answers.",
)
TARGETS = family(
    "targets", Kind.GAUGE, "How many RFC 3263 targets the trunk resolved to and probes."
)
TARGETS_IGNORED = family(
    "targets_ignored",
    Kind.GAUGE,
    "Targets the trunk resolved to beyond dns.max_targets: counted, not probed.",
)


def target_probes(scheduler: Scheduler | None) -> list[TargetsProbe]:
    """The scheduled multi-target probes (a reload adds and removes them in place)."""
    if scheduler is None:
        return []
    return [item.probe for item in scheduler.items if isinstance(item.probe, TargetsProbe)]


def target_metrics(scheduler: Scheduler | None, agent: str) -> Section:
    """The section: nothing at all while no trunk is located by RFC 3263."""
    agent_label = f"{label_text(agent=agent)},"  # `agent` sorts first in every label set
    return lambda fmt: render(target_probes(scheduler), fmt, agent_label)


def render(probes: list[TargetsProbe], fmt: ExpositionFormat, agent_label: str) -> str:
    """The families; `agent_label` is the agent's label text and its comma."""
    if not probes:
        return ""
    up: list[str] = []
    rtt: list[str] = []
    count: list[str] = []
    ignored: list[str] = []
    for probe in probes:
        trunk_labels = agent_label + label_text(trunk=probe.trunk)
        states = probe.states()
        count.append(sample_line(TARGETS.sample, trunk_labels, len(states)))
        ignored.append(f"{TARGETS_IGNORED.sample}{{{trunk_labels}}} {count_text(probe.ignored)}\n")
        for state in states:
            if state.up is None:
                continue  # not probed yet: no series rather than a false 0
            labels = agent_label + label_text(target=state.label, trunk=probe.trunk)
            up.append(sample_line(TARGET_UP.sample, labels, float(state.up)))
            if state.rtt_s is not None:
                rtt.append(sample_line(TARGET_RTT.sample, labels, state.rtt_s))
    return "".join(
        (
            TARGET_UP.header(fmt), *up,
            TARGET_RTT.header(fmt), *rtt,
            TARGETS.header(fmt), *count,
            TARGETS_IGNORED.header(fmt), *ignored,
        )
    )  # fmt: skip
