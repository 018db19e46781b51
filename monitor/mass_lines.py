"""State-change log lines of a mass event summarised: an outage of 100,000 trunks at once is
a count per beat, not 100,000 lines (issue #13). Pure: the app logs what it is given."""

from __future__ import annotations

from typing import Final

from monitor.pipeline import LogLine

# Lines logged one by one per beat (10 s): an outage of a carrier's 50 trunks is 50 lines.
LINES_PER_BEAT: Final = 200
# Trunks named in a summary, per event: where to start looking, not the whole list.
NAMED_TRUNKS: Final = 5


class MassLines:
    """Admits up to `limit` lines per beat; counts the rest by event for `summary`."""

    __slots__ = ("_counts", "_limit", "_named", "_used")

    def __init__(self, limit: int = LINES_PER_BEAT) -> None:
        self._limit = limit
        self._used = 0
        self._counts: dict[str, int] = {}
        self._named: dict[str, list[str]] = {}

    def admit(self, line: LogLine) -> bool:
        """True: log it now; False: it is counted into the beat's summary instead."""
        if self._used < self._limit:
            self._used += 1
            return True
        self._counts[line.event] = self._counts.get(line.event, 0) + 1
        trunk = line.fields.get("trunk")
        named = self._named.setdefault(line.event, [])
        if isinstance(trunk, str) and len(named) < NAMED_TRUNKS:
            named.append(trunk)
        return False

    def summary(self) -> LogLine | None:
        """At the beat: one line for what was not logged since the last (None: nothing), and
        a new budget."""
        self._used = 0
        if not self._counts:
            return None
        counts, named = self._counts, self._named
        self._counts, self._named = {}, {}
        fields = {"counts": dict(sorted(counts.items())), "trunks": named, "limit": self._limit}
        return LogLine("warning", "log_lines_summarised", fields)
