"""`trunkwatch probe register` through typer's CliRunner (only the probe sub-app is mounted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from peers import TlsFiles
from registrar_peer import MIN_EXPIRES, USERS, Registrar, running_registrar
from typer.testing import CliRunner

from monitor.cli import probe_app

ENV = "TW_TEST_REGISTER_PW"


@pytest.fixture
def registrar(tmp_path: Path, tls_ca: TlsFiles) -> Iterator[Registrar]:
    with running_registrar(tmp_path / "registrar", tls_ca) as reg:
        yield reg


def register(
    reg: Registrar, *args: str, user: str = "alice", password: str | None = None
) -> Result:
    runner = CliRunner()
    argv = ["register", reg.aor(user), "--password-env", ENV, "--registrar",
            f"{reg.host}:{reg.udp_port}", *args]  # fmt: skip
    return runner.invoke(probe_app, argv, env={ENV: password or USERS[user]})


def test_registers_prints_the_binding_and_unregisters(registrar: Registrar) -> None:
    result = register(registrar, "--expires", "120", "--username", "alice")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "outcome: ok" in lines and "status: registered" in lines
    assert "response: 200 OK" in lines and "expires: 120 s" in lines
    bindings = [line for line in lines if line.startswith("binding: <sip:alice@127.0.0.1:")]
    assert len(bindings) == 1 and bindings[0].endswith(";transport=udp>;expires=120")
    assert "unregister: ok (200)" in lines
    assert registrar.bindings("alice") == {}  # un-registered on the way out


def test_423_then_registered_with_min_expires(registrar: Registrar) -> None:
    result = register(registrar, "--expires", "10")
    assert result.exit_code == 0, result.output
    assert f"expires: {MIN_EXPIRES} s" in result.output.splitlines()


def test_wrong_password_fails_without_showing_it(registrar: Registrar) -> None:
    secret = "cli-wrong-secret-9"
    result = register(registrar, password=secret)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "outcome: auth_loop" in lines and "status: not registered" in lines
    assert "response: 401 Unauthorized" in lines
    assert secret not in result.output


def test_forbidden_user(registrar: Registrar) -> None:
    result = register(registrar, user="banned")
    assert result.exit_code == 1, result.output
    assert "outcome: forbidden" in result.output.splitlines()


def test_registrar_down_times_out(registrar: Registrar) -> None:
    registrar.stop()
    result = register(registrar, "--timeout", "1")
    assert result.exit_code == 1, result.output
    assert "outcome: timeout" in result.output.splitlines()
    assert "unregister" not in result.output  # never registered: nothing to remove


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["register", "sip:alice@127.0.0.1", "--password-env", ENV], {}),  # variable unset
        (["register", "not a uri", "--password-env", ENV], {ENV: "x"}),
        (["register", "sip:127.0.0.1", "--password-env", ENV], {ENV: "x"}),  # no user
        (
            ["register", "sip:a@127.0.0.1", "--password-env", ENV, "--registrar", "h:99999"],
            {ENV: "x"},
        ),  # a port out of range
        (["register", "sip:a@127.0.0.1;transport=tcp", "--password-env", ENV], {ENV: "x"}),
        (["register", "sip:a@127.0.0.1", "--password-env", ENV, "--expires", "0"], {ENV: "x"}),
        (["register", "sip:a@127.0.0.1"], {ENV: "x"}),  # --password-env is required
    ],
)
def test_usage_errors_exit_2(argv: list[str], env: dict[str, str]) -> None:
    result = CliRunner().invoke(probe_app, argv, env={ENV: None, **env})  # type: ignore[dict-item]
    assert result.exit_code == 2, result.output
