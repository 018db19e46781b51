"""Bad configuration gets `file:line: field: problem` and exit 2, never a traceback or a hang
(issue 10), through the real CLI: `check-config` and `run`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from peers import missing_peer

TRUNKWATCH = str(Path(sys.executable).parent / "trunkwatch")
TRUNK = 'trunks: [{name: t1, carrier: c, uri: "sip:127.0.0.1:9"}]\n'
# Every case must end well within this: a hang is a failure, not a slow pass.
TIMEOUT_S = 30


def tw(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, TRUNKWATCH, "--log-format", "json", *args],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip


def both(config: Path) -> list[subprocess.CompletedProcess[str]]:
    return [tw("check-config", "-c", str(config)), tw("run", "-c", str(config))]


def assert_clear(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("deep", "trunks: " + "[" * 100_000 + "\n", "deep.yaml: nested too deeply"),
        (
            "tag",
            'agent: !!python/object/apply:os.system ["touch /tmp/trunkwatch-pwned"]\n',
            "tag.yaml:1: YAML tags that name Python objects (!!python/...) are not allowed",
        ),
        (
            "digits",
            "defaults: {down_after: " + "7" * 5000 + "}\n",
            "digits.yaml:1: a number of more than 4300 digits",
        ),
        (
            "longpath",
            'store: {url: "sqlite:////tmp/' + "a" * 5000 + '.db"}\n',
            "longpath.yaml:1: store.url: the database path is longer than the OS allows",
        ),
        (
            "longname",
            'store: {url: "sqlite:////tmp/' + "b" * 300 + '.db"}\n',
            "longname.yaml:1: store.url: a name in the database path is longer than the OS",
        ),
        (
            "rcvbuf",
            "scheduler: {udp_rcvbuf: 2147483648}\n" + TRUNK,
            "rcvbuf.yaml:1: scheduler.udp_rcvbuf: Input should be less than or equal to 2147483647",
        ),
        (
            "zero",
            TRUNK.replace("}]", ", auth: {username: u, password_file: /dev/zero}}]"),
            "zero.yaml:1: trunks[0].auth.password_file: password file /dev/zero is not a "
            "regular file",
        ),
    ],
)
def test_hostile_config_is_a_clear_error(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    config = tmp_path / f"{name}.yaml"
    config.write_text(text)
    for done in both(config):
        assert_clear(done, expected)
    assert not Path("/tmp/trunkwatch-pwned").exists()


def test_an_oversized_secret_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "pw"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block for ever without a writer
    for secret, problem in ((big, "is larger than 65536 bytes"), (fifo, "is not a regular file")):
        config = tmp_path / "tw.yaml"
        config.write_text(
            TRUNK.replace("}]", f", auth: {{username: u, password_file: {secret}}}}}]")
        )
        for done in both(config):
            assert_clear(done, f"password file {secret} {problem}")


def test_a_read_only_store_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    config = tmp_path / "tw.yaml"
    config.write_text(f'store: {{url: "sqlite:///{ro}/tw.db"}}\n{TRUNK}')
    expected = f"tw.yaml:1: store.url: directory for the database is not writable: {ro}"
    if os.geteuid() != 0:
        ro.chmod(0o555)
        for done in both(config):
            assert_clear(done, expected)
        return
    # Root writes through permissions: make it a read-only file system, in a mount
    # namespace of its own (nothing outside it sees the mount).
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        missing_peer("unshare -m (mount namespaces) is not available")
    mount = f"mount -t tmpfs -o ro tmpfs {ro}"
    for command in ("check-config", "run"):
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh", TRUNKWATCH, command,
             "-c", str(config)],
            capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
        assert_clear(done, expected)


def test_a_database_locked_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "tw.db"
    config = tmp_path / "tw.yaml"
    config.write_text(f'store: {{url: "sqlite:///{db}"}}\n{TRUNK}')
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for done in both(config):
            assert_clear(done, "store.url: the database is locked by another process")
    finally:
        holder.kill()
        holder.wait()
    # Once the other process is gone, the same config is fine.
    assert tw("check-config", "-c", str(config)).returncode == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_an_empty_config_warns(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    done = tw("check-config", "-c", str(config))
    assert done.returncode == 0
    assert "warning: no trunks: nothing will be monitored" in done.stderr
