"""Read-only commands load the config without its secrets (issue 9), and a missing database
driver is named with its install, not lost in a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor import cli
from monitor.app import Monitor
from monitor.config import ConfigError, load_config
from monitor.secrets import SECRET_NOT_READ, SecretsNotRead
from monitor.store import engine

# Every kind of secret the config knows: a trunk's digest password, and each ticket sink's.
CONFIG = """\
agent: ro
trunks:
  - name: t1
    carrier: c
    uri: "sip:127.0.0.1:5999"
    auth: {username: u, password_env: TW_TRUNK_PW}
  - name: t2
    carrier: c
    uri: "sip:127.0.0.1:5998"
    auth: {username: u, password_file: /nonexistent/trunk.pass}
tickets:
  sinks:
    - {name: hook, type: webhook, url: "https://hook.example/x", secret_env: TW_HOOK}
    - {name: rt, type: rt, url: "https://rt.example", token_file: /nonexistent/rt.token}
    - {name: pd, type: pagerduty, routing_key_env: TW_PD}
    - {name: sn, type: servicenow, url: "https://sn.example", username: u, password_env: TW_SN}
    - {name: jsm, type: jira, url: "https://j.example", service_desk_id: "1",
       request_type_id: "10", username: u@x.example, token_env: TW_JIRA}
    - {name: zammad, type: zammad, url: "https://z.example", group: Users,
       customer: noc@x.example, token_env: TW_ZAMMAD}
    - name: mail
      type: email
      from: noc@x.example
      to: [soporte@carrier.example]
      smtp: {host: smtp.example, username: noc, password_env: TW_SMTP}
      imap: {host: imap.example, username: noc, password_file: /nonexistent/imap.pass}
"""


def test_read_only_load_needs_no_secret_and_reads_none(tmp_path: Path) -> None:
    path = tmp_path / "tw.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})  # the daemon's load: every secret is needed
    assert "TW_TRUNK_PW" in str(info.value) and "TW_HOOK" in str(info.value)

    cfg = load_config(path, env={}, secrets=False)
    assert not cfg.secrets_read
    secrets = [t.auth.password for t in cfg.trunks if t.auth is not None]
    secrets += [
        getattr(sink, name)
        for sink in cfg.tickets.sinks
        for name in ("secret", "token", "routing_key", "password")
        if getattr(sink, name, None) is not None
    ]
    secrets += [cfg.tickets.sink("mail").smtp.password, cfg.tickets.sink("mail").imap.password]  # type: ignore[union-attr]
    assert len(secrets) == 10
    assert {s.get_secret_value() for s in secrets} == {SECRET_NOT_READ}
    # Such a config can never start probing or ticketing.
    with pytest.raises(SecretsNotRead):
        Monitor(cfg)


def test_a_missing_database_driver_is_named_with_its_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        engine.OPTIONAL_DRIVERS, "postgresql+asyncpg", ("trunkwatch_no_such_driver", "postgres")
    )
    path = tmp_path / "tw.yaml"
    path.write_text('store: {url: "postgresql://tw@127.0.0.1/tw"}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.field) == (1, "store.url")
    assert "'trunkwatch_no_such_driver', which is not installed" in problem.problem
    assert "pip install 'trunkwatch[postgres]'" in problem.problem
    with pytest.raises(ValueError, match="not installed"):
        engine.async_url("postgresql://tw@127.0.0.1/tw")


def test_an_import_error_inside_a_command_is_not_taken_for_a_missing_uvloop() -> None:
    async def command() -> None:
        await asyncio.sleep(0)
        raise ImportError("No module named 'asyncpg'")

    # Before issue 9 the fallback re-ran the spent coroutine: "cannot reuse already awaited".
    with pytest.raises(ImportError, match="asyncpg"):
        cli._run(command())
