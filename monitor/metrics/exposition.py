"""The exposition grammar every /metrics source writes with: families, label texts, sample
values as prometheus_client writes them (byte for byte), and the one histogram type.

Pure text: no I/O, no prometheus_client objects on the way in except `collector_text`,
which writes prometheus_client's runtime collectors (process_*, python_*) the same way.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from prometheus_client.registry import Collector

PREFIX = "trunkwatch"

# The OpenMetrics end-of-exposition marker (OpenMetrics 1.0, "Overall Structure").
EOF_LINE = "# EOF\n"


class ExpositionFormat(Enum):
    """The two text formats Prometheus negotiates; the value is the response Content-Type."""

    TEXT = "text/plain; version=0.0.4; charset=utf-8"
    OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

    @property
    def content_type(self) -> str:
        return self.value


def negotiate(accept: str) -> ExpositionFormat:
    """The format for an Accept header, decided as prometheus_client's choose_encoder does.

    The first `application/openmetrics-text` entry with no version or a version ≥ 1.0.0
    wins (answered as 1.0.0, the version written); anything else (text/plain of any
    version, */*, nothing) gets text 0.0.4. q-values are not weighed, like choose_encoder:
    Prometheus lists its preference first anyway.
    """
    for entry in accept.split(","):
        media, *params = entry.split(";")
        if media.strip().lower() != "application/openmetrics-text":
            continue
        version = ""
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "version":
                version = value.strip()
        if not version or _version_tuple(version) >= (1, 0, 0):
            return ExpositionFormat.OPENMETRICS
    return ExpositionFormat.TEXT


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


# ---- the exposition grammar's small pieces ------------------------------------------------


def escape_label_value(value: str) -> str:
    """Label value escaping, the same in text 0.0.4 and OpenMetrics 1.0: \\ " and newline."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str, fmt: ExpositionFormat) -> str:
    # Text 0.0.4 escapes only backslash and newline in HELP; OpenMetrics also the quote.
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if fmt is ExpositionFormat.OPENMETRICS else text


# From here up Go writes an exponent where Python's repr still writes digits (dot > 6).
_GO_EXPONENT_FROM = 1e6


def go_float(value: float) -> str:
    """A sample value as prometheus_client writes it (utils.floatToGoString): Go's %g style."""
    if type(value) is float and -math.inf < value < _GO_EXPONENT_FROM:
        return repr(value)  # the common case, where Python's repr and Go agree
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(float(value))
    dot = text.find(".")
    # Go writes positive values from 1e+06 on with an exponent; Python's repr from 1e+16.
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


# Integers below this print as "<n>.0" under go_float; from it on Go's exponent form starts.
_PLAIN_INT_LIMIT = 1_000_000


def count_text(value: int) -> str:
    """go_float(float(value)) for an integer count, without the float round trip when small."""
    if -_PLAIN_INT_LIMIT < value < _PLAIN_INT_LIMIT:
        return f"{value}.0"
    return go_float(float(value))


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family's metadata; `sample` is the name its (non-histogram) lines carry."""

    name: str
    kind: Kind
    help: str

    @property
    def sample(self) -> str:
        return f"{self.name}_total" if self.kind is Kind.COUNTER else self.name

    def header(self, fmt: ExpositionFormat) -> str:
        # A counter's family is `foo` in OpenMetrics and `foo_total` in text 0.0.4 (where the
        # family is named as its samples); the samples are `foo_total` in both.
        name = self.name if fmt is ExpositionFormat.OPENMETRICS else self.sample
        return f"# HELP {name} {_escape_help(self.help, fmt)}\n# TYPE {name} {self.kind}\n"


def family(name: str, kind: Kind, help: str) -> Family:
    """A trunkwatch family: every name gets the one PREFIX here."""
    return Family(f"{PREFIX}_{name}", kind, help)


# A source of whole families (test calls, tickets, SLA): written on demand at scrape time.
Section = Callable[[ExpositionFormat], str]


def label_text(**labels: str) -> str:
    """A label set's text with names sorted (as prometheus_client writes them), escaped."""
    return ",".join(f'{key}="{escape_label_value(labels[key])}"' for key in sorted(labels))


def le_labels(bounds: Iterable[float]) -> tuple[str, ...]:
    """`le="…"` label texts for a histogram's bounds, then +Inf (bounds as repr(float))."""
    return (*(f'le="{float(bound)!r}"' for bound in bounds), 'le="+Inf"')


def sample_line(name: str, labels: str, value: float) -> str:
    """One sample line; `labels` is a label_text (empty for none)."""
    return f"{name}{{{labels}}} {go_float(value)}\n" if labels else f"{name} {go_float(value)}\n"


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative: cumulated when written), cheap to observe.

    `samples`, when a benchmark sets it, also keeps every value for exact percentiles.
    """

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    n: int = 0
    max: float = 0.0
    samples: array[float] | None = None

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        if self.samples is not None:
            self.samples.append(value)
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1
        if value > self.max:
            self.max = value

    def text(self, family: Family, labels: str = "") -> str:
        """The `_bucket`, `_count` and `_sum` lines, `le` first, then `labels`."""
        return histogram_text(family.name, self.bounds, self.counts, self.total, labels)


def histogram_text(
    name: str, bounds: Iterable[float], counts: Iterable[int], total: float, labels: str = ""
) -> str:
    """A histogram's sample lines from per-bucket counts (the last one is +Inf's)."""
    sep = f",{labels}" if labels else ""
    out: list[str] = []
    running = 0
    for le, count in zip(le_labels(bounds), counts, strict=True):
        running += count
        out.append(f"{name}_bucket{{{le}{sep}}} {count_text(running)}\n")
    tail = f"{{{labels}}}" if labels else ""
    out.append(f"{name}_count{tail} {count_text(running)}\n")
    out.append(f"{name}_sum{tail} {go_float(total)}\n")
    return "".join(out)


_KINDS = {kind.value: kind for kind in Kind}


def collector_text(collector: Collector, fmt: ExpositionFormat) -> str:
    """A prometheus_client collector's families (gauges, counters, histograms) in this writer.

    Used for the runtime collectors (process, platform, GC), which yield only those kinds;
    a family of any other kind would need its own grammar and is left out.
    """
    out: list[str] = []
    for metric in collector.collect():
        kind = _KINDS.get(metric.type)
        if kind is None:
            continue
        out.append(Family(metric.name, kind, metric.documentation).header(fmt))
        for s in metric.samples:
            out.append(sample_line(s.name, label_text(**s.labels), s.value))
    return "".join(out)
