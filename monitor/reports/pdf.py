"""PDF from the report's HTML through WeasyPrint (needs Pango; see docs for the Debian packages)."""

from __future__ import annotations

from monitor.reports.html import render_html
from monitor.reports.model import Report

__all__ = ["render_pdf"]


def render_pdf(report: Report) -> bytes:
    from weasyprint import HTML  # type: ignore[import-untyped]

    pdf = HTML(string=render_html(report).decode("utf-8")).write_pdf()
    assert isinstance(pdf, bytes)  # write_pdf returns bytes when given no target
    return pdf
