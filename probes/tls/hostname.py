"""RFC 6125 host name matching against a certificate's subjectAltName.

Rules (RFC 6125 §6.4, as the CA/Browser Forum baseline narrows them):

- a DNS host matches a dNSName SAN case-insensitively, a trailing dot ignored, non-ASCII
  labels compared in their IDNA A-label form;
- a wildcard is allowed only as the whole left-most label (``*.example.com``) and stands for
  exactly one non-empty label: it matches ``a.example.com``, not ``example.com`` nor
  ``a.b.example.com``; partial wildcards (``f*.example.com``) and wildcards with fewer than two
  labels after them (``*.com``) never match;
- an IP address host matches only an iPAddress SAN (never a dNSName, never a wildcard);
- the subject Common Name is NOT consulted, even when the certificate has no SAN at all
  (RFC 6125 §6.4.4 leaves it to the application; browsers and the CABF baseline dropped it):
  a certificate without a SAN matches no host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(host: str) -> IpAddress | None:
    """`host` as an IP address ("[::1]" brackets allowed), or None for a DNS name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _a_label_form(name: str) -> str | None:
    """Lower-case ASCII form of a DNS name, trailing dot dropped; None when not encodable."""
    name = name.strip().rstrip(".").lower()
    if not name:
        return None
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def dns_matches(pattern: str, host: str) -> bool:
    """True when the dNSName SAN `pattern` covers the DNS name `host`."""
    pat = _a_label_form(pattern)
    name = _a_label_form(host)
    if pat is None or name is None:
        return False
    if "*" not in pat:
        return pat == name
    first, _, rest = pat.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    label, dot, host_rest = name.partition(".")
    return bool(label) and bool(dot) and host_rest == rest


def hostname_matches(host: str, dns_sans: Iterable[str], ip_sans: Iterable[IpAddress]) -> bool:
    """True when `host` (a DNS name or an IP literal) is covered by the SANs (see module doc)."""
    ip = parse_ip(host)
    if ip is not None:
        return any(ip == other for other in ip_sans)
    return any(dns_matches(pattern, host) for pattern in dns_sans)
