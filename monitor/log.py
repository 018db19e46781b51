"""structlog set-up: one line per event with `ts`, `level`, `event`; untrusted text made safe;
repeated events rate-limited with a count of what was held back."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from probes.untrusted import truncate_untrusted

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# How much of a peer's text (a SIP reason phrase, a header, a datagram) one log field keeps:
# enough to recognise it, too little for a flood of garbage to fill the disk.
# RateLimitedLog defaults: a stuck peer sending bad datagrams 100 times a second still
# produces at most 10 lines a minute per event key.
DEFAULT_RATE_LINES: Final = 10
DEFAULT_RATE_INTERVAL_NS: Final = 60 * 1_000_000_000
# Keys can carry peer data (an address); the table of windows must not grow with an attack.
DEFAULT_RATE_MAX_KEYS: Final = 10_000
SUPPRESSED_SUMMARY_EVENT: Final = "log_lines_suppressed"

_OUR_HANDLER_ATTR: Final = "_trunkwatch_handler"


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name given to get_logger, for the `logger` key."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


@dataclass(slots=True, frozen=True)
class _NamedWriteLoggerFactory:
    file: TextIO

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return _NamedWriteLogger(self.file, name)


def _add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


_LEADING_KEYS: Final = ("ts", "level", "logger", "event")


def _leading_keys_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    # A human scanning JSON lines (or `cut`) finds when, how bad, who and what first.
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to `stream` (stderr): JSON lines unless it is a
    TTY (or json says otherwise), at `level` and above."""
    out = sys.stderr if stream is None else stream
    # Logs go to stderr so command output on stdout (reports, CSV) stays clean; the
    # renderer follows whether that stream is a terminal.
    try:
        level_no = LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}") from None
    use_json = not _is_tty(out) if json is None else json

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts")
    renderer: Processor
    if use_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        before_render: list[Processor] = [
            structlog.processors.format_exc_info,
            _leading_keys_first,
        ]
    else:
        # plain_traceback: the default rich formatter prints local variables, and a local
        # may hold a password.
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_tty(out),
            timestamp_key="ts",
            exception_formatter=structlog.dev.plain_traceback,
        )
        before_render = []
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        timestamper,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *before_render, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=_NamedWriteLoggerFactory(out),
        # Not cached: modules take loggers at import time, and tests swap the processors
        # (structlog.testing.capture_logs), which cached loggers would not see.
        cache_logger_on_first_use=False,
    )
    _route_stdlib(out, level_no, shared, [*before_render, renderer])


QUIET_LIBRARIES = ("alembic",)


def _route_stdlib(
    out: TextIO, level_no: int, shared: list[Processor], tail: list[Processor]
) -> None:
    # Libraries (aiohttp, SQLAlchemy, alembic) log through stdlib logging; their records
    # get the same keys and renderer. Only our own earlier handler is replaced, so other
    # handlers (pytest's capture) keep working.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            shared[-1],
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _OUR_HANDLER_ATTR, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _OUR_HANDLER_ATTR, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_no)
    # Libraries' start-up chatter ("Context impl SQLiteImpl", each migration applied) is
    # noise in a command's output: shown only when debugging.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(level_no if level_no <= logging.DEBUG else logging.WARNING)


def get_logger(name: str) -> FilteringBoundLogger:
    """A logger whose lines carry `logger=name`; log stable event names, data as fields."""
    logger: FilteringBoundLogger = structlog.get_logger(name)
    return logger


@dataclass(slots=True)
class _Window:
    start_ns: int
    emitted: int = 0
    suppressed: int = 0
    level: str = "info"
    event: str = ""


