"""Column types at the database boundary: instants go in and come out as aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from monitor.events import as_utc


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC instant: naive input is refused on write; SQLite's naive output gets UTC attached.

    Stored as TIMESTAMP WITH TIME ZONE on PostgreSQL; on SQLite as SQLAlchemy's fixed-width
    text (microseconds always present), so text order is time order for range queries.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime takes a datetime, got {type(value).__name__}")
        instant = as_utc(value, "database instant")
        if dialect.name == "sqlite":
            # SQLite keeps no zone: store the UTC wall time, which is what reads assume.
            return instant.replace(tzinfo=None)
        return instant

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime read a {type(value).__name__}, not a datetime")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
