"""The tickets: section: secrets only from env/file and never echoed, templates checked."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tickets_support import WEBHOOK_SECRET

from monitor.events import OutageKind
from monitor.tickets.config import (
    EmailSinkSettings,
    JiraSinkSettings,
    RtSinkSettings,
    TicketsSettings,
    WebhookSinkSettings,
)
from monitor.tickets.routing import TicketRouting

ENV = {"HOOK_SECRET": WEBHOOK_SECRET, "RT_TOKEN": "rt-token-value-xyz", "SMTP_PW": "smtp-pw-123"}


def validate(
    data: dict[str, Any], env: dict[str, str] | None = None, **ctx: Any
) -> TicketsSettings:
    return TicketsSettings.model_validate(data, context={"env": ENV if env is None else env, **ctx})


def hook(**extra: Any) -> dict[str, Any]:
    return {"name": "hook", "type": "webhook", "url": "https://noc.example/h", **extra}


def errors(data: dict[str, Any], env: dict[str, str] | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        validate(data, env)
    return str(info.value)


def test_a_full_section_validates() -> None:
    s = validate(
        {
            "language": "en",
            "timezone": "America/Mexico_City",
            "outbox": {"retry_initial": "2s", "retry_max": "10m", "request_timeout": 5},
            "grouping": {"enabled": True, "carriers": ["carrier-a"], "window": "15s"},
            "sinks": [
                hook(secret_env="HOOK_SECRET", templates={"subject": "${ref} ${trunk} caída"}),
                {
                    "name": "carrier-rt",
                    "type": "rt",
                    "url": "https://rt.carrier.example/",
                    "token_env": "RT_TOKEN",
                    "fields": {"Requestor": "noc@customer.example", "Priority": 50},
                },
                {
                    "name": "mail",
                    "type": "email",
                    "from": "noc@customer.example",
                    "to": ["soporte@carrier.example"],
                    "smtp": {
                        "host": "smtp.customer.example",
                        "username": "noc",
                        "password_env": "SMTP_PW",
                    },
                },
            ],
            "routes": [{"sinks": ["carrier-rt", "mail"], "carriers": ["carrier-a"]}],
        }
    )
    assert s.outbox.retry_max == 600.0 and s.outbox.request_timeout == 5.0
    hook_sink = s.sink("hook")
    assert isinstance(hook_sink, WebhookSinkSettings)
    assert hook_sink.secret.get_secret_value() == WEBHOOK_SECRET
    rt = s.sink("carrier-rt")
    assert isinstance(rt, RtSinkSettings) and rt.url == "https://rt.carrier.example"
    assert rt.token is not None and rt.token.get_secret_value() == "rt-token-value-xyz"
    mail = s.sink("mail")
    assert isinstance(mail, EmailSinkSettings)
    assert mail.smtp.effective_port == 587 and mail.domain == "customer.example"


def test_secret_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "rt.token").write_text("from-file-token\n")
    s = TicketsSettings.model_validate(
        {"sinks": [{"name": "rt", "type": "rt", "url": "http://x", "token_file": "rt.token"}]},
        context={"env": {}, "base_dir": tmp_path},
    )
    rt = s.sink("rt")
    assert isinstance(rt, RtSinkSettings) and rt.token is not None
    assert rt.token.get_secret_value() == "from-file-token"


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        (hook(secret="whsec_inline"), "secrets are not written in the config file"),
        (hook(), "needs secret_env or secret_file"),
        (hook(secret_env="MISSING"), "environment variable MISSING is not set"),
        (hook(secret_env="HOOK_SECRET", secret_file="x"), "not both"),
        (hook(secret_env="SHORT_SECRET"), "at least 16 bytes"),
        (hook(secret_env="RT_TOKEN"), "whsec_<base64>"),
        (hook(secret_env="HOOK_SECRET", url="ftp://x"), "http:// or https:// URL"),
        (hook(secret_env="HOOK_SECRET", url="https://u:p@x"), "must not carry credentials"),
        (hook(secret_env="HOOK_SECRET", headers={"webhook-id": "x"}), "set by trunkwatch"),
        (
            hook(secret_env="HOOK_SECRET", templates={"subject": "${nope}"}),
            "unknown template field(s) nope",
        ),
        (hook(secret_env="HOOK_SECRET", templates={"body": "cost: $"}), "not a valid template"),
        (hook(secret_env="HOOK_SECRET", fields={"x": "${bad}"}), "fields.x"),
        (
            {
                "name": "rt",
                "type": "rt",
                "url": "http://x",
                "token_env": "RT_TOKEN",
                "username": "u",
                "password_env": "SMTP_PW",
            },
            "not both",
        ),
        ({"name": "rt", "type": "rt", "url": "http://x"}, "needs token_env/token_file"),
        (
            {
                "name": "rt",
                "type": "rt",
                "url": "http://x",
                "username": "a:b",
                "password_env": "SMTP_PW",
            },
            "cannot contain ':'",
        ),
        ({"name": "x", "type": "fax"}, "tag 'fax'"),
    ],
)
def test_bad_sinks_get_clear_errors(sink: dict[str, Any], message: str) -> None:
    env = {**ENV, "SHORT_SECRET": "whsec_" + base64.b64encode(b"short").decode()}
    assert message in errors({"sinks": [sink]}, env)


def test_secret_values_never_appear_in_errors_or_repr() -> None:
    text = errors(
        {
            "sinks": [
                {"name": "rt", "type": "rt", "url": "http://x", "token_env": "RT_TOKEN"},
                {"name": "rt", "type": "rt", "url": "http://y", "token_env": "RT_TOKEN"},
            ]
        }
    )
    assert "duplicate sink names: rt" in text
    assert "rt-token-value-xyz" not in text
    s = validate(
        {"sinks": [{"name": "rt", "type": "rt", "url": "http://x", "token_env": "RT_TOKEN"}]}
    )
    assert "rt-token-value-xyz" not in repr(s) and "rt-token-value-xyz" not in str(s)
    inline = errors({"sinks": [hook(secret="whsec_c2VjcmV0LXNob3VsZC1ub3Qtc2hvdw==")]})
    assert "c2VjcmV0LXNob3VsZC1ub3Qtc2hvdw" not in inline


def test_odd_env_names_are_not_echoed() -> None:
    # A lower-case "name" may be a secret pasted into the wrong key.
    text = errors({"sinks": [hook(secret_env="p4ssw0rd_pasted")]})
    assert "p4ssw0rd_pasted" not in text and "named here" in text


def test_routes_must_name_defined_sinks() -> None:
    text = errors({"sinks": [hook(secret_env="HOOK_SECRET")], "routes": [{"sinks": ["nope"]}]})
    assert "routes[0]: unknown sink(s) nope" in text


def test_timezone_and_durations_are_checked() -> None:
    assert "unknown time zone" in errors({"timezone": "Mars/Olympus"})
    assert "retry_initial must not exceed retry_max" in errors(
        {"outbox": {"retry_initial": "10m", "retry_max": "1m"}}
    )


def test_imap_regex_needs_a_group() -> None:
    sink = {
        "name": "mail",
        "type": "email",
        "from": "noc@c.example",
        "to": ["x@y.example"],
        "smtp": {"host": "h"},
        "imap": {"host": "h", "username": "u", "password_env": "SMTP_PW", "ticket_regex": "T#\\d+"},
    }
    assert "capturing group" in errors({"sinks": [sink]})


def test_jira_cloud_basic_or_bearer() -> None:
    base = {"name": "j", "type": "jira", "url": "https://x.atlassian.net",
            "service_desk_id": "1", "request_type_id": "10", "token_env": "RT_TOKEN"}  # fmt: skip
    s = validate({"sinks": [base]})
    assert isinstance(s.sink("j"), JiraSinkSettings)


# --- routing -------------------------------------------------------------------------------


def test_routing_by_carrier_trunk_pattern_and_kind() -> None:
    s = validate(
        {
            "sinks": [
                hook(name="a", secret_env="HOOK_SECRET"),
                hook(name="b", secret_env="HOOK_SECRET"),
                hook(name="c", secret_env="HOOK_SECRET"),
            ],
            "routes": [
                {"sinks": ["a"], "carriers": ["carrier-a"]},
                {"sinks": ["b", "a"], "trunks": ["mx-*"], "degradations": True},
                {"sinks": ["c"]},
            ],
        }
    )
    r = TicketRouting.build(
        s, [("a1", "carrier-a"), ("mx-1", "carrier-b"), ("us-1", "carrier-b"), ("a2", "")]
    )
    outage, degradation = OutageKind.OUTAGE, OutageKind.DEGRADATION
    assert r.sinks_for("a1", outage) == ("a", "c")
    assert r.sinks_for("mx-1", outage) == ("b", "a", "c")
    assert r.sinks_for("mx-1", degradation) == ("b", "a")
    assert r.sinks_for("us-1", outage) == ("c",)
    assert r.sinks_for("us-1", degradation) == ()


def test_without_routes_every_outage_goes_to_every_sink() -> None:
    s = validate(
        {
            "sinks": [
                hook(name="a", secret_env="HOOK_SECRET"),
                hook(name="b", secret_env="HOOK_SECRET"),
            ]
        }
    )
    r = TicketRouting.build(s, [("t1", "c")])
    assert r.sinks_for("t1", OutageKind.OUTAGE) == ("a", "b")
    assert r.sinks_for("t1", OutageKind.DEGRADATION) == ()


def test_grouping_applies_to_carriers_with_several_trunks() -> None:
    s = validate(
        {
            "sinks": [hook(secret_env="HOOK_SECRET")],
            "grouping": {"enabled": True, "carriers": ["a", "c"]},
        }
    )
    r = TicketRouting.build(
        s, [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b"), ("c1", "c"), ("x", "")]
    )
    assert (r.groups("a"), r.groups("b"), r.groups("c"), r.groups("")) == (
        True,
        False,
        False,
        False,
    )
