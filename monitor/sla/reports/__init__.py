"""SLA reports: one model (``build_report``), rendered as JSON, CSV, HTML or PDF."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from monitor.sla.reports.assemble import MAX_CREDIT_MONTHS, credit_history, make_report
from monitor.sla.reports.html import render_html
from monitor.sla.reports.model import SCHEMA, Report, ReportsExtraMissing, build_report
from monitor.sla.reports.pdf import render_pdf
from monitor.sla.reports.tabular import CSV_COLUMNS, render_csv, render_json, report_dict

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "MAX_CREDIT_MONTHS",
    "SCHEMA",
    "Report",
    "ReportsExtraMissing",
    "build_report",
    "credit_history",
    "make_report",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_pdf",
    "report_dict",
]

# format → (renderer, media type, file extension)
FORMATS: Final[dict[str, tuple[Callable[[Report], bytes], str, str]]] = {
    "json": (render_json, "application/json", "json"),
    "csv": (render_csv, "text/csv; charset=utf-8", "csv"),
    "html": (render_html, "text/html; charset=utf-8", "html"),
    "pdf": (render_pdf, "application/pdf", "pdf"),
}


def render(report: Report, fmt: str) -> bytes:
    try:
        renderer = FORMATS[fmt][0]
    except KeyError:
        raise ValueError(f"format {fmt!r} is not one of: {', '.join(FORMATS)}") from None
    return renderer(report)
