"""Database URLs and engines: plain URLs map to async drivers; SQLite gets its pragmas."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# Plain scheme → the async driver trunkwatch uses for it.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",  # the libpq/Heroku spelling
}
# Optional drivers: the Python package and the trunkwatch extra that installs it
# (aiosqlite, for the default store, is a plain dependency).
OPTIONAL_DRIVERS = {"postgresql+asyncpg": ("asyncpg", "postgres")}
# A CLI command (outages, sla report) may read while the daemon writes; under WAL readers never
# block, and a writer waits this long for another writer instead of failing at once.
SQLITE_BUSY_TIMEOUT_MS = 5_000
# Execution option for connections that will write: on SQLite their transaction takes the
# write lock at BEGIN (IMMEDIATE), so two writers queue on busy_timeout instead of one
# failing at once when both started by reading (e.g. two processes migrating a new file).
WRITE = "trunkwatch_write"


def async_url(url: str) -> str:
    """``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``; an explicit driver is kept."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError; its message does not say what was expected
        raise ValueError(
            f"database URL {url!r} is not valid: expected sqlite:///path.db, "
            "sqlite:///:memory: or postgresql://user@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    driver = ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None and parsed.drivername not in ASYNC_DRIVERS.values():
        raise ValueError(
            f"database URL scheme {parsed.drivername!r} is not supported: use sqlite:// "
            "or postgresql://"
        )
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).expanduser().parent
            if not parent.is_dir():
                raise ValueError(f"database directory {str(parent)!r} does not exist")
    driver_missing(driver or parsed.drivername)
    if driver is None:
        return url
    # Swap the scheme textually: re-rendering the parsed URL would percent-encode the rest.
    _scheme, _, rest = url.partition("://")
    return f"{driver}://{rest}"


def driver_missing(driver: str) -> None:
    """ValueError naming the package and its install when `driver`'s package is not installed
    (SQLAlchemy would only fail on first connect, with an ImportError from deep inside)."""
    package, extra = OPTIONAL_DRIVERS.get(driver, (None, ""))
    if package is not None and importlib.util.find_spec(package) is None:
        raise ValueError(
            f"the {driver.partition('+')[0]} store needs the Python package {package!r}, "
            f"which is not installed: pip install 'trunkwatch[{extra}]' (in a checkout: "
            f".venv/bin/pip install -e '.[{extra}]')"
        )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling issues no BEGIN before DDL, so a migration
    # would not be atomic: turn it off and let _sqlite_begin start every transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # First: switching a new file to WAL needs a lock another opener may hold, and
        # without a busy timeout yet that fails at once ("database is locked").
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers (reports, API) do not block the writer; NORMAL is durable across
        # process crashes in WAL mode (only an OS crash can lose the last commits).
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def store_problem(url: str, *, wait_s: float = 1.0) -> str | None:
    """Why the store at `url` cannot be written now (another process holds SQLite's write
    lock, the file is not a database, ...), or None. Creates nothing: for check-config."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(database)
    if not path.exists():
        return None  # created at the first start
    try:
        conn = sqlite3.connect(path, timeout=wait_s, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")  # the lock every writer takes
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return describe_store_error(exc)
    return None


def describe_store_error(exc: BaseException) -> str:
    """A store error in an operator's words (the driver's own text after the dash)."""
    text = str(getattr(exc, "orig", None) or exc)
    if "locked" in text:
        return f"the database is locked by another process (a trunkwatch still running?) - {text}"
    return f"the store cannot be opened - {text[:200]}"


def _switch_to_wal(cursor: Any) -> None:
    # SQLite does not always call the busy handler for this switch (a connection that would
    # have to upgrade its own lock gets SQLITE_BUSY at once, to avoid deadlock): retry it,
    # bounded by the busy timeout. Runs in the driver's thread, so sleeping blocks no loop.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# One queue of writers per SQLite engine and event loop (an asyncio.Lock belongs to a loop).
_WRITE_QUEUES: weakref.WeakKeyDictionary[Engine, tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _write_queue(engine: AsyncEngine) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    held = _WRITE_QUEUES.get(engine.sync_engine)
    if held is None or held[0] is not loop:
        held = _WRITE_QUEUES[engine.sync_engine] = (loop, asyncio.Lock())
    return held[1]


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction, committed on success (SQLite: BEGIN IMMEDIATE takes the file's
    write lock). On SQLite this process's writers first queue for it in order: racing for
    the lock through SQLite's busy handler, the lease renewal and the heartbeat lost to the
    journal writer for over the 5 s busy timeout in an outage of 100,000 trunks, and the
    ticket outbox's lease lapsed. Other processes (the CLI) still wait on busy_timeout."""
    if engine.dialect.name == "sqlite":
        async with _write_queue(engine), _transaction(engine) as conn:
            yield conn
    else:
        async with _transaction(engine) as conn:
            yield conn


@asynccontextmanager
async def _transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{WRITE: True})
        async with conn.begin():
            yield conn


def create_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(async_url(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine
