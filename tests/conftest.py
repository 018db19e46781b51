"""Shared fixtures: real peers on loopback (see tests/peers.py and notes/test-peers.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Kamailio, Promtool, TlsFiles, make_tls_ca, require_binary, running_kamailio
from pg_peer import PgServer, running_postgres


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA with a server cert (IP:127.0.0.1, DNS:localhost) and a client cert."""
    return make_tls_ca(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture
def kamailio(tmp_path: Path, tls_ca: TlsFiles) -> Iterator[Kamailio]:
    """A running Kamailio: OPTIONS → 200 on UDP+TCP (`udp_port`) and TLS (`tls_port`)."""
    with running_kamailio(tmp_path / "kamailio", tls_ca) as kam:
        yield kam


@pytest.fixture(scope="session")
def promtool_path() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def promtool(promtool_path: str) -> Promtool:
    return Promtool(promtool_path)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """One PostgreSQL 15 cluster for the session (initdb + pg_ctl in a temp directory)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PgServer) -> str:
    """A fresh database of that cluster, for one test."""
    return postgres.new_database()
