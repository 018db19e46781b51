"""The certificate inspector: a served TLS chain in, a `CertReport` out.

Pure: no sockets, no clock (``now`` is passed in), no files (trust anchors are passed in as
bytes; `probes.tls.anchors` loads them). Input is what a handshake yields: DER certificates,
leaf first.

Verdicts:

- ``hostname_ok``: RFC 6125 matching against the SANs only; the subject CN is never used, so a
  certificate without SANs matches no host (see `probes.tls.hostname`).
- ``chain_complete``: the served chain links, by names and signatures, from the leaf to a
  certificate a trust anchor issued (or to an anchor itself) — see `probes.tls.chain`.
- ``chain_valid``: cryptography's WebPKI path validation (`x509.verification.PolicyBuilder`)
  accepts the served chain against the anchors at ``now``: signatures, validity periods, CA
  constraints (it accepts RSA 1024: ``weak_key`` is our own check). The host name is left to
  ``hostname_ok`` (the path is validated for the leaf's own first SAN), so a good chain served
  for the wrong name still reads ``chain_valid=True, hostname_ok=False``.
- ``reasons``: stable short strings, sorted, empty iff the certificate is fine (``valid``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from probes.tls.chain import link_chain
from probes.tls.hostname import IpAddress, hostname_matches, parse_ip
from probes.tls.report import CertInspectError, CertReport

MIN_RSA_BITS: Final = 2048

_CURVES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def load_certificates(blobs: Sequence[bytes]) -> list[x509.Certificate]:
    """Parse DER certificates or PEM blocks (a PEM bundle may hold several)."""
    certs: list[x509.Certificate] = []
    for blob in blobs:
        try:
            certs.extend(_parse(blob))
        except ValueError as exc:
            raise CertInspectError(f"not a certificate: {exc}") from None
    return certs


def _parse(blob: bytes) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        # Some system CAs carry a zero serial: cryptography warns, nobody here can act on it.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        if blob.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificates(blob)
        return [x509.load_der_x509_certificate(blob)]


def key_description(cert: x509.Certificate) -> tuple[str, int]:
    """("RSA", 2048), ("EC P-256", 256), ("Ed25519", 256), ..."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVES.get(key.curve.name, key.curve.name)}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, 0


def _is_weak(cert: x509.Certificate) -> bool:
    key = cert.public_key()
    return isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < MIN_RSA_BITS


def _sans(cert: x509.Certificate) -> tuple[list[str], list[IpAddress]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    ips = [
        ip
        for ip in ext.get_values_for_type(x509.IPAddress)
        if not isinstance(ip, ipaddress.IPv4Network | ipaddress.IPv6Network)
    ]
    return ext.get_values_for_type(x509.DNSName), ips


def _common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _path_validates(
    served: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    subject: x509.DNSName | x509.IPAddress,
    now: datetime,
) -> bool:
    if not anchors:
        return False
    try:
        builder = verification.PolicyBuilder().store(verification.Store(list(anchors)))
        verifier = builder.time(now).build_server_verifier(subject)
        verifier.verify(served[0], list(served[1:]))
    except (verification.VerificationError, ValueError):
        return False
    return True


def _subject_for_path(
    host: str, dns: Sequence[str], ips: Sequence[IpAddress]
) -> x509.DNSName | x509.IPAddress:
    """The name the path is validated for: the leaf's first SAN (the host name is judged
    apart), else `host` itself (the validator then refuses the SAN-less leaf)."""
    for name in dns:
        try:
            return x509.DNSName(name.replace("*", "wildcard", 1))
        except ValueError:
            continue
    if ips:
        return x509.IPAddress(ips[0])
    ip = parse_ip(host)
    if ip is not None:
        return x509.IPAddress(ip)
    return x509.DNSName(host.rstrip(".") or "invalid")


def inspect_chain(
    chain: Sequence[bytes], host: str, trust_anchors: Sequence[bytes], now: datetime
) -> CertReport:
    """Inspect the served `chain` (DER, leaf first) for `host` at `now` (timezone-aware).

    `trust_anchors` are CA certificates, DER or PEM (a PEM bundle may hold many): the caller
    loads the system store (`probes.tls.anchors.load_trust_anchors`) or a private CA file.
    No anchors at all means nothing can be trusted: ``untrusted_root``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not chain:
        raise CertInspectError("empty chain")
    served = load_certificates(chain)
    anchors = load_certificates(trust_anchors)
    leaf = served[0]
    dns, ips = _sans(leaf)
    not_before = leaf.not_valid_before_utc
    not_after = leaf.not_valid_after_utc
    seconds_left = int((not_after - now) // timedelta(seconds=1))
    link = link_chain(served, anchors)

    reasons: set[str] = set()
    for cert in link.path:
        if now > cert.not_valid_after_utc:
            reasons.add("expired")
        if now < cert.not_valid_before_utc:
            reasons.add("not_yet_valid")
        if _is_weak(cert):
            reasons.add("weak_key")
    if link.problem is not None:
        reasons.add(link.problem)
    hostname_ok = hostname_matches(host, dns, ips)
    if not hostname_ok:
        reasons.add("hostname_mismatch")
    chain_valid = _path_validates(served, anchors, _subject_for_path(host, dns, ips), now)
    if not chain_valid and not reasons - {"hostname_mismatch"}:
        reasons.add("chain_invalid")

    key_type, key_bits = key_description(leaf)
    fingerprint = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest().upper()
    return CertReport(
        host=host,
        subject=leaf.subject.rfc4514_string(),
        subject_cn=_common_name(leaf),
        sans=(*dns, *(str(ip) for ip in ips)),
        issuer=leaf.issuer.rfc4514_string(),
        not_before=not_before,
        not_after=not_after,
        seconds_left=seconds_left,
        days_left=seconds_left // 86400,
        key_type=key_type,
        key_bits=key_bits,
        signature_algorithm=leaf.signature_algorithm_oid._name,
        serial=format(leaf.serial_number, "x"),
        sha256_fingerprint=":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)),
        chain_length=len(served),
        hostname_ok=hostname_ok,
        chain_complete=link.complete,
        chain_valid=chain_valid,
        reasons=tuple(sorted(reasons)),
    )
