"""PDF from the report's HTML through WeasyPrint (needs Pango; see docs for the Debian packages)."""

from __future__ import annotations

from monitor.sla.reports.html import render_html
from monitor.sla.reports.model import Report, ReportsExtraMissing

__all__ = ["render_pdf"]


def render_pdf(report: Report) -> bytes:
    try:
        from weasyprint import HTML  # type: ignore[import-untyped]
    except ImportError:
        raise ReportsExtraMissing("WeasyPrint") from None

    pdf = HTML(string=render_html(report).decode("utf-8")).write_pdf()
    assert isinstance(pdf, bytes)  # write_pdf returns bytes when given no target
    return pdf
