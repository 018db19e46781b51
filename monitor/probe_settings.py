"""What each probe is given, from a trunk's config (the config's names → the probes' settings)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.config import CallsSettings, Config, TrunkConfig
from monitor.health import QualityPolicy
from monitor.metrics.exporter import TrunkInfos
from monitor.metrics.targets import target_metrics
from probes.dns.settings import ResolverSettings
from probes.options import OptionsSettings, SharedUdp, uri_transport
from probes.probe import Probe
from probes.target_rule import locates_targets
from probes.targets import TargetsProbe

if TYPE_CHECKING:
    from probes.call import CallSettings
    from probes.media.thresholds import ThresholdProfile
    from probes.pjsua.pool import WorkerPool

__all__ = [
    "CallProbes",
    "call_settings",
    "options_probes",
    "options_settings",
    "start_call_probes",
    "target_metrics",
    "trunk_infos",
]


def call_settings(trunk: TrunkConfig, calls: CallsSettings) -> CallSettings:
    """The call probe's settings from a trunk's `call:` (credentials: the trunk's `auth`)."""
    from probes.call import CallSettings

    call, auth = trunk.call, trunk.auth
    assert call is not None
    return CallSettings(
        trunk=trunk.name,
        uri=call.uri,
        codecs=call.codecs,
        max_call_s=call.max_call,
        answer_timeout_s=call.answer_timeout,
        from_uri=call.from_uri,
        username=auth.username if auth else None,
        password=auth.password.get_secret_value() if auth else None,
        realm=auth.realm if auth else None,
        registrar=call.registrar,
        proxy=call.proxy,
        expect_tone=call.expect_tone,
        profile=calls.profile(call.profile),
    )


def options_probes(
    udp: SharedUdp, trunks: Iterable[TrunkConfig], dns: ResolverSettings | None
) -> list[tuple[Probe, float]]:
    """Each trunk's OPTIONS probe on the shared socket, with its interval: a probe of every
    located target for an RFC 3263 trunk (probes/targets.py), today's probe for the rest."""
    return [(_options_probe(udp, t, dns), t.interval) for t in trunks]


def _options_probe(udp: SharedUdp, trunk: TrunkConfig, dns: ResolverSettings | None) -> Probe:
    settings = options_settings(trunk, dns)
    if dns is None or not locates_targets(trunk.uri):
        return udp.probe(settings, keep_messages=False)
    return TargetsProbe(
        settings, trunk.targets, udp=udp.v4, udp_v6=udp.v6, malformed=udp.v4.malformed
    )


def options_settings(trunk: TrunkConfig, dns: ResolverSettings | None = None) -> OptionsSettings:
    auth, tls = trunk.auth, trunk.tls
    return OptionsSettings(
        trunk=trunk.name,
        uri=trunk.uri,
        timeout=trunk.timeout,
        alive_codes=trunk.alive_codes,
        from_uri=trunk.from_uri,
        user_agent=trunk.user_agent,
        max_forwards=trunk.max_forwards,
        username=auth.username if auth else None,
        password=auth.password.get_secret_value() if auth else None,
        tls_verify=tls.verify,
        tls_ca_file=tls.ca_file,
        tls_server_name=tls.server_name,
        tls_cert_file=tls.cert_file,
        tls_key_file=tls.key_file,
        dns=dns,
    )


def trunk_infos(trunks: Sequence[TrunkConfig]) -> TrunkInfos:
    """The exporter's config facts of each trunk (at start and after a reload)."""
    return TrunkInfos(
        tuple(t.name for t in trunks),
        tuple(t.carrier for t in trunks),
        tuple(uri_transport(t.uri) for t in trunks),
    )


@dataclass
class CallProbes:
    """The test calls of the trunks with `call:`, on one started pool of pjsua2 workers."""

    pool: WorkerPool | None = None
    scheduled: list[tuple[Probe, float]] = field(default_factory=list)
    profiles: dict[str, ThresholdProfile | None] = field(default_factory=dict)
    quality_policies: dict[str, QualityPolicy] = field(default_factory=dict)


async def start_call_probes(cfg: Config) -> CallProbes:
    """Start the worker pool and make a call probe per trunk with `call:` (none: no pool)."""
    trunks = [t for t in cfg.trunks if t.call is not None]
    if not trunks:
        return CallProbes()
    from probes.call import CallProbe
    from probes.pjsua.pool import PoolSettings, WorkerPool

    calls = cfg.calls
    pool = WorkerPool(
        PoolSettings(
            max_calls=calls.max_calls,
            sip_address=calls.sip_address,
            sip_port=calls.sip_port,
            media_address=calls.media_address,
            rtp_port_min=calls.rtp_port_min,
            user_agent=f"trunkwatch/{cfg.agent}",
        )
    )
    await pool.start()
    out = CallProbes(pool)
    for trunk in trunks:
        assert trunk.call is not None
        out.profiles[trunk.name] = calls.profile(trunk.call.profile)
        out.quality_policies[trunk.name] = QualityPolicy(
            trunk.call.degrade_after, trunk.call.recover_after
        )
        probe = CallProbe(call_settings(trunk, calls), pool)
        out.scheduled.append((probe, trunk.call.interval))
    return out
