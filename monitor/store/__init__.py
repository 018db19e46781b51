"""Durable store: the event journal (SQLite by default, PostgreSQL later) and its tables."""

from monitor.store.resume import GAP_REASON_NOT_RUNNING, resume
from monitor.store.store import JournalCorruptError, Store
from monitor.store.types import UtcDateTime

__all__ = ["GAP_REASON_NOT_RUNNING", "JournalCorruptError", "Store", "UtcDateTime", "resume"]
