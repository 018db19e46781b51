"""Which DNS server the RFC 3263 resolver asks, and how: no dnspython here.

The daemon imports these with its config; dnspython (~2 MB) loads with the first
resolver (probes/dns/resolver.py), which only host-name trunks create.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.dns.rfc3263 import DEFAULT_FAMILIES, Family

DEFAULT_DNS_PORT = 53
DEFAULT_TIMEOUT_S = 5.0
# Targets probed per trunk (probes/targets.py): each is a metric series and a probe per round,
# and a carrier's SRV set is a handful of SBCs; more than this is a mistake or an attack.
DEFAULT_MAX_TARGETS = 16


@dataclass(slots=True, frozen=True)
class ResolverSettings:
    """Which server to ask (None: the system's resolv.conf), on which port, how long per query."""

    nameserver: str | None = None
    port: int = DEFAULT_DNS_PORT
    timeout: float = DEFAULT_TIMEOUT_S
    families: tuple[Family, ...] = DEFAULT_FAMILIES
    max_targets: int = DEFAULT_MAX_TARGETS  # probed per trunk; the rest are counted, not probed

    def __post_init__(self) -> None:
        if self.max_targets < 1:
            raise ValueError("max_targets must be at least 1")
        if not self.timeout > 0:
            raise ValueError("timeout must be positive")
        if not 0 < self.port < 65536:
            raise ValueError(f"bad DNS port {self.port}")
