"""What a certificate check reports, without the parser: the daemon imports this, and
cryptography (~8 MB resident, probes/tls/cert.py) only once a certificate is checked."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final

__all__ = ["REASONS", "CertInspectError", "CertReport"]

# Every reason `inspect_chain` may give, for consumers that map them (metrics labels, say).
REASONS: Final = (
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "untrusted_root",
    "incomplete_chain",
    "bad_signature",
    "weak_key",
    "self_signed",
    "chain_invalid",  # the path validator refused the chain for a reason none of the above name
)


class CertInspectError(ValueError):
    """The input is not a certificate chain (empty, or bytes that are not a certificate)."""


@dataclass(frozen=True, slots=True)
class CertReport:
    """What `inspect_chain` found out about a served chain's leaf certificate."""

    host: str
    subject: str
    subject_cn: str | None
    sans: tuple[str, ...]  # dNSNames, then iPAddresses, as text, in certificate order
    issuer: str
    not_before: datetime  # UTC
    not_after: datetime  # UTC
    seconds_left: int  # until not_after; negative once expired
    days_left: int  # seconds_left // 86400 (floored: -1 on the first day after expiry)
    key_type: str  # "RSA", "EC P-256", "Ed25519", ...
    key_bits: int
    signature_algorithm: str  # e.g. "sha256WithRSAEncryption", "ecdsa-with-SHA256"
    serial: str  # hex, lower case, no separators
    sha256_fingerprint: str  # hex pairs, upper case, colon-separated (as `openssl x509`)
    chain_length: int  # certificates served
    hostname_ok: bool
    chain_complete: bool
    chain_valid: bool
    reasons: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes in ISO 8601, tuples as lists, plus ``valid``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        out["valid"] = self.valid
        return out
