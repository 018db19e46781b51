"""Config loading: located problems, defaults inheritance, durations, alive-code policy,
secrets, YAML 1.2 behaviour and the shipped example."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor import config as config_module
from monitor.config import (
    DEFAULT_USER_AGENT,
    MAX_CONFIG_VALUES,
    AuthSettings,
    Config,
    ConfigError,
    ConfigProblem,
    Defaults,
    TrunkConfig,
    config_from_text,
    load_config,
    parse_alive_codes,
)
from monitor.durations import format_duration, parse_duration
from monitor.store import engine as store_engine

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "trunkwatch.example.yaml"
SECRET = "s3cr3t-Pa55w0rd-never-shown"
MARK = "# <-"


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _marked_line(text: str) -> int:
    """1-based line of the line carrying the `# <-` marker."""
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


def _problems(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    path = tmp_path / "trunkwatch.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return caught.value.problems


# --- located problems, one per case ---------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    field: str
    problem: str
    exact: bool = True  # False: problem is a prefix (text comes from another module)
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    env: dict[str, str] = dataclasses.field(default_factory=dict)


CASES = [
    Case(
        "unknown-top-level-key",
        """
        trunk:  # <-
          - name: a
        """,
        "trunk",
        "unknown field; did you mean 'trunks'?",
    ),
    Case(
        "unknown-trunk-key-with-suggestion",
        """
        trunks:
          - name: a
            uri: sip:a.example
            intervl: 5s  # <-
        """,
        "trunks[0].intervl",
        "unknown field; did you mean 'interval'?",
    ),
    Case(
        "unknown-nested-tls-key",
        """
        trunks:
          - name: a
            uri: sips:a.example
            tls:
              cafile: ca.pem  # <-
        """,
        "trunks[0].tls.cafile",
        "unknown field; did you mean 'ca_file'?",
    ),
    Case(
        "unknown-key-without-close-match",
        """
        http:
          zzz: 1  # <-
        """,
        "http.zzz",
        "unknown field; expected one of: listen, port, web_config_file, read_token_env, "
        "write_token_env, open_reads, header_timeout, idle_timeout, max_connections",
    ),
    Case(
        "interval-below-inherited-explicit-timeout",
        """
        defaults:
          timeout: 4s
        trunks:
          - name: a
            uri: sip:a.example
            interval: 3s  # <-
        """,
        "trunks[0].interval",
        "must be greater than timeout (4s)",
    ),
    Case(
        "trunk-timeout-not-below-inherited-interval",
        """
        trunks:
          - name: a
            uri: sip:a.example
            timeout: 5s  # <-
        """,
        "trunks[0].timeout",
        "must be less than interval (5s)",
    ),
    Case(
        "trunk-timeout-and-interval-both-set",
        """
        trunks:
          - name: a
            uri: sip:a.example
            interval: 2s
            timeout: 2500ms  # <-
        """,
        "trunks[0].timeout",
        "must be less than interval (2s)",
    ),
    Case(
        "defaults-timeout-not-below-interval",
        """
        defaults:
          interval: 3
          timeout: 3  # <-
        """,
        "defaults.timeout",
        "must be less than interval (3s)",
    ),
    Case(
        "bad-duration",
        """
        trunks:
          - name: a
            uri: sip:a.example
            interval: 5x  # <-
        """,
        "trunks[0].interval",
        "'5x' is not a duration (a number of seconds or e.g. '5s', '250ms', '1m30s', '1h')",
    ),
    Case(
        "zero-interval",
        """
        defaults:
          interval: 0s  # <-
        """,
        "defaults.interval",
        "Input should be greater than 0",
    ),
    Case(
        "interval-too-long-for-minute-resolution",
        """
        defaults:
          interval: 5h  # <-
        """,
        "defaults.interval",
        "Input should be less than or equal to 3600",
    ),
    Case(
        "down-after-zero",
        """
        trunks:
          - name: a
            uri: sip:a.example
            down_after: 0  # <-
        """,
        "trunks[0].down_after",
        "Input should be greater than or equal to 1",
    ),
    Case(
        "name-not-label-safe",
        """
        trunks:
          - name: carrier a!  # <-
            uri: sip:a.example
        """,
        "trunks[0].name",
        "must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
    ),
    Case(
        "missing-uri-at-trunk-line",
        """
        trunks:
          - name: a  # <-
            carrier: c
        """,
        "trunks[0].uri",
        "required field is missing",
    ),
    Case(
        "uri-not-sip",
        """
        trunks:
          - name: a
            uri: http://a.example/  # <-
        """,
        "trunks[0].uri",
        "must be a sip: or sips: URI, e.g. sip:sbc1.carrier.example:5060",
    ),
    Case(
        "uri-without-host",
        """
        trunks:
          - name: a
            uri: "sip:"  # <-
        """,
        "trunks[0].uri",
        "not a valid SIP URI",
        exact=False,
    ),
    Case(
        "uri-with-password",
        f"""
        trunks:
          - name: a
            uri: sip:alice:{SECRET}@a.example  # <-
        """,
        "trunks[0].uri",
        "must not carry a password (user:password@): use auth with password_env",
    ),
    Case(
        "alive-codes-bad-class",
        """
        defaults:
          alive_codes: 2xx,7xx  # <-
        """,
        "defaults.alive_codes",
        "'7xx' is not a status code (200), class (4xx), range (400-499) or exclusion (!408)",
    ),
    Case(
        "alive-codes-list-out-of-range",
        """
        trunks:
          - name: a
            uri: sip:a.example
            alive_codes: [200, 999]  # <-
        """,
        "trunks[0].alive_codes",
        "'999': SIP status codes are 100 to 699 (RFC 3261 §7.2)",
    ),
    Case(
        "duplicate-trunk-name-at-second",
        """
        trunks:
          - name: a
            uri: sip:a.example
          - name: a  # <-
            uri: sip:b.example
        """,
        "trunks[1].name",
        "duplicate trunk name 'a'; first defined at line 2",
    ),
    Case(
        "duplicate-yaml-key",
        """
        defaults:
          interval: 5s
          interval: 6s  # <-
        """,
        "",
        "duplicate key 'interval' (first at line 2)",
    ),
    Case(
        "yaml-syntax-error-bad-indent",
        """
        trunks:
          - name: a
            uri: sip:a.example
           carrier: c  # <-
        """,
        "",
        "YAML syntax error: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection that started at line 2)",
    ),
    Case(
        "yaml-syntax-error-unclosed-bracket",
        """
        defaults:
          alive_codes: [200, 404
          down_after: 3  # <-
        """,
        "",
        "YAML syntax error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that started at line 2)",
    ),
    Case(
        "tab-indentation",
        "trunks:\n\t- name: a  # <-\n",
        "",
        "YAML syntax error:",
        exact=False,
    ),
    Case(
        "password-in-yaml-rejected",
        f"""
        trunks:
          - name: a
            uri: sip:a.example
            auth:
              username: u
              password: {SECRET}  # <-
        """,
        "trunks[0].auth.password",
        "passwords are not written in the config file: use password_env: VARIABLE "
        "or password_file: PATH",
    ),
    Case(
        "password-env-not-set",
        """
        trunks:
          - name: a
            uri: sip:a.example
            auth:
              username: u
              password_env: CARRIER_A_PASSWORD  # <-
        """,
        "trunks[0].auth.password_env",
        "environment variable CARRIER_A_PASSWORD is not set",
    ),
    Case(
        "password-env-empty",
        """
        trunks:
          - name: a
            uri: sip:a.example
            auth:
              username: u
              password_env: CARRIER_A_PASSWORD  # <-
        """,
        "trunks[0].auth.password_env",
        "environment variable CARRIER_A_PASSWORD is empty",
        env={"CARRIER_A_PASSWORD": ""},
    ),
    Case(
        "password-env-and-file",
        """
        trunks:
          - name: a
            uri: sip:a.example
            auth:
              username: u
              password_env: P
              password_file: p.txt  # <-
        """,
        "trunks[0].auth.password_file",
        "give password_env or password_file, not both",
    ),
    Case(
        "auth-without-password-source",
        """
        trunks:
          - name: a
            uri: sip:a.example
            auth:  # <-
              username: u
        """,
        "trunks[0].auth",
        "needs password_env or password_file",
    ),
    Case(
        "auth-missing-username",
        """
        trunks:
          - name: a
            uri: sip:a.example
            auth:  # <-
              password_env: P
        """,
        "trunks[0].auth.username",
        "required field is missing",
        env={"P": "x"},
    ),
    Case(
        "password-file-empty",
        """
        trunks:
          - name: a
            uri: sip:a.example
            auth:
              username: u
              password_file: secrets/a.pass  # <-
        """,
        "trunks[0].auth.password_file",
        "password file {dir}/secrets/a.pass is empty",
        files={"secrets/a.pass": "  \n"},
    ),
    Case(
        "ca-file-missing",
        """
        trunks:
          - name: a
            uri: sips:a.example
            tls:
              ca_file: certs/ca.pem  # <-
        """,
        "trunks[0].tls.ca_file",
        "file not found: {dir}/certs/ca.pem",
    ),
    Case(
        "key-file-without-cert",
        """
        trunks:
          - name: a
            uri: sips:a.example
            tls:
              key_file: client.key  # <-
        """,
        "trunks[0].tls.key_file",
        "key_file needs cert_file",
        files={"client.key": "key"},
    ),
    Case(
        "http-port-out-of-range",
        """
        http:
          port: 70000  # <-
        """,
        "http.port",
        "Input should be less than or equal to 65535",
    ),
    Case(
        "http-listen-not-host",
        """
        http:
          listen: "not a host"  # <-
        """,
        "http.listen",
        "must be an IP address or a host name",
    ),
    Case(
        "store-url-with-password",
        """
        store:
          url: postgresql://tw:hunter2@db.example/tw  # <-
        """,
        "store.url",
        "do not put the password in the URL; set PGPASSWORD or use a .pgpass file",
    ),
    Case(
        "store-url-unsupported",
        """
        store:
          url: mysql://db.example/tw  # <-
        """,
        "store.url",
        "unsupported database 'mysql': use sqlite or postgresql",
    ),
    Case(
        "store-sqlite-directory-missing",
        """
        store:
          url: sqlite:///no/such/dir/tw.db  # <-
        """,
        "store.url",
        "directory for the database does not exist: {dir}/no/such/dir",
    ),
    Case(
        "trunks-not-a-list",
        """
        trunks:  # <-
          name: a
        """,
        "trunks",
        "must be a list of trunks (lines starting with '- ')",
    ),
    Case(
        "section-not-a-mapping",
        """
        scheduler: 5  # <-
        """,
        "scheduler",
        "must be a mapping of fields (key: value)",
    ),
    Case(
        "bool-where-int-expected",
        """
        scheduler:
          max_in_flight: lots  # <-
        """,
        "scheduler.max_in_flight",
        "Input should be a valid integer, unable to parse string as an integer",
    ),
    Case(
        "yaml-tag-not-supported",
        """
        trunks:
          - name: a
            uri: !env TRUNK_URI  # <-
        """,
        "trunks[0].uri",
        "YAML tag !env is not supported here",
    ),
    Case(
        "user-agent-header-injection",
        """
        trunks:
          - name: a
            uri: sip:a.example
            user_agent: "tw\\r\\nX-Injected: 1"  # <-
        """,
        "trunks[0].user_agent",
        "must not contain control characters (line breaks, tabs, ...)",
    ),
    Case(
        "from-uri-not-sip",
        """
        trunks:
          - name: a
            uri: sip:a.example
            from_uri: tel:+15551234  # <-
        """,
        "trunks[0].from_uri",
        "must be a sip: or sips: URI, e.g. sip:sbc1.carrier.example:5060",
    ),
    Case(
        "agent-not-label-safe",
        """
        agent: "noc mex"  # <-
        """,
        "agent",
        "must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_problem_names_file_line_field(case: Case, tmp_path: Path) -> None:
    text = _yaml(case.text)
    for name, content in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    problems = _problems(text, tmp_path, case.env)
    assert len(problems) == 1, problems
    [problem] = problems
    expected = case.problem.format(dir=tmp_path)
    assert problem.file == str(tmp_path / "trunkwatch.yaml")
    assert problem.line == _marked_line(text)
    assert problem.field == case.field
    if case.exact:
        assert problem.problem == expected
    else:
        assert problem.problem.startswith(expected)


def test_spec_example_line() -> None:
    text = _yaml(
        """
        agent: noc-1
        defaults:
          interval: 5s
          timeout: 4s
        trunks:
          - name: a
            uri: sip:a.example
            interval: 10s
          - name: b
            uri: sip:b.example
            carrier: c
            interval: 3s
        """
    )
    with pytest.raises(ConfigError) as caught:
        config_from_text(text, source="trunkwatch.yaml")
    assert str(caught.value) == (
        "trunkwatch.yaml:12: trunks[1].interval: must be greater than timeout (4s)"
    )


def test_all_problems_collected_in_line_order(tmp_path: Path) -> None:
    text = _yaml(
        """
        bogus: 1
        http:
          port: -1
        defaults:
          down_after: 0
        trunks:
          - name: a
            uri: ftp://x
          - name: b
            uri: sip:b.example
            timeout: 9s
          - name: a
            uri: sip:c.example
        """
    )
    problems = _problems(text, tmp_path)
    assert [(p.line, p.field) for p in problems] == [
        (1, "bogus"),
        (3, "http.port"),
        (5, "defaults.down_after"),
        (8, "trunks[0].uri"),
        (11, "trunks[1].timeout"),
        (12, "trunks[2].name"),
    ]
    rendered = str(ConfigError(problems)).splitlines()
    assert rendered[0] == f"{tmp_path / 'trunkwatch.yaml'}:1: bogus: unknown field; " + (
        "expected one of: agent, site, store, http, scheduler, vantage, cluster, certificates, "
        "dns, defaults, trunks, endpoints, calls, tickets, sla"
    )
    assert len(rendered) == 6


def test_broken_default_is_reported_once_not_per_trunk(tmp_path: Path) -> None:
    text = _yaml(
        """
        defaults:
          interval: soon
        trunks:
          - name: a
            uri: sip:a.example
          - name: b
            uri: sip:b.example
            timeout: 1s
        """
    )
    problems = _problems(text, tmp_path)
    assert [(p.line, p.field) for p in problems] == [(2, "defaults.interval")]


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/nonexistent/trunkwatch.yaml")
    [problem] = caught.value.problems
    assert problem == ConfigProblem("/nonexistent/trunkwatch.yaml", None, "", "file not found")
    assert str(caught.value) == "/nonexistent/trunkwatch.yaml: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.problems[0].problem.startswith("cannot read the file")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "tw.yaml"
    path.write_bytes(b"agent: a\ncarrier: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.problem) == (2, "not valid UTF-8 (byte 21)")


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_text("- a\n- b\n")
    [problem] = caught.value.problems
    assert problem.line == 1
    assert problem.problem.startswith("the file must be a mapping of sections")


def test_alias_bomb_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "MAX_CONFIG_VALUES", 1000)
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 6):
        prev = chr(ord("a") + n - 1)
        cur = chr(ord("a") + n)
        levels.append(f"{cur}: &{cur} [{', '.join('*' + prev for _ in range(10))}]")
    with pytest.raises(ConfigError) as caught:
        config_from_text("\n".join(levels) + "\n")
    assert caught.value.problems[0].problem == ("more than 1000 values (runaway YAML aliases?)")
    assert MAX_CONFIG_VALUES >= 100_000  # the real limit leaves room for thousands of trunks


# --- defaults and inheritance ---------------------------------------------------------------


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = config_from_text("", base_dir=tmp_path)
    assert cfg.trunks == ()
    assert cfg.defaults == Defaults()
    assert (cfg.defaults.interval, cfg.defaults.timeout) == (5.0, 4.0)
    assert (cfg.defaults.down_after, cfg.defaults.up_after) == (3, 2)
    assert cfg.http.listen == "127.0.0.1" and cfg.http.port == 9465
    assert cfg.scheduler.max_in_flight is None and cfg.scheduler.udp_rcvbuf == 4 * 1024 * 1024
    assert cfg.in_flight_limit(0) == 2000  # no trunks: the headroom alone
    assert cfg.store.url == f"sqlite:///{tmp_path}/trunkwatch.db"
    assert config_module.LABEL_PATTERN.match(cfg.agent)


def test_trunks_inherit_and_override(tmp_path: Path) -> None:
    cfg = config_from_text(
        _yaml(
            """
            defaults:
              interval: 10s
              down_after: 4
              alive_codes: [200]
            trunks:
              - name: inherits
                uri: sip:a.example
              - name: overrides
                uri: sip:b.example;transport=tcp
                interval: 1m30s
                timeout: 2s
                down_after: 1
                up_after: 5
                alive_codes: "2xx,404"
                max_forwards: 0
            """
        ),
        base_dir=tmp_path,
    )
    first, second = cfg.trunks
    assert (first.interval, first.timeout, first.down_after, first.up_after) == (10.0, 4.0, 4, 2)
    assert first.alive_codes == frozenset({200})
    assert first.carrier == "" and first.user_agent == DEFAULT_USER_AGENT
    assert first.max_forwards == 70 and first.auth is None and first.tls.verify is True
    assert (second.interval, second.timeout, second.down_after, second.up_after) == (
        90.0,
        2.0,
        1,
        5,
    )
    assert second.alive_codes == frozenset(range(200, 300)) | {404}
    assert second.max_forwards == 0


@pytest.mark.parametrize(
    ("defaults_yaml", "trunk_yaml", "expected_timeout"),
    [
        # Only an interval: the timeout shrinks to 0.8 of it, capped at the 4s default.
        ("interval: 2", "", 1.6),
        ("interval: 30s", "", 4.0),
        ("", "interval: 2", 1.6),
        ("interval: 30s", "interval: 1s", 0.8),
        # An explicit timeout is inherited as written.
        ("timeout: 1s", "interval: 2", 1.0),
        ("interval: 10s\n  timeout: 7s", "", 7.0),
        ("", "interval: 10\n    timeout: 9", 9.0),
    ],
)
def test_implicit_timeout(defaults_yaml: str, trunk_yaml: str, expected_timeout: float) -> None:
    text = "defaults:\n  " + (defaults_yaml or "{}") + "\n"
    text += "trunks:\n  - name: a\n    uri: sip:a.example\n"
    if trunk_yaml:
        text += "    " + trunk_yaml + "\n"
    cfg = config_from_text(text)
    assert cfg.trunks[0].timeout == pytest.approx(expected_timeout)


def test_models_validate_when_built_in_code() -> None:
    assert Defaults(interval=2).timeout == pytest.approx(1.6)
    common = dict(name="a", uri="sip:a.example", down_after=1, up_after=1, alive_codes="2xx")
    trunk = TrunkConfig(interval="5s", timeout="250ms", **common)
    assert (trunk.interval, trunk.timeout) == (5.0, 0.25)
    assert trunk.alive_codes == frozenset(range(200, 300))
    with pytest.raises(ValidationError, match=r"timeout \(5s\) must be less than interval \(5s\)"):
        TrunkConfig(interval=5, timeout=5, **common)
    with pytest.raises(ValidationError, match="duplicate trunk names: a"):
        Config(trunks=(trunk, trunk))
    with pytest.raises(ValidationError):
        trunk.interval = 1.0  # frozen


def test_relative_paths_resolve_against_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "certs").mkdir(parents=True)
    (conf_dir / "certs" / "ca.pem").write_text("ca")
    (conf_dir / "certs" / "client.pem").write_text("cert")
    (conf_dir / "pw").write_text(f"{SECRET}\n")
    path = conf_dir / "tw.yaml"
    path.write_text(
        _yaml(
            """
            store:
              url: sqlite:///state/tw.db
            trunks:
              - name: a
                uri: sips:a.example:5061
                tls:
                  ca_file: certs/ca.pem
                  cert_file: certs/client.pem
                  server_name: a.example
                auth:
                  username: u
                  password_file: ./pw
                  realm: a.example
            """
        )
    )
    (conf_dir / "state").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path(os.path.relpath(path, elsewhere)))
    tls = cfg.trunks[0].tls
    assert tls.ca_file == conf_dir / "certs" / "ca.pem"
    assert tls.cert_file == conf_dir / "certs" / "client.pem"
    assert tls.key_file is None and tls.server_name == "a.example"
    assert cfg.store.url == f"sqlite:///{conf_dir}/state/tw.db"
    auth = cfg.trunks[0].auth
    assert auth is not None and auth.password.get_secret_value() == SECRET  # stripped
    assert auth.realm == "a.example"
    assert cfg.source == os.path.relpath(path, elsewhere)


def test_store_urls_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether asyncpg is installed is tests/test_config_secrets.py's concern.
    monkeypatch.setattr(store_engine, "OPTIONAL_DRIVERS", {})
    for url in ("postgresql://tw@db.example/tw", "sqlite:///:memory:", "sqlite://"):
        cfg = config_from_text(f"store:\n  url: {url!r}\n")
        assert cfg.store.url == url


def test_merge_keys_work_and_locate() -> None:
    text = _yaml(
        """
        common: &common
          carrier: x
        trunks:
          - <<: *common
            name: a
            uri: sip:a.example
        """
    )
    with pytest.raises(ConfigError) as caught:
        config_from_text(text)
    assert [(p.line, p.field) for p in caught.value.problems] == [(1, "common")]
    text = _yaml(
        """
        trunks:
          - &base
            name: a
            uri: sip:a.example
            carrier: x
            interval: 3s
          - <<: *base
            name: b
            interval: 2s
          - <<: *base
            name: c
            down_after: 0
        """
    )
    with pytest.raises(ConfigError) as caught:
        config_from_text(text)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (12, "trunks[2].down_after")
    ok = config_from_text(text.replace("down_after: 0", "down_after: 1"))
    assert [(t.name, t.carrier, t.interval) for t in ok.trunks] == [
        ("a", "x", 3.0),
        ("b", "x", 2.0),
        ("c", "x", 3.0),
    ]


@pytest.mark.parametrize(
    ("uri", "valid"),
    [
        ("sip:sbc1.carrier.example:5060;transport=tcp", True),
        ("sips:edge.carrier.example:5061", True),
        ("SIP:10.0.0.1", True),
        ("sip:monitor@[2001:db8::1]:5060", True),
        ("sip:", False),
        ("sip:a b.example", False),
        ("sip:a.example:99999", False),
        ("sip:u:pw@a.example", False),
        ("tel:+15551234", False),
    ],
)
def test_sip_uri_check(uri: str, valid: bool) -> None:
    if valid:
        assert config_module.check_sip_uri(uri) == uri
    else:
        with pytest.raises(ValueError) as caught:
            config_module.check_sip_uri(uri)
        assert "pw" not in str(caught.value)


# --- YAML 1.2 -------------------------------------------------------------------------------


def test_yaml_12_scalars_stay_strings() -> None:
    cfg = config_from_text(
        _yaml(
            """
            agent: NO
            trunks:
              - name: "22:30"
                carrier: NO
                uri: sip:a.example
              - name: 22:31
                carrier: yes
                uri: sip:b.example
              - name: 1234
                carrier: off
                uri: sip:c.example
            """
        )
    )
    assert cfg.agent == "NO"
    assert [(t.name, t.carrier) for t in cfg.trunks] == [
        ("22:30", "NO"),
        ("22:31", "yes"),
        ("1234", "off"),
    ]


def test_yaml_12_booleans() -> None:
    cfg = config_from_text("scheduler:\n  uvloop: false\n")
    assert cfg.scheduler.uvloop is False


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (2.5, 2.5),
        ("5", 5.0),
        ("0.25", 0.25),
        ("5s", 5.0),
        ("250ms", 0.25),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h2m3s4ms", 3723.004),
        ("1.5m", 90.0),
        (" 5s ", 5.0),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "s", "5x", "5 s", "30s1m", "-5s", "1e3", "ms", "5sec", True, float("inf")]
)
def test_parse_duration_rejects(value: str | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=10_000_000).map(lambda ms: ms / 1000))
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)


# --- alive codes ----------------------------------------------------------------------------

TWO_AND_FOUR_BUT_408 = frozenset(range(200, 300)) | (frozenset(range(400, 500)) - {408})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2xx,4xx,!408", TWO_AND_FOUR_BUT_408),
        ("!408, 4xx, 2XX", TWO_AND_FOUR_BUT_408),  # exclusions apply after inclusions
        (["2xx", "400-499", "!408"], TWO_AND_FOUR_BUT_408),
        (["200", "404", "400-499", "!408"], frozenset(range(400, 500)) - {408} | {200}),
        ([200, 404, 405, 483], frozenset({200, 404, 405, 483})),
        (["2xx,4xx", "!4xx"], frozenset(range(200, 300))),
        ("100-699,!5xx,!6xx", frozenset(range(100, 500))),
        ("200", frozenset({200})),
    ],
)
def test_parse_alive_codes(spec: str | list[str | int], expected: frozenset[int]) -> None:
    assert parse_alive_codes(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("7xx", "'7xx' is not a status code"),
        ("99", "'99' is not a status code"),
        ("2xx,,4xx", "empty entry"),
        ("500-400", "'500-400': range starts after it ends"),
        ("!408", "no status code is left counting as alive"),
        ("2xx,!2xx", "no status code is left counting as alive"),
        ([], "no status codes given"),
        ([True], "True is not a status code"),
        ([700], "'700': SIP status codes are 100 to 699"),
        ("abc", "'abc' is not a status code"),
    ],
)
def test_parse_alive_codes_rejects(spec: str | list[str | int], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_alive_codes(spec)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("yaml_value", "expected"),
    [
        ("200", frozenset({200})),
        ('"2xx"', frozenset(range(200, 300))),
        ("[2xx, '!204']", frozenset(range(200, 300)) - {204}),
        ("\n    - 200\n    - 486", frozenset({200, 486})),
    ],
)
def test_alive_codes_yaml_forms(yaml_value: str, expected: frozenset[int]) -> None:
    cfg = config_from_text(f"defaults:\n  alive_codes: {yaml_value}\n")
    assert cfg.defaults.alive_codes == expected


# --- secrets --------------------------------------------------------------------------------

SECRET_TRUNK = """
trunks:
  - name: a
    uri: sip:a.example
    auth:
      username: u
      password_env: CARRIER_A_PASSWORD
"""


def test_secret_not_in_repr_str_or_dump() -> None:
    cfg = config_from_text(SECRET_TRUNK, env={"CARRIER_A_PASSWORD": SECRET})
    auth = cfg.trunks[0].auth
    assert isinstance(auth, AuthSettings)
    assert auth.password.get_secret_value() == SECRET
    for text in (repr(cfg), str(cfg), repr(auth), str(auth), cfg.model_dump_json()):
        assert SECRET not in text
    assert SECRET not in str(cfg.model_dump())


def test_secret_not_in_errors(tmp_path: Path) -> None:
    # Another problem in the same trunk: the error text lists it without the password.
    text = SECRET_TRUNK + "    interval: -1\n"
    with pytest.raises(ConfigError) as caught:
        config_from_text(text, env={"CARRIER_A_PASSWORD": SECRET})
    assert "trunks[0].interval" in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value.problems)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


@pytest.mark.parametrize(
    "auth_yaml",
    [
        f"password: {SECRET}",
        f"password: {SECRET}\n      password: x",  # duplicate key: ruamel quotes both values
        f"password_env: {SECRET}",  # a password pasted into the wrong key
        "password_env: s3cr3tpassword",
        f"password_file: {SECRET.replace('-', '')}",
    ],
)
def test_misplaced_password_never_echoed(auth_yaml: str, tmp_path: Path) -> None:
    text = SECRET_TRUNK.replace("password_env: CARRIER_A_PASSWORD", auth_yaml)
    with pytest.raises(ConfigError) as caught:
        config_from_text(text, base_dir=tmp_path, env={})
    rendered = str(caught.value)
    for secret in (SECRET, SECRET.replace("-", ""), "s3cr3tpassword"):
        assert secret not in rendered
    assert "password" in rendered  # the problem is still named


def test_secret_not_in_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        AuthSettings(username="", password=SECRET)
    assert SECRET not in str(caught.value)


# --- the shipped example --------------------------------------------------------------------


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE, env={"TRUNKWATCH_CARRIER_B_PASSWORD": SECRET})
    assert cfg.agent == "noc-mex-1"
    assert cfg.store.url == f"sqlite:///{EXAMPLE.parent}/trunkwatch.db"
    assert [(t.name, t.carrier) for t in cfg.trunks] == [
        ("carrier-a-sbc1", "carrier-a"),
        ("carrier-a-sbc2", "carrier-a"),
        ("carrier-b-tls", "carrier-b"),
    ]
    udp, tcp, tls = cfg.trunks
    assert (udp.interval, udp.timeout, udp.down_after, udp.up_after) == (5.0, 4.0, 3, 2)
    assert udp.alive_codes == TWO_AND_FOUR_BUT_408
    assert tcp.uri.endswith(";transport=tcp")
    assert (tcp.interval, tcp.timeout, tcp.down_after) == (10.0, 4.0, 2)
    assert tcp.alive_codes == frozenset({200, 404, 405})
    assert tcp.from_uri == "sip:monitor@noc.example.com"
    assert tls.uri.startswith("sips:")
    assert tls.tls.verify is True and tls.tls.ca_file is None
    assert tls.tls.server_name == "edge.carrier-b.example"
    assert tls.auth is not None and tls.auth.username == "noc-monitor"
    assert tls.auth.password.get_secret_value() == SECRET
    assert [(e.name, e.kind, e.port) for e in cfg.endpoints] == [
        ("uc-proxy", "https", 443),
        ("edge-sip", "tls", 5061),
        ("dirsync", "tcp", 636),
        ("vpn-mx", "icmp", None),
    ]


def test_example_config_names_missing_env() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, env={})
    [problem] = caught.value.problems
    line = EXAMPLE.read_text().splitlines()[problem.line - 1] if problem.line else ""
    assert "password_env: TRUNKWATCH_CARRIER_B_PASSWORD" in line
    assert problem.field == "trunks[2].auth.password_env"
    assert problem.problem == "environment variable TRUNKWATCH_CARRIER_B_PASSWORD is not set"


def test_site_is_read_and_checked_like_the_agent_name() -> None:
    cfg = config_from_text("agent: mx-1\nsite: mexico-city\n")
    assert (cfg.agent, cfg.site) == ("mx-1", "mexico-city")
    with pytest.raises(ConfigError, match="site"):
        config_from_text('site: "no spaces allowed"\n')


def test_quorum_comes_from_defaults_and_a_trunk_may_set_its_own() -> None:
    cfg = config_from_text(
        "cluster: {enabled: true}\n"
        "defaults: {quorum: 2}\n"
        "trunks:\n"
        "  - {name: a, uri: 'sip:127.0.0.1:5060'}\n"
        "  - {name: b, uri: 'sip:127.0.0.1:5060', quorum: 3}\n"
    )
    assert cfg.cluster.quorums(cfg.trunks) == {"a": 2, "b": 3}
    alone = config_from_text("trunks: [{name: a, uri: 'sip:127.0.0.1:5060'}]\n")
    assert alone.cluster.quorums(alone.trunks) is None  # one agent: its outages count
    with pytest.raises(ConfigError, match="quorum"):
        config_from_text("defaults: {quorum: 0}\n")


def test_an_agent_probes_only_the_trunks_named_for_it() -> None:
    text = (
        "agent: mx-1\n"
        "trunks:\n"
        "  - {name: both, uri: 'sip:127.0.0.1:5060'}\n"
        "  - {name: mine, uri: 'sip:127.0.0.1:5060', agents: [mx-1]}\n"
        "  - {name: theirs, uri: 'sip:127.0.0.1:5060', agents: [gdl-1, gdl-2]}\n"
    )
    cfg = config_from_text(text)
    assert [t.name for t in cfg.watching().trunks] == ["both", "mine"]
    # Only trunks that name agents are listed; "both" is probed by every agent.
    assert cfg.cluster.watchers(cfg.trunks) == {
        "mine": frozenset({"mx-1"}),
        "theirs": frozenset({"gdl-1", "gdl-2"}),
    }
    other = config_from_text(text.replace("agent: mx-1", "agent: gdl-1"))
    assert [t.name for t in other.watching().trunks] == ["both", "theirs"]


def test_control_targets_problems_name_the_entry(tmp_path: Path) -> None:
    text = _yaml(
        """
        vantage:
          control_targets:
            - sip:peer.example
            - tcp://resolver.example
            - https://x.example
            - sip:user:secret@peer.example
          control_interval: 1s
          control_timeout: 2s
        """
    )
    problems = _problems(text, tmp_path)
    fields = {p.field: p.problem for p in problems}
    assert "tcp:// needs a port" in fields["vantage.control_targets[1]"]
    assert "expected a SIP URI" in fields["vantage.control_targets[2]"]
    assert "password" in fields["vantage.control_targets[3]"]
    assert "secret" not in str(ConfigError(problems))
    ok = config_from_text(
        _yaml(
            """
            vantage:
              control_targets: ["sip:peer.example;transport=tcp", "tcp://[2001:db8::1]:53"]
              control_interval: 3s
            """
        )
    )
    assert ok.vantage.control_interval == 3.0
    guard = ok.vantage.guard("a", {"t": "c"})
    assert list(guard.controls) == ["sip:peer.example;transport=tcp", "tcp://[2001:db8::1]:53"]
    (loop,) = ok.vantage.control_loops(lambda result: None)
    assert [(t.host, t.port) for t in loop.targets] == [("", 0), ("2001:db8::1", 53)]
    bad_timeout = _yaml(
        """
        vantage: {control_targets: ["tcp://h.example:5060"], control_interval: 1s}
        """
    )
    (problem,) = _problems(bad_timeout, tmp_path)  # the timeout (2 s by default) must fit
    assert problem.field.startswith("vantage") and "less than interval" in problem.problem
