"""The report as one self-contained HTML page: a one-page summary, then the detail.

Print CSS puts the detail on its own pages, so the same HTML becomes the PDF.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal
from html import escape
from typing import Final

from monitor.sla import MONEY_QUANTUM
from monitor.sla.reports.chart import timeline_svg
from monitor.sla.reports.i18n import EXCLUSION_KINDS, REASONS, t
from monitor.sla.reports.model import OutageRow, Report, minutes

__all__ = ["render_html"]

_CSS: Final = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm;
        @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
body { font-family: "DejaVu Sans", "Noto Sans", sans-serif; font-size: 9pt; color: #111; }
h1 { font-size: 16pt; margin: 0 0 4pt 0; }
h2 { font-size: 11pt; margin: 12pt 0 4pt 0; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; }
td, th { padding: 2pt 4pt; vertical-align: top; text-align: left; }
table.grid td, table.grid th { border: 0.5pt solid #bbb; font-size: 7.5pt; }
table.grid th { background: #eee; }
.figure { font-size: 28pt; font-weight: bold; }
.met { color: #1a7f37; font-weight: bold; }
.not-met { color: #b2182b; font-weight: bold; }
.formula { font-family: "DejaVu Sans Mono", monospace; background: #f4f4f4; padding: 4pt; }
.note { color: #555; font-size: 8pt; }
.detail { page-break-before: always; }
td.num { text-align: right; white-space: nowrap; }
img.chart { width: 100%; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _hours(us: int) -> str:
    hours = Decimal(us) / Decimal(3_600_000_000)
    return f"{hours.quantize(Decimal('0.0001')):f}".rstrip("0").rstrip(".")


def _money(value: Decimal) -> str:
    return f"{value.quantize(MONEY_QUANTUM):f}"


def _min(us: int) -> str:
    return f"{minutes(us):f}"


def _reasons(row: OutageRow, lang: str) -> str:
    parts = [REASONS.get(r, {}).get(lang, r) for r in row.reasons]
    if row.exclusion is not None:
        kind = row.exclusion["kind"]
        parts.append(
            f"{t('exclusion', lang)}: {EXCLUSION_KINDS.get(kind, {}).get(lang, kind)} "
            f"({t('by', lang)} {row.exclusion['by']}; {row.exclusion['reason']}"
            + (f"; {row.exclusion['reference']}" if row.exclusion["reference"] else "")
            + ")"
        )
    return "; ".join(parts)


def _summary(r: Report) -> str:
    lang = r.lang
    met = (
        f'<span class="met">{_e(t("met", lang))}</span>'
        if r.target_met
        else f'<span class="not-met">{_e(t("not_met", lang))}</span>'
    )
    if not r.coverage_sufficient:
        # Never a bare figure over too little watched time (a 100 % at 0 % coverage).
        shown = "—" if r.coverage_pct is None else f"{r.coverage_pct} %"
        met = (
            f'<span class="not-met">{_e(t("insufficient_coverage", lang))}: {_e(shown)} '
            f"&lt; {_e(r.coverage_floor_pct)} %</span>"
        )
    if r.tier is None:
        credit = _e(t("no_credit", lang))
    else:
        credit = (
            f"{_e(r.credit)} {_e(r.currency)} ({_e(r.tier['credit_pct'])} % "
            f"{_e(t('of_fee', lang))}; {_e(t('below', lang))} {_e(r.tier['below_pct'])} %)"
        )
    coverage = "—" if r.coverage_pct is None else f"{r.coverage_pct} %"
    clock = t("clock_ticket" if r.clock == "ticket" else "clock_detection", lang)
    svg = base64.b64encode(timeline_svg(r).encode("utf-8")).decode("ascii")
    outage_count = sum(1 for o in r.outages if o.kind == "outage")
    degradation_count = sum(1 for o in r.outages if o.kind == "degradation")
    provisional = "" if r.complete else f'<p class="not-met">{_e(t("provisional", lang))}</p>'
    partial = (
        f'<p class="note">{_e(t("partial", lang))}: {_e(r.local(r.effective_start))}</p>'
        if r.partial
        else ""
    )
    rows = [
        (t("service", lang), f"{r.service} ({r.rule}: {', '.join(r.parts)})"),
        (t("carrier", lang), r.carrier),
        (t("contract", lang), r.contract),
        (
            t("period", lang),
            f"{r.period_label}: {r.local(r.period_start)} → {r.local(r.period_end)}",
        ),
        (t("time_zone", lang), r.tz),
        (t("as_of", lang), r.local(r.as_of)),
        (t("generated", lang), r.local(r.generated_at)),
    ]
    head = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    figures = [
        (t("ttotal", lang), f"{_hours(r.ttotal_us)} h ({_min(r.ttotal_us)} {t('minutes', lang)})"),
        (t("tnodisp", lang), f"{_min(r.tnodisp_us)} {t('minutes', lang)}"),
        (t("basis", lang), f"{r.basis} — {r.basis_note}"),
        (t("clock", lang), f"{r.clock}: {clock}"),
        (t("target", lang), f"{r.target_pct} %"),
        (t("unclaimed", lang), f"{_min(r.unclaimed_us)} {t('minutes', lang)}"),
        (t("coverage", lang), f"{coverage} ({_min(r.unknown_us)} {t('minutes', lang)})"),
        (
            t("outage_count", lang),
            f"{outage_count} (+{degradation_count} {t('degradations', lang).lower()})",
        ),
        (t("carried_forward", lang), f"{_money(r.carried_forward)} {r.currency}"),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in figures)
    return f"""