class RateLimitedLog:
    """At most `max_lines` lines per `interval_ns` per key (default: the event name); the
    first line after a window reports how many were held back as `suppressed`."""

    __slots__ = ("_logger", "_windows", "interval_ns", "max_keys", "max_lines")

    def __init__(
        self,
        logger: Any,
        *,
        max_lines: int = DEFAULT_RATE_LINES,
        interval_ns: int = DEFAULT_RATE_INTERVAL_NS,
        max_keys: int = DEFAULT_RATE_MAX_KEYS,
    ) -> None:
        if max_lines < 1 or interval_ns < 1 or max_keys < 1:
            raise ValueError("max_lines, interval_ns and max_keys must be positive")
        self._logger = logger
        self.max_lines = max_lines
        self.interval_ns = interval_ns
        self.max_keys = max_keys
        self._windows: dict[Hashable, _Window] = {}

    def log(
        self, level: str, event: str, *, now_ns: int, key: Hashable = None, **fields: Any
    ) -> bool:
        """Emit `event` unless its key is over the limit; True if a line was written."""
        window_key = event if key is None else (event, key)
        window = self._windows.get(window_key)
        carried = 0
        if window is None or now_ns - window.start_ns >= self.interval_ns:
            carried = 0 if window is None else window.suppressed
            if window is not None:
                del self._windows[window_key]  # re-inserted last: dict order = window age
            window = _Window(start_ns=now_ns)
            self._windows[window_key] = window
            self._evict(now_ns)
        if window.emitted >= self.max_lines:
            window.suppressed += 1
            window.level, window.event = level, event
            return False
        window.emitted += 1
        if carried:
            fields["suppressed"] = carried
        getattr(self._logger, level)(event, **fields)
        return True

    def debug(self, event: str, *, now_ns: int, key: Hashable = None, **fields: Any) -> bool:
        return self.log("debug", event, now_ns=now_ns, key=key, **fields)

    def info(self, event: str, *, now_ns: int, key: Hashable = None, **fields: Any) -> bool:
        return self.log("info", event, now_ns=now_ns, key=key, **fields)

    def warning(self, event: str, *, now_ns: int, key: Hashable = None, **fields: Any) -> bool:
        return self.log("warning", event, now_ns=now_ns, key=key, **fields)

    def error(self, event: str, *, now_ns: int, key: Hashable = None, **fields: Any) -> bool:
        return self.log("error", event, now_ns=now_ns, key=key, **fields)

    def flush(self, now_ns: int) -> int:
        """Report held-back counts of windows that have ended; returns lines written."""
        ended = [k for k, w in self._windows.items() if now_ns - w.start_ns >= self.interval_ns]
        written = 0
        for window_key in ended:
            window = self._windows.pop(window_key)
            if window.suppressed:
                self._summarise(window_key, window)
                written += 1
        return written

    def _evict(self, now_ns: int) -> None:
        if len(self._windows) <= self.max_keys:
            return
        self.flush(now_ns)
        while len(self._windows) > self.max_keys:
            # Oldest first; its count is reported now rather than lost.
            window_key = next(iter(self._windows))
            window = self._windows.pop(window_key)
            if window.suppressed:
                self._summarise(window_key, window)

    def _summarise(self, window_key: Hashable, window: _Window) -> None:
        fields: dict[str, Any] = {"suppressed_event": window.event, "suppressed": window.suppressed}
        if isinstance(window_key, tuple):
            fields["key"] = truncate_untrusted(repr(window_key[1]))
        getattr(self._logger, window.level)(SUPPRESSED_SUMMARY_EVENT, **fields)


class MalformedPacketLog:
    """One rate-limited line per kind of malformed SIP packet: the untrusted bytes only as a
    truncated, escaped head."""

    def __init__(self, logger: FilteringBoundLogger) -> None:
        self._log = RateLimitedLog(logger)

    def __call__(self, kind: str, data: bytes, addr: tuple[str, int] | None) -> None:
        self._log.warning(
            "sip_malformed_packet",
            now_ns=time.monotonic_ns(),
            key=kind,
            kind=kind,
            peer=f"{addr[0]}:{addr[1]}" if addr else None,
            size=len(data),
            head=truncate_untrusted(data),
        )
