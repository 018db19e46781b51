"""Probable causes of an outage that the monitor can name from what it saw (pure).

`customer_certificate`: a tls or https endpoint went down because its TLS handshake failed
verification (expired, not yet valid, wrong name, untrusted chain). The certificate is the
customer's, so under the contract the outage is a fault of equipment the carrier did not
supply: the ticket can go to the customer's own queue (`tickets.routes[].probable_causes`)
and the SLA report may *propose* the `customer_equipment` exclusion, never apply it (an
exclusion is an audited human classification).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

CUSTOMER_CERTIFICATE: Final = "customer_certificate"
PROBABLE_CAUSES: Final = (CUSTOMER_CERTIFICATE,)
# The exclusion kind (monitor/sla/availability.py ExclusionKind) each cause suggests.
PROPOSED_EXCLUSION: Final = {CUSTOMER_CERTIFICATE: "customer_equipment"}
# Outcome value of a failed TLS handshake (probes.result.Outcome.TLS).
_TLS_OUTCOME: Final = "tls"


def probable_cause(target: str, first_outcome: str, certified: Iterable[str]) -> str | None:
    """The cause of an outage of `target` whose first failed probe had `first_outcome`;
    `certified` names the tls/https endpoints (whose certificates are the customer's)."""
    if first_outcome == _TLS_OUTCOME and target in frozenset(certified):
        return CUSTOMER_CERTIFICATE
    return None
