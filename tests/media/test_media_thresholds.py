"""Threshold profiles: the built-ins are DESIGN.md §3's table; limits are strict; typed reasons."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from probes.media.rtp import RtpReceiverStats, Snapshot
from probes.media.thresholds import (
    BUILTIN_PROFILES,
    CLIENT_TO_EDGE,
    EDGE_TO_EDGE,
    Measurements,
    Metric,
    ThresholdProfile,
    Violation,
    evaluate,
)
from probes.media.windows import WindowSpec, measure_snapshots

# DESIGN.md §3's table, copied into the repository (the fixture's header cites it).
DESIGN_MD = Path(__file__).resolve().parents[1] / "fixtures" / "media_thresholds.md"

# DESIGN.md §3, transcribed: (metric, profile field, client_to_edge, edge_to_edge, window field,
# window seconds).
TABLE = [
    (Metric.ONE_WAY_LATENCY, "one_way_latency_s", 0.050, 0.030, None, None),
    (Metric.RTT, "rtt_s", 0.100, 0.060, None, None),
    (Metric.BURST_LOSS, "burst_loss_ratio", 0.10, 0.01, "burst_window_s", 0.2),
    (Metric.LOSS, "loss_ratio", 0.01, 0.001, "loss_window_s", 15.0),
    (Metric.JITTER, "jitter_s", 0.030, 0.015, "jitter_window_s", 15.0),
    (Metric.REORDER, "reorder_ratio", 0.0005, 0.0001, None, None),
]
# Measurements field for each metric (same names as the profile's limit fields).
FIELD = {metric: field for metric, field, *_ in TABLE}


@pytest.mark.parametrize(("metric", "field", "c2e", "e2e", "window_field", "window_s"), TABLE)
def test_builtins_are_the_design_table(
    metric: Metric,
    field: str,
    c2e: float,
    e2e: float,
    window_field: str | None,
    window_s: float | None,
) -> None:
    assert getattr(CLIENT_TO_EDGE, field) == c2e
    assert getattr(EDGE_TO_EDGE, field) == e2e
    if window_field is not None:
        assert getattr(CLIENT_TO_EDGE, window_field) == window_s
        assert getattr(EDGE_TO_EDGE, window_field) == window_s
    assert set(BUILTIN_PROFILES) == {"client_to_edge", "edge_to_edge"}


def _parse_design_table() -> dict[str, tuple[str, str]]:
    text = DESIGN_MD.read_text(encoding="utf-8")
    section = text[text.index("## 3.") :]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("<"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def _number(cell: str) -> tuple[float, str, float | None]:
    """'< 10 % in any 200 ms' -> (0.10, '%', 0.2)."""
    m = re.match(r"<\s*([\d.]+)\s*(ms|%)(?:\s+in any\s+([\d.]+)\s*(ms|s))?", cell)
    assert m, cell
    value = float(m[1]) / (1000 if m[2] == "ms" else 100)
    window = None if m[3] is None else float(m[3]) / (1000 if m[4] == "ms" else 1)
    return value, m[2], window


def test_builtins_match_design_md_itself() -> None:
    rows = _parse_design_table()
    names = {
        "one-way latency": (Metric.ONE_WAY_LATENCY, None),
        "round-trip latency": (Metric.RTT, None),
        "burst packet loss": (Metric.BURST_LOSS, "burst_window_s"),
        "packet loss": (Metric.LOSS, "loss_window_s"),
        "inter-arrival jitter": (Metric.JITTER, "jitter_window_s"),
        "packet reorder": (Metric.REORDER, None),
    }
    assert set(rows) == set(names)
    for row, (metric, window_field) in names.items():
        for cell, profile in zip(rows[row], (CLIENT_TO_EDGE, EDGE_TO_EDGE), strict=True):
            value, _, window = _number(cell)
            assert getattr(profile, FIELD[metric]) == pytest.approx(value), (row, profile.name)
            if window_field is not None:
                assert getattr(profile, window_field) == pytest.approx(window), (row, profile.name)


@pytest.mark.parametrize("profile", [CLIENT_TO_EDGE, EDGE_TO_EDGE], ids=lambda p: p.name)
@pytest.mark.parametrize("metric", list(Metric))
def test_limits_are_strict(profile: ThresholdProfile, metric: Metric) -> None:
    limit = getattr(profile, FIELD[metric])
    at_limit = evaluate(profile, Measurements(**{FIELD[metric]: limit}))
    assert at_limit == [Violation(metric, _window(profile, metric), limit, limit)]
    below = math.nextafter(limit, 0.0)
    assert evaluate(profile, Measurements(**{FIELD[metric]: below})) == []


def _window(profile: ThresholdProfile, metric: Metric) -> float | None:
    return {
        Metric.BURST_LOSS: profile.burst_window_s,
        Metric.LOSS: profile.loss_window_s,
        Metric.JITTER: profile.jitter_window_s,
    }.get(metric)


def test_nothing_measured_judges_nothing() -> None:
    assert evaluate(EDGE_TO_EDGE, Measurements()) == []


def test_unset_limit_is_not_checked() -> None:
    only_rtt = ThresholdProfile(name="rtt_only", rtt_s=0.2)
    assert evaluate(only_rtt, Measurements(jitter_s=1.0, loss_ratio=0.5, rtt_s=0.1)) == []
    assert [v.metric for v in evaluate(only_rtt, Measurements(rtt_s=0.3))] == [Metric.RTT]


def test_every_violation_is_reported_in_table_order() -> None:
    bad = Measurements(
        one_way_latency_s=0.2,
        rtt_s=0.4,
        burst_loss_ratio=0.5,
        loss_ratio=0.05,
        jitter_s=0.05,
        reorder_ratio=0.01,
    )
    assert [v.metric for v in evaluate(CLIENT_TO_EDGE, bad)] == [m for m, *_ in TABLE]


def test_window_mismatch_is_a_wiring_error() -> None:
    with pytest.raises(
        ValueError, match="measured over 10 s but profile 'client_to_edge' needs 15 s"
    ):
        evaluate(CLIENT_TO_EDGE, Measurements(loss_ratio=0.0, loss_window_s=10.0))


def test_violation_reads_as_a_reason() -> None:
    assert str(Violation(Metric.LOSS, 15.0, 0.012, 0.01)) == "loss 1.2 % in 15 s, limit < 1 %"
    assert str(Violation(Metric.RTT, None, 0.1234, 0.1)) == "rtt 123.4 ms, limit < 100 ms"


@pytest.mark.parametrize(
    "fields",
    [
        {"loss_ratio": 1.5},
        {"loss_ratio": 0.0},
        {"jitter_s": -0.01},
        {"burst_window_s": 0.0},
        {"rtt_s": float("nan")},
        {"latency": 0.05},  # unknown field: a typo must not pass silently
    ],
)
def test_user_profiles_are_validated(fields: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ThresholdProfile(name="mine", **fields)


def test_profiles_are_frozen_data() -> None:
    with pytest.raises(ValidationError):
        CLIENT_TO_EDGE.rtt_s = 1.0
    clone = ThresholdProfile.model_validate(CLIENT_TO_EDGE.model_dump())
    assert clone == CLIENT_TO_EDGE
    assert clone.windows == WindowSpec(burst_s=0.2, loss_s=15.0, jitter_s=15.0)


def _call_snapshots(lost: set[int]) -> list[Snapshot]:
    """A 20 s G.711 call sampled at 5 Hz from its receive statistics."""
    stats = RtpReceiverStats(min_sequential=1)
    snaps = [stats.snapshot(0)]
    for i in range(1000):
        t = i * 20_000_000
        if t and t % 200_000_000 == 0:
            snaps.append(stats.snapshot(t))
        if i not in lost:
            stats.receive(i, i * 160, t)
    snaps.append(stats.snapshot(1000 * 20_000_000))
    return snaps


def test_clean_call_trips_nothing() -> None:
    quality = measure_snapshots(_call_snapshots(set()), CLIENT_TO_EDGE.windows)
    m = Measurements.from_quality(quality, one_way_latency_s=0.001, rtt_s=0.002)
    assert evaluate(CLIENT_TO_EDGE, m) == []
    assert evaluate(EDGE_TO_EDGE, m) == []


def test_30_percent_loss_over_200_ms_trips_the_burst_rule() -> None:
    """Issue 3: a 30 % loss burst over 200 ms (3 of 10 packets) trips the burst rule."""
    quality = measure_snapshots(_call_snapshots({500, 503, 506}), CLIENT_TO_EDGE.windows)
    violations = evaluate(CLIENT_TO_EDGE, Measurements.from_quality(quality))
    burst = [v for v in violations if v.metric is Metric.BURST_LOSS]
    assert len(burst) == 1
    assert burst[0].window_s == 0.2 and burst[0].limit == 0.10 and burst[0].value >= 0.10
