"""What each probe is given, from a trunk's config (the config's names → the probes' settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.config import CallsSettings, TrunkConfig
from probes.options import OptionsSettings

if TYPE_CHECKING:
    from probes.call import CallSettings

__all__ = ["call_settings", "options_settings", "transport_of"]


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


def options_settings(trunk: TrunkConfig) -> OptionsSettings:
    auth = trunk.auth
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
        tls_verify=trunk.tls.verify,
        tls_ca_file=trunk.tls.ca_file,
        tls_server_name=trunk.tls.server_name,
        tls_cert_file=trunk.tls.cert_file,
        tls_key_file=trunk.tls.key_file,
    )


def transport_of(uri: str) -> str:
    from probes.sip.uri import SipUri

    return SipUri.parse(uri).transport
