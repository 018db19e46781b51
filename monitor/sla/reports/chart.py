"""The report's timeline chart: outages, maintenance and monitoring gaps over the period (SVG)."""

from __future__ import annotations

import io
import threading
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from monitor.sla.reports.i18n import t
from monitor.sla.reports.model import Report, ReportsExtraMissing

__all__ = ["timeline_svg"]

# Colours a printed report keeps apart in greyscale too (dark red vs mid grey vs light blue).
COUNTED: Final = "#b2182b"
NOT_COUNTED: Final = "#999999"
MAINTENANCE: Final = "#92c5de"
UNKNOWN: Final = "#fddbc7"
WIDTH_IN: Final = 7.2  # an A4/Letter text column
HEIGHT_IN: Final = 1.9
# matplotlib's pyplot state is global; reports may be rendered from several threads.
_LOCK = threading.Lock()


def timeline_svg(report: Report) -> str:
    """An SVG timeline: one row each for outages, maintenance and gaps, local dates on x."""
    try:
        import matplotlib
    except ImportError:
        raise ReportsExtraMissing("matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    zone = ZoneInfo(report.tz)

    def x(instant: datetime) -> float:
        return float(
            mdates.date2num(  # type: ignore[no-untyped-call]
                instant.astimezone(zone).replace(tzinfo=None)
            )
        )

    with _LOCK, matplotlib.rc_context({"svg.hashsalt": "trunkwatch", "svg.fonttype": "none"}):
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
        ax = fig.add_subplot()
        rows = {"outages": 2, "maintenance": 1, "gaps": 0}
        start, end = x(report.effective_start), x(report.period_end)

        def bars(row: str, spans: list[tuple[float, float]], colour: str) -> None:
            if spans:
                # A one-minute outage on a month axis is thinner than a pixel: keep it visible.
                floor = (end - start) / 400
                ax.broken_barh(
                    [(a, max(b - a, floor)) for a, b in spans],
                    (rows[row] - 0.35, 0.7),
                    facecolors=colour,
                )

        for o in report.outages:
            stop = o.restored_at or report.as_of
            colour = COUNTED if o.counted_us > 0 else NOT_COUNTED
            bars("outages", [(x(o.first_failure_at), x(stop))], colour)
        bars("maintenance", [(x(m.start), x(m.end)) for m in report.maintenance], MAINTENANCE)
        bars("gaps", [(x(g.start), x(g.end)) for g in report.gaps], UNKNOWN)
        ax.set_xlim(start, end)
        ax.set_ylim(-0.6, 2.6)
        ax.set_yticks(
            [0, 1, 2],
            [
                t("legend_unknown", report.lang),
                t("legend_maintenance", report.lang),
                t("outages", report.lang),
            ],
            fontsize=7,
        )
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        fmt = mdates.DateFormatter("%m-%d")  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(fmt)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", linewidth=0.3)
        ax.legend(
            handles=[
                Patch(color=COUNTED, label=t("legend_counted", report.lang)),
                Patch(color=NOT_COUNTED, label=t("legend_not_counted", report.lang)),
                Patch(color=MAINTENANCE, label=t("legend_maintenance", report.lang)),
                Patch(color=UNKNOWN, label=t("legend_unknown", report.lang)),
            ],
            fontsize=6,
            ncols=4,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18),
            frameon=False,
        )
        fig.subplots_adjust(left=0.14, right=0.98, top=0.95, bottom=0.32)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