<h1>{_e(t("title", lang))}</h1>
{provisional}
<table>{head}</table>
<h2>{_e(t("availability", lang))}</h2>
<p><span class="figure">{_e(r.availability_pct)} %</span> &nbsp; {met}</p>
<p class="formula">{_e(t("formula_text", lang))}<br>{_e(r.formula_text())}</p>
{partial}
<p>{_e(t("credit", lang))}: {credit}</p>
<table>{body}</table>
<p class="note">{_e(t("unclaimed_note", lang))} {_e(t("coverage_note", lang))}</p>
{_breaches(r)}
<h2>{_e(t("timeline", lang))}</h2>
<img class="chart" alt="{_e(t("timeline", lang))}" src="data:image/svg+xml;base64,{svg}">
"""


def _breaches(r: Report) -> str:
    """The response and repair limits the carrier missed (the annex's own clocks)."""
    lang = r.lang
    if r.limits.response_max is None and r.limits.repair_max is None:
        return ""
    items = []
    for o, clock, elapsed in r.breaches:
        limit = r.limits.response_max if clock == "response" else r.limits.repair_max
        assert limit is not None
        items.append(
            f"<li>{_e(t(clock + '_time', lang))} {_e(o.id)}: "
            f"{_min(elapsed // timedelta(microseconds=1))} {_e(t('minutes', lang))} &gt; "
            f"{_min(limit // timedelta(microseconds=1))} {_e(t('minutes', lang))}</li>"
        )
    body = f"<ul>{''.join(items)}</ul>" if items else f"<p>{_e(t('no_breaches', lang))}</p>"
    return f"<h2>{_e(t('breaches', lang))}</h2>{body}"


def _outage_table(r: Report, kind: str) -> str:
    lang = r.lang
    rows = [o for o in r.outages if o.kind == kind]
    if not rows:
        return f"<p>{_e(t('none_recorded', lang))}</p>"
    head = [
        "id",
        "source",
        "trunks",
        "first_failure",
        "confirmed",
        "ticket_opened",
        "ticket_ref",
        "restored",
        "duration",
        "counted",
        "unclaimed",
    ]
    out = ["<table class='grid'><tr>", *(f"<th>{_e(t(h, lang))}</th>" for h in head), "</tr>"]
    for o in rows:
        ticket = r.local(o.ticket_opened_at) or t("ticket_source_none", lang)
        if o.ticket_opened_at is not None and o.ticket_source != "ticket":
            ticket += f" ({t('ticket_source_' + o.ticket_source, lang)})"
        cells = [
            _e(o.id[:13]),
            _e(t("source_" + o.source, lang)),
            _e(" ".join(o.trunks)),
            _e(r.local(o.first_failure_at)),
            _e(r.local(o.confirmed_at)),
            _e(ticket),
            _e(o.carrier_ticket or ""),
            _e(r.local(o.restored_at) if o.restored_at else t("still_open", lang)),
            f"<td class='num'>{_min(o.duration_us)}</td>",
            f"<td class='num'>{_min(o.counted_us)}</td>",
            f"<td class='num'>{_min(o.unclaimed_us)}</td>",
        ]
        out.append(
            "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells) + "</tr>"
        )
        # Why minutes were not counted: a full-width line under the outage, not a thin column.
        note = _reasons(o, lang)
        if o.evidence_ref:
            note += f"; {t('evidence', lang)}: {o.evidence_ref}"
        if note:
            out.append(
                f"<tr><td></td><td colspan='{len(head) - 1}' class='note'>"
                f"{_e(t('not_counted', lang))}: {_e(note.lstrip('; '))}</td></tr>"
            )
    out.append("</table>")
    return "".join(out)


def _detail(r: Report) -> str:
    lang = r.lang
    parts = [
        f'<section class="detail"><h1>{_e(t("detail", lang))}</h1>',
        f"<h2>{_e(t('outages', lang))}</h2>",
        _outage_table(r, "outage"),
        f"<h2>{_e(t('degradations', lang))}</h2>",
        _outage_table(r, "degradation"),
        f"<h2>{_e(t('maintenance', lang))}</h2>",
    ]
    if r.maintenance:
        parts.append("<table class='grid'><tr>")
        for h in ("window", "origin", "notice", "start", "end", "minutes"):
            parts.append(f"<th>{_e(t(h, lang))}</th>")
        parts.append("</tr>")
        for m in r.maintenance:
            parts.append(
                f"<tr><td>{_e(m.title)}</td><td>{_e(m.origin)}</td><td>{_e(m.notice_ref)}</td>"
                f"<td>{_e(r.local(m.start))}</td><td>{_e(r.local(m.end))}</td>"
                f"<td class='num'>{_min(m.in_period_us)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append(f"<p>{_e(t('none_recorded', lang))}</p>")
    if r.proposals:  # never applied: shown so the operator can confirm or leave them
        parts.append(f"<h2>{_e(t('proposed_exclusions', lang))}</h2><table class='grid'><tr>")
        for h in ("trunk", "probable_cause", "exclusion", "detail"):
            parts.append(f"<th>{_e(t(h, lang))}</th>")
        parts.append("</tr>")
        for p in r.proposals:
            parts.append(
                f"<tr><td>{_e(p.trunk)}</td><td>{_e(p.cause)}</td><td>{_e(p.kind)}</td>"
                f"<td>{_e(p.detail)}</td></tr>"
            )
        parts.append(f"</table><p class='note'>{_e(t('proposed_note', lang))}</p>")
    parts.append(f"<h2>{_e(t('gaps', lang))}</h2>")
    if r.gaps:
        parts.append("<table class='grid'><tr>")
        for h in ("start", "end", "minutes"):
            parts.append(f"<th>{_e(t(h, lang))}</th>")
        parts.append("</tr>")
        for g in r.gaps:
            parts.append(
                f"<tr><td>{_e(r.local(g.start))}</td><td>{_e(r.local(g.end))}</td>"
                f"<td class='num'>{_min(g.duration_us)}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append(f"<p>{_e(t('none_recorded', lang))}</p>")
    parts.append(f"<h2>{_e(t('credit_history', lang))}</h2><table class='grid'><tr>")
    for h in ("period", "brought_forward", "earned", "applied", "carried_forward"):
        parts.append(f"<th>{_e(t(h, lang))}</th>")
    parts.append("</tr>")
    for b in r.credit_history:
        parts.append(
            f"<tr><td>{_e(b.label)}</td><td class='num'>{_money(b.brought_forward)}</td>"
            f"<td class='num'>{_money(b.earned)}</td><td class='num'>{_money(b.applied)}</td>"
            f"<td class='num'>{_money(b.carried_forward)}</td></tr>"
        )
    parts.append(f"</table><p class='note'>{_e(t('applied_note', lang))}</p>")
    parts.append(f"<h2>{_e(t('quality', lang))}</h2>")
    parts.append(_quality(r) if r.quality else f"<p>{_e(t('quality_missing', lang))}</p>")
    parts.append(f"<h2>{_e(t('method', lang))}</h2><p>{_e(t('method_text', lang))}</p>")
    parts.append(f"<p class='note'>availability exact: {_e(r.availability_exact)} %</p>")
    parts.append("</section>")
    return "".join(parts)


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if unit == "s" else f"{value * 100:.2f} %"


def _quality(r: Report) -> str:
    lang = r.lang
    parts = [f"<p class='note'>{_e(t('quality_intro', lang))}</p>"]
    for q in r.quality:
        parts.append(
            f"<p><b>{_e(t('trunk', lang))}: {_e(q.trunk)}</b> — {_e(t('profile', lang))}: "
            f"{_e(q.profile or '—')} — {_e(t('calls', lang))}: {q.calls}</p>"
            "<table class='grid'><tr>"
            f"<th>{_e(t('metric', lang))}</th><th>{_e(t('samples', lang))}</th>"
            f"<th>p50</th><th>p95</th><th>p99</th><th>max</th><th>{_e(t('limit', lang))}</th></tr>"
        )
        for m in q.metrics:
            over = m.limit is not None and m.p95 >= m.limit
            cls = " not-met" if over else ""
            parts.append(
                f"<tr><td>{_e(t('m_' + m.metric, lang))}</td><td class='num'>{m.samples}</td>"
                f"<td class='num'>{_figure(m.p50, m.unit)}</td>"
                f"<td class='num{cls}'>{_figure(m.p95, m.unit)}</td>"
                f"<td class='num'>{_figure(m.p99, m.unit)}</td>"
                f"<td class='num'>{_figure(m.max, m.unit)}</td>"
                f"<td class='num'>{_figure(m.limit, m.unit)}</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)


def render_html(r: Report) -> bytes:
    lang = r.lang
    title = f"{t('title', lang)} — {r.service} — {r.period_label}"
    doc = f"""<!DOCTYPE html>
<html lang="{_e(lang)}"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{_CSS}</style></head><body>
{_summary(r)}
{_detail(r)}
</body></html>
"""
    return doc.encode("utf-8")
