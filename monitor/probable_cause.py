"""Probable causes of an outage that the monitor can name from what it saw (pure).

`customer_certificate`: a tls or https endpoint went down because its TLS handshake failed
verification (expired, not yet valid, wrong name, untrusted chain). The certificate is the
customer's, so under the contract the outage is a fault of equipment the carrier did not
supply: the ticket can go to the customer's own queue (`tickets.routes[].probable_causes`)
and the SLA report *proposes* the `customer_equipment` exclusion, never applies it (an
exclusion is an audited human classification).

The cause travels in the failed probe's detail, as a `customer_certificate: ` prefix the
pipeline adds (it knows which targets are tls/https endpoints): the outage's stored detail
carries it, so every reader of the store (tickets, reports, evidence) sees the same cause
without a second source of truth. Host names cannot contain '_', so no other detail starts so.
"""

from __future__ import annotations

from typing import Final

CUSTOMER_CERTIFICATE: Final = "customer_certificate"
PROBABLE_CAUSES: Final = (CUSTOMER_CERTIFICATE,)
# The exclusion kind (monitor/sla/availability.py ExclusionKind) each cause suggests.
PROPOSED_EXCLUSION: Final = {CUSTOMER_CERTIFICATE: "customer_equipment"}
# Outcome value of a failed TLS handshake (probes.result.Outcome.TLS).
TLS_OUTCOME: Final = "tls"
_PREFIX: Final = f"{CUSTOMER_CERTIFICATE}: "


def mark_customer_certificate(detail: str | None) -> str:
    """A tls/https endpoint's failed-handshake detail, marked with its probable cause."""
    if detail is not None and detail.startswith(_PREFIX):
        return detail
    return _PREFIX + (detail or "TLS handshake failed")


def probable_cause(first_outcome: str, detail: str | None) -> str | None:
    """The probable cause of an outage from its first failed probe's outcome and detail."""
    if first_outcome == TLS_OUTCOME and detail is not None and detail.startswith(_PREFIX):
        return CUSTOMER_CERTIFICATE
    return None
