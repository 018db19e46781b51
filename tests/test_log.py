"""Logging set-up, untrusted-text escaping and the rate limiter, asserted as data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from monitor.log import (
    SUPPRESSED_SUMMARY_EVENT,
    RateLimitedLog,
    configure_logging,
    get_logger,
    truncate_untrusted,
)

SECRET = "s3cr3t-never-logged"
S = 1_000_000_000  # ns per second
T0 = 5_000 * S


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- configure_logging ----------------------------------------------------------------------


def test_json_lines_have_ts_level_event() -> None:
    out = io.StringIO()
    configure_logging(json=True, level="info", stream=out)
    log = get_logger("trunkwatch.test")
    log.info("probe_sent", trunk="carrier-a", rtt_ms=12.5)
    log.debug("too_detailed")
    [line] = _json_lines(out)
    assert list(line)[:4] == ["ts", "level", "logger", "event"]
    assert line["event"] == "probe_sent" and line["level"] == "info"
    assert line["logger"] == "trunkwatch.test"
    assert (line["trunk"], line["rtt_ms"]) == ("carrier-a", 12.5)
    assert isinstance(line["ts"], str) and line["ts"].endswith("Z")
    ts = datetime.fromisoformat(line["ts"])
    assert ts.tzinfo is not None and ts.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - ts) < timedelta(minutes=1)


def test_auto_format_follows_the_stream() -> None:
    piped = io.StringIO()
    configure_logging(stream=piped)
    get_logger("t").warning("link_lost", peer="10.0.0.1")
    assert _json_lines(piped)[0]["event"] == "link_lost"

    tty = TtyStream()
    configure_logging(stream=tty)
    get_logger("t").warning("link_lost", peer="10.0.0.1")
    text = tty.getvalue()
    assert "link_lost" in text and "10.0.0.1" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_console_when_asked_even_if_piped() -> None:
    out = io.StringIO()
    configure_logging(json=False, level="debug", stream=out)
    get_logger("t").debug("probe_sent", trunk="a")
    text = out.getvalue()
    assert "probe_sent" in text and "trunk=a" in text
    assert "\x1b[" not in text  # no colours into a pipe


@pytest.mark.parametrize("level", ["warning", "ERROR"])
def test_level_filters(level: str) -> None:
    out = io.StringIO()
    configure_logging(json=True, level=level, stream=out)
    log = get_logger("t")
    log.info("quiet")
    log.warning("loud")
    log.error("louder")
    expected = ["loud", "louder"] if level == "warning" else ["louder"]
    assert [line["event"] for line in _json_lines(out)] == expected


def test_unknown_level_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'verbose'"):
        configure_logging(level="verbose", stream=io.StringIO())


def test_stdlib_records_share_the_format() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    logging.getLogger("aiohttp.access").warning("GET %s %d", "/metrics", 200)
    [line] = _json_lines(out)
    assert line["event"] == "GET /metrics 200"
    assert (line["level"], line["logger"]) == ("warning", "aiohttp.access")
    assert str(line["ts"]).endswith("Z")


def test_reconfigure_replaces_only_its_own_handler() -> None:
    foreign = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(foreign)
    first, second = io.StringIO(), io.StringIO()
    configure_logging(json=True, stream=first)
    configure_logging(json=True, stream=second)
    logging.getLogger("lib").error("once")
    assert first.getvalue() == ""
    assert [line["event"] for line in _json_lines(second)] == ["once"]
    assert foreign in root.handlers


def _fail_with_a_secret_local() -> None:
    password = SECRET
    raise RuntimeError(f"auth failed ({len(password)} chars)")


@pytest.mark.parametrize("as_json", [True, False])
def test_exceptions_logged_without_locals(as_json: bool) -> None:
    out = io.StringIO()
    configure_logging(json=as_json, stream=out)
    try:
        _fail_with_a_secret_local()
    except RuntimeError:
        get_logger("t").exception("probe_crashed", trunk="a")
    text = out.getvalue()
    assert "probe_crashed" in text and "RuntimeError: auth failed" in text
    assert SECRET not in text


def test_loggers_taken_before_configuration_are_captured() -> None:
    early = get_logger("early")  # like a module-level logger
    configure_logging(json=True, stream=io.StringIO())
    with capture_logs() as logs:
        early.warning("sip_parse_error", reason="bad start line")
    assert logs == [
        {"event": "sip_parse_error", "log_level": "warning", "reason": "bad start line"}
    ]


# --- truncate_untrusted ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("SIP/2.0 200 OK", 120, "SIP/2.0 200 OK"),
        ("Server Internal Error\r\nX-Forged: 1", 120, "Server Internal Error\\r\\nX-Forged: 1"),
        ("a\tb\x00c\x7f", 120, "a\\tb\\x00c\\x7f"),
        ("C:\\path", 120, "C:\\\\path"),  # a real backslash is not mistaken for an escape
        ("caf\u00e9 \u202eevil", 120, "caf\u00e9 \\u202eevil"),  # bidi override shown, not obeyed
        (b"OK \xff\xfe", 120, "OK \\xff\\xfe"),
        (b"caf\xc3\xa9", 120, "caf\u00e9"),
        ("x" * 10, 10, "x" * 10),
        ("x" * 11, 10, "x" * 10 + "…(+1 bytes)"),
        ("\u00e9" * 8, 5, "\u00e9" * 5 + "…(+6 bytes)"),  # the rest counted in bytes
        (b"ab\xff\xffcd", 4, "ab…(+4 bytes)"),  # an escape is never cut in half
        ("", 10, ""),
    ],
)
def test_truncate_untrusted(text: str | bytes, limit: int, expected: str) -> None:
    assert truncate_untrusted(text, limit) == expected


@settings(max_examples=300)
@given(st.one_of(st.text(), st.binary()), st.integers(min_value=0, max_value=200))
def test_truncate_untrusted_is_bounded_and_printable(text: str | bytes, limit: int) -> None:
    out = truncate_untrusted(text, limit)
    shown, _, rest = out.partition("…(+")
    assert len(shown) <= limit
    assert shown.isprintable()
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if rest:
        hidden = int(rest.removesuffix(" bytes)"))
        assert 0 < hidden <= len(raw)
    elif isinstance(text, str) and text.isprintable() and "\\" not in text:
        assert out == text  # ordinary text passes unchanged


# --- RateLimitedLog -------------------------------------------------------------------------


def test_rate_limit_counts_and_reports_suppressed() -> None:
    limited = RateLimitedLog(get_logger("t"), max_lines=3, interval_ns=1 * S)
    with capture_logs() as logs:
        sent = [
            limited.warning("malformed_datagram", now_ns=T0 + i * 1_000_000, peer="10.0.0.9")
            for i in range(5)
        ]
        assert sent == [True, True, True, False, False]
        assert limited.warning("malformed_datagram", now_ns=T0 + 1 * S, peer="10.0.0.9")
        assert limited.warning("malformed_datagram", now_ns=T0 + 1 * S + 1, peer="10.0.0.9")
    assert [entry.get("suppressed") for entry in logs] == [None, None, None, 2, None]
    assert all(entry["event"] == "malformed_datagram" for entry in logs)
    assert all(entry["log_level"] == "warning" for entry in logs)
    assert logs[3]["peer"] == "10.0.0.9"


def test_window_boundary_is_exact() -> None:
    limited = RateLimitedLog(get_logger("t"), max_lines=1, interval_ns=1 * S)
    assert limited.info("e", now_ns=T0)
    assert not limited.info("e", now_ns=T0 + S - 1)
    assert limited.info("e", now_ns=T0 + S)


def test_keys_are_independent() -> None:
    limited = RateLimitedLog(get_logger("t"), max_lines=1, interval_ns=10 * S)
    with capture_logs() as logs:
        assert limited.error("probe_bug", now_ns=T0, key="trunk-a")
        assert limited.error("probe_bug", now_ns=T0, key="trunk-b")
        assert not limited.error("probe_bug", now_ns=T0 + 1, key="trunk-a")
        assert limited.error("other_event", now_ns=T0 + 1, key="trunk-a")
    assert [entry["event"] for entry in logs] == ["probe_bug", "probe_bug", "other_event"]


def test_flush_reports_ended_windows_once() -> None:
    limited = RateLimitedLog(get_logger("t"), max_lines=1, interval_ns=1 * S)
    with capture_logs() as logs:
        limited.warning("bad_reply", now_ns=T0, key="10.0.0.1")
        for i in range(4):
            limited.warning("bad_reply", now_ns=T0 + i + 1, key="10.0.0.1")
        assert limited.flush(T0 + S - 1) == 0  # window still open
        assert limited.flush(T0 + S) == 1
        assert limited.flush(T0 + 2 * S) == 0
        limited.warning("bad_reply", now_ns=T0 + 3 * S, key="10.0.0.1")
    assert logs[1] == {
        "event": SUPPRESSED_SUMMARY_EVENT,
        "log_level": "warning",
        "suppressed_event": "bad_reply",
        "suppressed": 4,
        "key": "'10.0.0.1'",
    }
    assert "suppressed" not in logs[2]  # counted once, not again on the next line


def test_key_table_is_bounded_and_loses_no_count() -> None:
    limited = RateLimitedLog(get_logger("t"), max_lines=1, interval_ns=60 * S, max_keys=2)
    with capture_logs() as logs:
        for peer in ("a", "b"):
            limited.info("bad_reply", now_ns=T0, key=peer)
            limited.info("bad_reply", now_ns=T0 + 1, key=peer)
        limited.info("bad_reply", now_ns=T0 + 2, key="c")  # evicts "a", the oldest
    summaries = [entry for entry in logs if entry["event"] == SUPPRESSED_SUMMARY_EVENT]
    assert summaries == [
        {
            "event": SUPPRESSED_SUMMARY_EVENT,
            "log_level": "info",
            "suppressed_event": "bad_reply",
            "suppressed": 1,
            "key": "'a'",
        }
    ]
    assert len(limited._windows) == 2


def test_rate_limit_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        RateLimitedLog(get_logger("t"), max_lines=0)
