"""A real PostgreSQL 15 for the tests: its own cluster (initdb + pg_ctl) in a temp directory,
on 127.0.0.1 and a free port, stopped by the suite. No system service is used or touched.

PostgreSQL refuses to run as root: when the suite runs as root (CI does), the cluster
belongs to the `postgres` user that Debian's package creates, and every server command runs
as that user (runuser)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peers import LOOPBACK, free_port, missing_peer

BINDIR_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
SUPERUSER = "trunkwatch"  # the cluster's superuser (trust auth on loopback only)
START_TIMEOUT_S = 60


def pg_bindir() -> Path:
    for candidate in BINDIR_CANDIDATES:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    missing_peer("PostgreSQL (initdb, pg_ctl) is not installed: make test-deps installs it")
    raise AssertionError("unreachable")


@dataclass
class PgServer:
    bindir: Path
    data: Path
    port: int
    owner: str | None  # the OS user running the server (None: ourselves)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> str:
        command = [str(self.bindir / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self.run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", LOOPBACK,
            "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", statement,
        )  # fmt: skip

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = "tw_" + uuid.uuid4().hex[:12]
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextmanager
def running_postgres() -> Iterator[PgServer]:
    """A PostgreSQL cluster in a new temporary directory, started; stopped and removed."""
    bindir = pg_bindir()
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing_peer("running as root needs the 'postgres' user (Debian's postgresql)")
        owner = "postgres"
    # Under /tmp itself (1777), not pytest's 0700 base directory: the postgres user must
    # reach it, and pytest tightens its own directories' permissions again.
    workdir = Path(tempfile.mkdtemp(prefix="trunkwatch-pg-"))
    data, sockets = workdir / "data", workdir / "sockets"
    sockets.mkdir()
    if owner is not None:
        entry = pwd.getpwnam(owner)
        for path in (workdir, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    server = PgServer(bindir, data, free_port("tcp"), owner)
    server.run(
        "initdb", "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
        "--locale=C", "--no-sync",
    )  # fmt: skip
    # Loopback only; fsync off: a test cluster is thrown away, and the machine is shared.
    options = (
        f"-c listen_addresses={LOOPBACK} -p {server.port} -k {sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    server.run(
        "pg_ctl", "-D", str(data), "-o", options, "-l", str(workdir / "server.log"),
        "-w", "-t", str(START_TIMEOUT_S), "start",
    )  # fmt: skip
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
