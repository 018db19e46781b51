"""Report wording in Spanish and English: one table, keyed by the same ids in both languages."""

from __future__ import annotations

from typing import Final

LANGS: Final = ("es", "en")

TEXT: Final[dict[str, dict[str, str]]] = {
    "title": {"es": "Informe de disponibilidad del servicio", "en": "Service availability report"},
    "service": {"es": "Servicio", "en": "Service"},
    "carrier": {"es": "Proveedor", "en": "Carrier"},
    "contract": {"es": "Contrato", "en": "Contract"},
    "period": {"es": "Periodo", "en": "Period"},
    "time_zone": {"es": "Zona horaria", "en": "Time zone"},
    "generated": {"es": "Generado", "en": "Generated"},
    "as_of": {"es": "Datos hasta", "en": "Data as of"},
    "provisional": {
        "es": "Periodo en curso: cifras provisionales",
        "en": "Period not over: provisional figures",
    },
    "availability": {"es": "Disponibilidad", "en": "Availability"},
    "formula": {"es": "Fórmula", "en": "Formula"},
    "formula_text": {
        "es": "Disponibilidad % = (Ttotal − Tnodisp) / Ttotal × 100",
        "en": "Availability % = (Ttotal − Tnodisp) / Ttotal × 100",
    },
    "ttotal": {"es": "Ttotal (tiempo total del periodo)", "en": "Ttotal (total period time)"},
    "tnodisp": {"es": "Tnodisp (tiempo no disponible)", "en": "Tnodisp (unavailable time)"},
    "basis": {"es": "Base", "en": "Basis"},
    "clock": {"es": "Reloj de indisponibilidad", "en": "Downtime clock"},
    "clock_ticket": {
        "es": "desde la apertura del ticket hasta el restablecimiento",
        "en": "from ticket opening to restoration",
    },
    "clock_detection": {
        "es": "desde la primera prueba fallida hasta el restablecimiento",
        "en": "from the first failed probe to restoration",
    },
    "target": {"es": "Objetivo", "en": "Target"},
    "met": {"es": "Cumplido", "en": "Met"},
    "not_met": {"es": "No cumplido", "en": "Not met"},
    "credit": {"es": "Bonificación", "en": "Service credit"},
    "credit_tier": {"es": "Escalón aplicado", "en": "Tier applied"},
    "no_credit": {"es": "Sin bonificación", "en": "No credit due"},
    "below": {"es": "menor a", "en": "below"},
    "of_fee": {"es": "de la renta mensual", "en": "of the monthly fee"},
    "brought_forward": {"es": "Saldo anterior", "en": "Brought forward"},
    "carried_forward": {"es": "Saldo a favor acumulado", "en": "Carried forward"},
    "credit_history": {"es": "Historial de bonificaciones", "en": "Credit history"},
    "earned": {"es": "Generada", "en": "Earned"},
    "applied": {"es": "Aplicada", "en": "Applied"},
    "applied_note": {
        "es": "trunkwatch no registra las bonificaciones aplicadas en factura: todo lo generado "
        "se arrastra hasta que el proveedor lo aplique.",
        "en": "trunkwatch does not record credits applied on invoices: everything earned is "
        "carried forward until the carrier applies it.",
    },
    "unclaimed": {"es": "Minutos no reclamables", "en": "Unclaimed minutes"},
    "unclaimed_note": {
        "es": "Tiempo caído entre la detección y la apertura del ticket (no computable).",
        "en": "Downtime between detection and ticket opening (not claimable).",
    },
    "coverage": {"es": "Cobertura del monitoreo", "en": "Monitoring coverage"},
    "insufficient_coverage": {"es": "Cobertura insuficiente", "en": "Insufficient coverage"},
    "breaches": {
        "es": "Tiempos de respuesta y reparación incumplidos",
        "en": "Response and repair times missed",
    },
    "no_breaches": {"es": "Ninguno.", "en": "None."},
    "response_time": {"es": "Tiempo de respuesta", "en": "Response time"},
    "repair_time": {"es": "Tiempo de reparación", "en": "Repair time"},
    "coverage_note": {
        "es": "Tiempo sin monitoreo: desconocido, no cuenta como disponible ni como caído.",
        "en": "Time not monitored: unknown, counted neither as up nor as down.",
    },
    "outages": {"es": "Interrupciones", "en": "Outages"},
    "outage_count": {"es": "Interrupciones registradas", "en": "Outages recorded"},
    "degradations": {"es": "Degradaciones", "en": "Degradations"},
    "timeline": {"es": "Línea de tiempo", "en": "Timeline"},
    "detail": {"es": "Detalle", "en": "Detail"},
    "id": {"es": "Id", "en": "Id"},
    "kind": {"es": "Tipo", "en": "Kind"},
    "kind_outage": {"es": "interrupción", "en": "outage"},
    "kind_degradation": {"es": "degradación", "en": "degradation"},
    "source": {"es": "Origen", "en": "Source"},
    "source_monitor": {"es": "monitor", "en": "monitor"},
    "source_manual": {"es": "manual", "en": "manual"},
    "trunks": {"es": "Troncales", "en": "Trunks"},
    "first_failure": {"es": "Primera falla", "en": "First failure"},
    "confirmed": {"es": "Confirmada", "en": "Confirmed"},
    "ticket_opened": {"es": "Ticket abierto", "en": "Ticket opened"},
    "ticket_ref": {"es": "Ticket del proveedor", "en": "Carrier ticket"},
    "restored": {"es": "Restablecido", "en": "Restored"},
    "closed": {"es": "Cerrada", "en": "Closed"},
    "still_open": {"es": "abierta", "en": "open"},
    "duration": {"es": "Duración (min)", "en": "Duration (min)"},
    "counted": {"es": "Computado (min)", "en": "Counted (min)"},
    "not_counted": {"es": "No computado", "en": "Not counted"},
    "minutes": {"es": "min", "en": "min"},
    "none": {"es": "ninguno", "en": "none"},
    "ticket_source_ticket": {"es": "ticket", "en": "ticket"},
    "ticket_source_correction": {"es": "corregido", "en": "corrected"},
    "ticket_source_manual": {"es": "manual", "en": "manual"},
    "ticket_source_none": {"es": "sin ticket", "en": "no ticket"},
    "exclusion": {"es": "Exclusión", "en": "Exclusion"},
    "exclusions": {"es": "Exclusiones", "en": "Exclusions"},
    "revoked": {"es": "revocada", "en": "revoked"},
    "by": {"es": "por", "en": "by"},
    "reason": {"es": "Motivo", "en": "Reason"},
    "reference": {"es": "Referencia", "en": "Reference"},
    "evidence": {"es": "Evidencia", "en": "Evidence"},
    "maintenance": {"es": "Ventanas de mantenimiento", "en": "Maintenance windows"},
    "window": {"es": "Ventana", "en": "Window"},
    "start": {"es": "Inicio", "en": "Start"},
    "end": {"es": "Fin", "en": "End"},
    "origin": {"es": "Origen", "en": "Origin"},
    "notice": {"es": "Aviso", "en": "Notice"},
    "gaps": {"es": "Periodos sin monitoreo", "en": "Monitoring gaps"},
    "proposed_exclusions": {"es": "Exclusiones propuestas", "en": "Proposed exclusions"},
    "probable_cause": {"es": "Causa probable", "en": "Probable cause"},
    "proposed_note": {
        "es": "Propuestas del monitor, no aplicadas: el operador las confirma con "
        "`trunkwatch exclude` (auditado) o las descarta.",
        "en": "Suggested by the monitor, not applied: the operator confirms one with "
        "`trunkwatch exclude` (audited) or leaves it.",
    },
    "quality": {
        "es": "Calidad (latencia, jitter, pérdida)",
        "en": "Quality (latency, jitter, loss)",
    },
    "quality_missing": {
        "es": "No hay mediciones de medios registradas para este periodo: los percentiles de "
        "latencia, jitter y pérdida requieren pruebas de llamada, que este monitor no guarda aún.",
        "en": "No media measurements were recorded for this period: latency, jitter and loss "
        "percentiles need test calls, which this monitor does not store yet.",
    },
    "quality_intro": {
        "es": "Percentiles por troncal en el periodo (rango más cercano): pruebas de llamada y "
        "respuestas OPTIONS alrededor de cada transición. Límite: el del perfil (estricto).",
        "en": "Per-trunk percentiles over the period (nearest rank): test calls, and OPTIONS "
        "answers around each transition. Limit: the profile's (strict).",
    },
    "trunk": {"es": "Troncal", "en": "Trunk"},
    "profile": {"es": "Perfil", "en": "Profile"},
    "calls": {"es": "Llamadas", "en": "Calls"},
    "metric": {"es": "Métrica", "en": "Metric"},
    "samples": {"es": "Muestras", "en": "Samples"},
    "limit": {"es": "Límite", "en": "Limit"},
    "m_one_way_latency": {"es": "Latencia en un sentido", "en": "One-way latency"},
    "m_rtt": {"es": "RTT (RTCP)", "en": "RTT (RTCP)"},
    "m_jitter": {"es": "Jitter", "en": "Jitter"},
    "m_loss": {"es": "Pérdida", "en": "Loss"},
    "m_burst_loss": {"es": "Pérdida en ráfaga", "en": "Burst loss"},
    "m_options_rtt": {"es": "RTT de OPTIONS", "en": "OPTIONS RTT"},
    "partial": {
        "es": "Periodo parcial desde la aceptación",
        "en": "Partial period from acceptance",
    },
    "legend_counted": {"es": "computado", "en": "counted"},
    "legend_not_counted": {"es": "no computado", "en": "not counted"},
    "legend_maintenance": {"es": "mantenimiento", "en": "maintenance"},
    "legend_unknown": {"es": "sin monitoreo", "en": "not monitored"},
    "page": {"es": "Página", "en": "Page"},
    "none_recorded": {"es": "Ninguna registrada.", "en": "None recorded."},
    "method": {"es": "Método", "en": "Method"},
    "method_text": {
        "es": "Las interrupciones que se solapan se unen sin contarse dos veces; una ventana de "
        "mantenimiento descuenta solo la parte solapada; una exclusión retira la interrupción "
        "completa; las fronteras del mes se toman en la zona horaria del contrato.",
        "en": "Overlapping outages are unioned, never counted twice; a maintenance window "
        "removes only its overlap; an exclusion removes the whole outage; month boundaries "
        "are taken in the contract's time zone.",
    },
}

