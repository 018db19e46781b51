"""/metrics written by a forked child (monitor.metrics.forked).

The bytes themselves are checked against the loop's writing in test_exporter.py (its HTTP
tests run both ways). Here: the child reports the daemon's process figures, not its own;
a child that fails, hangs or dies of a signal costs that scrape only, is reaped, and never
reaches the daemon's signal handlers; a refused fork falls back to the loop.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import time
from pathlib import Path
from typing import NoReturn

import aiohttp
import pytest
from structlog.testing import capture_logs
from test_exporter import ClientFactory, many_sources, rich_sources

from monitor.metrics import forked
from monitor.metrics.exporter import Exporter, runtime_registry
from monitor.metrics.exposition import ExpositionFormat, collector_text
from monitor.metrics.server import make_app

TEXT = ExpositionFormat.TEXT


def forks() -> list[tuple[int, str]]:
    """(pid, state) of this process's children that are forks of it, or zombies."""
    me, mine = os.getpid(), Path("/proc/self/cmdline").read_bytes()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == me and (cmdline == mine or state == "Z"):
            found.append((int(entry.name), state))
    return found


async def no_forks_left() -> bool:
    """Whether every child is gone within a second (the handler reaps after the last byte)."""
    for _ in range(100):
        if not forks():
            return True
        await asyncio.sleep(0.01)
    return False


def sample(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


def in_child(action: str) -> Exporter:
    """An exporter whose last section does `action` when written by a child: fail, hang
    or send itself SIGHUP. In the parent it writes nothing."""
    parent = os.getpid()

    def section(fmt: ExpositionFormat) -> str:
        if os.getpid() != parent:
            if action == "fail":
                raise RuntimeError("a bug while writing")
            if action == "hang":
                time.sleep(60)
            if action == "sighup":
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(5)
        return ""

    src = many_sources(300)
    src.sections = [section]
    return Exporter(src)


async def test_a_scrape_leaves_no_child_behind(aiohttp_client: ClientFactory) -> None:
    exporter = Exporter(many_sources(300))
    client = await aiohttp_client(make_app(exporter, lambda: True))
    for _ in range(3):
        r = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert await r.read() == exporter.expose(exporter.snapshot(), TEXT)
    assert await no_forks_left(), forks()


async def test_the_child_reports_the_daemon_s_process_figures(
    aiohttp_client: ClientFactory,
) -> None:
    exporter = Exporter(rich_sources(), runtime=runtime_registry())
    client = await aiohttp_client(make_app(exporter, lambda: True))
    await asyncio.sleep(0.05)  # the child's own start time would differ by at least this
    body = await (await client.get("/metrics")).text()
    own = collector_text(runtime_registry(), TEXT)
    started = "process_start_time_seconds"
    assert sample(body, started) == sample(own, started)
    assert sample(body, "process_resident_memory_bytes") > 0


async def test_a_child_failing_before_its_first_frame_gives_a_500(
    aiohttp_client: ClientFactory,
) -> None:
    client = await aiohttp_client(make_app(in_child("fail"), lambda: True))
    with capture_logs() as logs:
        r = await client.get("/metrics")
        assert r.status == 500
    [failed] = [e for e in logs if e["event"] == "metrics_render_failed"]
    assert failed["exit_status"] == 1
    assert await no_forks_left(), forks()
    # The next scrape is a new child, and the daemon still serves.
    assert (await client.get("/healthz")).status == 200


async def test_a_child_failing_midway_cuts_the_response_off(
    aiohttp_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forked, "FRAME_TEXT_BYTES", 1_000)  # frames go out before the failure
    exporter = in_child("fail")
    client = await aiohttp_client(make_app(exporter, lambda: True))
    with capture_logs() as logs:
        # Plain text (gzip holds its first bytes back): frames are out before the failure.
        r = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()  # no last chunk: never a short body that looks whole
    [failed] = [e for e in logs if e["event"] == "metrics_render_failed"]
    assert failed["exit_status"] == 1
    assert await no_forks_left(), forks()


async def test_a_hung_child_is_killed_and_reaped(
    aiohttp_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forked, "FRAME_TEXT_BYTES", 1_000)
    monkeypatch.setattr(forked, "RENDER_TIMEOUT_S", 0.5)
    client = await aiohttp_client(make_app(in_child("hang"), lambda: True))
    with capture_logs() as logs:
        started = time.monotonic()
        r = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
        assert time.monotonic() - started < 5
    [failed] = [e for e in logs if e["event"] == "metrics_render_failed"]
    assert failed["exit_status"] == -signal.SIGKILL
    assert await no_forks_left(), forks()


async def test_a_signal_to_the_child_does_not_reach_the_daemon(
    aiohttp_client: ClientFactory,
) -> None:
    """The loop's handlers (SIGHUP reloads) are inherited; the child drops them first."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []
    loop.add_signal_handler(signal.SIGHUP, seen.append, signal.SIGHUP)
    try:
        client = await aiohttp_client(make_app(in_child("sighup"), lambda: True))
        with capture_logs() as logs:
            r = await client.get("/metrics")
            assert r.status == 500
        await asyncio.sleep(0.2)  # a byte on the shared wake-up fd would have run it by now
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    assert seen == []
    [failed] = [e for e in logs if e["event"] == "metrics_render_failed"]
    assert failed["exit_status"] == -signal.SIGHUP


async def test_a_refused_fork_is_written_by_the_loop(
    aiohttp_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> NoReturn:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", refuse)  # what fork(2) says at the process limit
    exporter = Exporter(many_sources(300))
    client = await aiohttp_client(make_app(exporter, lambda: True))
    with capture_logs() as logs:
        r = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert await r.read() == exporter.expose(exporter.snapshot(), TEXT)
    assert [e["event"] for e in logs].count("metrics_fork_refused") == 1
