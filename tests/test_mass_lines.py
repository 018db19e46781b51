"""A mass event's state-change lines: the first LINES_PER_BEAT logged one by one, the rest
one summary line per beat (issue #13: 100,000 trunks' outages are not 100,000 lines)."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.mass_lines import LINES_PER_BEAT, NAMED_TRUNKS, MassLines
from monitor.pipeline import LogLine, Produced


def opened(trunk: str) -> LogLine:
    return LogLine("warning", "outage_opened", {"trunk": trunk, "outage_id": f"id-{trunk}"})


def test_lines_past_the_budget_are_counted_and_summarised_once_per_beat() -> None:
    mass = MassLines(limit=3)
    lines = [opened(f"t{i}") for i in range(10)] + [LogLine("info", "trunk_up", {"trunk": "u"})]
    admitted = [line for line in lines if mass.admit(line)]
    assert admitted == lines[:3]
    summary = mass.summary()
    assert summary is not None and summary.event == "log_lines_summarised"
    assert summary.fields["counts"] == {"outage_opened": 7, "trunk_up": 1}
    assert NAMED_TRUNKS == 5
    assert summary.fields["trunks"] == {
        "outage_opened": ["t3", "t4", "t5", "t6", "t7"],
        "trunk_up": ["u"],
    }
    # A new beat: a new budget, and nothing to summarise.
    assert mass.admit(opened("x")) and mass.summary() is None
    assert mass.summary() is None


async def test_the_monitor_logs_a_mass_outage_as_its_first_lines_and_a_count(
    tmp_path: Path,
) -> None:
    monitor = Monitor(config_from_text("http: {port: 0}\n", base_dir=tmp_path))
    await monitor.start()
    n = LINES_PER_BEAT + 1_000
    with capture_logs() as logs:
        monitor.emit(Produced(logs=[opened(f"t{i:05d}") for i in range(n)]))
        await monitor.stop()  # the heartbeat's last beat logs the summary
    lines = [e for e in logs if e["event"] == "outage_opened"]
    assert [e["trunk"] for e in lines] == [f"t{i:05d}" for i in range(LINES_PER_BEAT)]
    [summary] = [e for e in logs if e["event"] == "log_lines_summarised"]
    assert summary["counts"] == {"outage_opened": 1_000}