REASONS: Final[dict[str, dict[str, str]]] = {
    "outside_period": {"es": "fuera del periodo", "en": "outside the period"},
    "unknown": {"es": "sin monitoreo", "en": "not monitored"},
    "excluded": {"es": "excluida", "en": "excluded"},
    "degradation": {"es": "degradación (no computa)", "en": "degradation (not counted)"},
    "maintenance": {"es": "mantenimiento", "en": "maintenance"},
    "before_ticket": {"es": "antes del ticket", "en": "before the ticket"},
    "no_ticket": {"es": "sin ticket", "en": "no ticket"},
    "overlap": {"es": "solapada con otra", "en": "overlaps another"},
}

EXCLUSION_KINDS: Final[dict[str, dict[str, str]]] = {
    "customer_equipment": {
        "es": "equipo no suministrado por el proveedor",
        "en": "equipment not supplied by the carrier",
    },
    "no_access": {"es": "sin acceso a las instalaciones", "en": "no access to the premises"},
    "misuse": {"es": "uso indebido", "en": "misuse"},
    "non_payment": {"es": "suspensión por falta de pago", "en": "suspension for non-payment"},
    "force_majeure": {"es": "fuerza mayor", "en": "force majeure"},
    "new_installation": {"es": "instalación de servicios nuevos", "en": "new installation"},
    "scheduled_maintenance": {"es": "mantenimiento programado", "en": "scheduled maintenance"},
    "strike": {"es": "huelga", "en": "strike"},
    "natural_disaster": {"es": "desastre natural", "en": "natural disaster"},
    "authority_order": {
        "es": "interrupción ordenada por autoridad competente",
        "en": "interruption ordered by a competent authority",
    },
    "customer_internet": {
        "es": "falla del acceso a Internet contratado con un tercero",
        "en": "failure of Internet access bought from a third party",
    },
}


def t(key: str, lang: str) -> str:
    """The text for key in lang (KeyError for an unknown key: a typo, caught by the tests)."""
    return TEXT[key][lang]


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"language {lang!r} is not one of: {', '.join(LANGS)}")
    return lang
