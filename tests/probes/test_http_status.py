"""The HTTP/1.1 status line and request of the https probe (RFC 9112 §3, §4), table-driven."""

from __future__ import annotations

import pytest

from probes.http_status import HttpParseError, StatusLine, build_request, parse_status_line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\n", StatusLine((1, 1), 200, "OK")),
        (b"HTTP/1.0 503 Service Unavailable\r\n", StatusLine((1, 0), 503, "Service Unavailable")),
        (b"HTTP/1.1 302 \r\n", StatusLine((1, 1), 302, "")),  # empty reason phrase
        (b"HTTP/1.1 204\r\n", StatusLine((1, 1), 204, "")),  # SP omitted (§4: accept it)
        (b"HTTP/1.1 200 OK\n", StatusLine((1, 1), 200, "OK")),  # bare LF (§2.2)
        (b"HTTP/1.1 200 " + b"x" * 100 + b"\r\n", StatusLine((1, 1), 200, "x" * 64)),
    ],
)
def test_status_lines(line: bytes, expected: StatusLine) -> None:
    assert parse_status_line(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"SIP/2.0 200 OK\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 20 OK\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/2.0 200 OK\r\n", "HTTP/2.0 is not HTTP/1.x"),
        (b"HTTP/1.1 200 O\x00K\r\n", "not an HTTP/1.x status line"),
        (b"", "not an HTTP/1.x status line"),
    ],
)
def test_bad_status_lines(line: bytes, reason: str) -> None:
    with pytest.raises(HttpParseError) as caught:
        parse_status_line(line)
    assert caught.value.reason == reason


def test_request_names_the_host_and_closes() -> None:
    assert build_request("edge.example", 443, "/health?x=1", "tw/1") == (
        b"GET /health?x=1 HTTP/1.1\r\nHost: edge.example\r\nUser-Agent: tw/1\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n"
    )
    assert b"Host: [::1]:8443\r\n" in build_request("::1", 8443, "/", "tw")


@pytest.mark.parametrize("path", ["health", "/a b", "/a\r\nX: y", ""])
def test_request_refuses_paths_that_would_inject(path: str) -> None:
    with pytest.raises(ValueError, match="must start with"):
        build_request("h", 443, path, "tw")
