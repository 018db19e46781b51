"""Reload without a restart: the pure diff, the scheduler and pipeline parts, and the whole
monitor reloaded by its three paths (API, `trunkwatch reload`, SIGHUP) against Kamailio."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from peers import Kamailio, free_port
from test_monitor_e2e import wait_for

from monitor.app import Monitor
from monitor.config import Config, config_from_text, load_config
from monitor.events import END_REMOVED, Outage, OutageClosed, OutageKind, TrunkStateChanged
from monitor.health import HealthPolicy, TrunkHealth, TrunkState
from monitor.pipeline import Pipeline
from monitor.reload import restart_required, trunk_changes
from monitor.scheduler import Scheduler
from monitor.store import Store
from monitor.tickets.plan import Book, plan
from monitor.tickets.routing import TicketRouting
from probes.result import Outcome, ProbeResult

TRUNKWATCH = str(Path(sys.executable).parent / "trunkwatch")
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
TOKEN_ENV = "TW_RELOAD_TEST_TOKEN"
TOKEN = "reload-token-1"


def trunks_yaml(names: list[str], uri: str, **extra: object) -> str:
    fields = "".join(f", {k}: {v}" for k, v in extra.items())
    return "".join(
        # The carrier follows the name: a trunk keeps it whatever its place in the list.
        f'  - {{name: {n}, carrier: c{sum(map(ord, n)) % 3}, uri: "{uri}"{fields}}}\n'
        for n in names
    )


# ---- pure: what changed --------------------------------------------------------------------


def cfg(trunks: str, head: str = "") -> Config:
    return config_from_text(f"{head}trunks:\n{trunks}")


def test_trunk_changes_sorts_added_removed_reprobed_retuned() -> None:
    uri = "sip:127.0.0.1:5060"
    old = cfg(trunks_yaml(["a", "b", "c", "d", "e"], uri))
    new_text = (
        trunks_yaml(["a"], uri)  # unchanged
        + trunks_yaml(["b"], "sip:127.0.0.2:5060")  # new URI: a new probe
        + '  - {name: c, carrier: c2, uri: "sip:127.0.0.1:5060", down_after: 7}\n'  # policy
        + '  - {name: d, carrier: c0, uri: "sip:127.0.0.1:5060", interval: 7}\n'  # interval
        + trunks_yaml(["f"], uri)  # added; e removed
    )
    new = cfg(new_text)
    changes = trunk_changes(old.trunks, new.trunks)
    assert [t.name for t in changes.added] == ["f"]
    assert changes.removed == ("e",)
    assert [t.name for t in changes.reprobed] == ["b", "d"]
    assert [t.name for t in changes.retuned] == ["c"]
    assert changes.unchanged == 1


def test_restart_required_names_what_a_reload_cannot_swap() -> None:
    uri = "sip:127.0.0.1:5060"
    old = config_from_text(f"agent: a1\ntrunks:\n{trunks_yaml(['a'], uri)}")
    same = config_from_text(f"agent: a1\ntrunks:\n{trunks_yaml(['a', 'b'], uri)}")
    assert restart_required(old, same, same.trunks) == []
    moved = config_from_text(
        "agent: a2\nstore: {url: 'sqlite:///other.db'}\nscheduler: {max_in_flight: 10}\n"
        "trunks:\n  - {name: a, carrier: c0, uri: 'sip:127.0.0.1:5060',"
        " call: {uri: 'sip:echo@127.0.0.1:5060'}}\n"
    )
    assert restart_required(old, moved, moved.trunks) == [
        "agent", "store", "scheduler", "trunks[a].call",
    ]  # fmt: skip


# ---- the parts: scheduler, pipeline, events, tickets ----------------------------------------


class CountingProbe:
    kind = "options"

    def __init__(self, trunk: str) -> None:
        self.trunk = trunk
        self.sent = 0
        self.closed = False

    def start(self, on_done: object) -> None:
        self.sent += 1
        assert callable(on_done)
        on_done(ProbeResult(self.trunk, "options", Outcome.OK, time.time_ns(), rtt_ns=1000))

    async def close(self) -> None:
        self.closed = True


async def test_scheduler_adds_and_removes_without_touching_the_others() -> None:
    results: list[str] = []
    keep, gone = CountingProbe("keep"), CountingProbe("gone")
    scheduler = Scheduler([(keep, 0.05), (gone, 0.05)], lambda r: results.append(r.trunk))
    scheduler.start()
    try:
        await asyncio.sleep(0.3)
        removed = scheduler.remove({"gone"})
        assert [item.probe for item in removed] == [gone]
        sent_gone = gone.sent
        late = CountingProbe("late")
        scheduler.add(late, 0.05)
        replacement = CountingProbe("keep")
        (before,) = scheduler.remove({"keep"})
        scheduler.add(replacement, 0.05, after=before)
        await asyncio.sleep(0.3)
    finally:
        scheduler.stop()
    assert gone.sent == sent_gone  # never fired again
    assert late.sent >= 4 and replacement.sent >= 4
    assert scheduler.skipped == 0
    assert {item.probe.trunk for item in scheduler.items} == {"keep", "late"}


def test_pipeline_removes_a_trunk_ending_its_outage_as_removed() -> None:
    health = {"a": TrunkHealth("a"), "b": TrunkHealth("b")}
    pipeline = Pipeline("agent", health, {n: HealthPolicy(1, 1) for n in health})
    failed = ProbeResult("a", "options", Outcome.TIMEOUT, int(T0.timestamp() * 1e9))
    out = pipeline.on_result(failed, T0)
    assert out is not None and health["a"].open_outage is not None
    outage_id = health["a"].open_outage.id

    later = T0 + timedelta(minutes=5)
    out = pipeline.remove_trunk("a", later)
    closed = [e for e in out.events if isinstance(e, OutageClosed)]
    assert len(closed) == 1
    assert closed[0].outage.id == outage_id
    assert closed[0].outage.end_cause == END_REMOVED
    assert closed[0].outage.restored_at == later
    states = [e for e in out.events if isinstance(e, TrunkStateChanged)]
    assert [(s.old, s.new, s.cause) for s in states] == [
        (TrunkState.DOWN, TrunkState.UNKNOWN, "removed")
    ]
    assert [line.event for line in out.logs] == ["outage_removed", "trunk_unknown"]
    assert "a" not in pipeline.health and "a" not in pipeline.stats and "a" not in pipeline.policies

    pipeline.add_trunk(TrunkHealth("c"), HealthPolicy(1, 1))
    ok = ProbeResult("c", "options", Outcome.OK, int(later.timestamp() * 1e9), rtt_ns=1)
    pipeline.on_result(ok, later)
    assert health["c"].state is TrunkState.UP


def test_removed_outage_round_trips_and_is_never_resolved_at_the_carrier() -> None:
    outage = Outage("o1", "a", OutageKind.OUTAGE, T0, T0, "timeout").removed(T0 + timedelta(1))
    again = Outage.from_dict(json.loads(json.dumps(outage.to_dict())))
    assert again == outage and again.end_cause == END_REMOVED
    restored = Outage("o2", "a", OutageKind.OUTAGE, T0, T0, "timeout")
    assert "end_cause" not in restored.to_dict()  # old payloads (and hashes) unchanged
    routing = TicketRouting.build(None, [("a", "carrier")])
    assert plan([OutageClosed(outage)], routing, Book(), T0) == []


# ---- the whole monitor ----------------------------------------------------------------------


def write_config(path: Path, db: Path, http_port: int, trunks: str) -> None:
    path.write_text(
        f"agent: reload\nstore: {{url: 'sqlite:///{db}'}}\n"
        f"http: {{listen: 127.0.0.1, port: {http_port}, write_token_env: {TOKEN_ENV}}}\n"
        "defaults: {interval: 60, timeout: 2, down_after: 2, up_after: 2}\n"
        f"trunks:\n{trunks}"
    )


def dead_trunk(name: str) -> str:
    # Nothing listens there: ICMP port unreachable, an outage within two intervals.
    port = free_port("udp")
    # 1 s: a loop stalled for longer than that by a loaded CI machine would skip a probe.
    fields = "interval: 1, timeout: 0.5"
    return f'  - {{name: {name}, carrier: c9, uri: "sip:127.0.0.1:{port}", {fields}}}\n'


async def test_reload_adds_and_removes_1000_of_10000_while_an_outage_stays_open(
    kamailio: Kamailio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    uri = kamailio.uri("udp")
    names = [f"t{i:05d}" for i in range(9_998)]
    dead, doomed = dead_trunk("dead"), dead_trunk("doomed")
    path, db = tmp_path / "tw.yaml", tmp_path / "tw.db"
    write_config(path, db, 0, dead + doomed + trunks_yaml(names, uri))
    monitor = Monitor(load_config(path))
    await monitor.start()
    try:
        down = {"dead", "doomed"}
        await wait_for(
            lambda: all(monitor.health[n].open_outage is not None for n in down), 10, "outages"
        )
        opened = monitor.health["dead"].open_outage
        doomed_outage = monitor.health["doomed"].open_outage
        assert opened is not None and doomed_outage is not None
        assert monitor.scheduler is not None
        untouched = [item.probe for item in monitor.scheduler.items if item.probe.trunk == "t09000"]
        skipped = monitor.scheduler.skipped
        # The default cap: 2,000 plus Σ timeout/interval, 9,998 × 2/60 + 2 × 0.5 = 334.3.
        assert monitor.scheduler.max_in_flight == 2_335

        added = [f"n{i:05d}" for i in range(1_000)]
        kept = names[1_000:]
        write_config(path, db, 0, dead + trunks_yaml(kept + added, uri))
        report = await monitor.reload()
        assert report.ok, report.error
        assert (report.added, report.removed, report.changed) == (1_000, 1_001, 0)
        assert report.unchanged == 8_999  # kept 8,998 + dead
        assert report.outages_removed == (doomed_outage.id,)

        assert monitor.health["dead"].open_outage is not None
        assert monitor.health["dead"].open_outage.id == opened.id  # the same outage goes on
        assert set(monitor.health) == {"dead", *kept, *added}
        items = monitor.scheduler.items
        assert len(items) == 9_999  # 10,000 - 1,001 + 1,000
        assert monitor.scheduler.max_in_flight == 2_334  # one dead trunk fewer: 333.8
        # Untouched trunks keep their very probe (and its place on the schedule).
        assert [i.probe for i in items if i.probe.trunk == "t09000"] == untouched
        await asyncio.sleep(1.5)
        assert monitor.scheduler.skipped == skipped  # the reload stalled nothing
        assert monitor.health["dead"].open_outage.id == opened.id

        # An invalid file: refused, the running config stays.
        path.write_text(path.read_text() + "  - {name: dead, uri: 'sip:127.0.0.1:1'}\n")
        refused = await monitor.reload()
        assert not refused.ok and refused.error is not None
        assert "dead" in refused.error and str(path) in refused.error
        assert len(monitor.scheduler.items) == 9_999
    finally:
        await monitor.stop()

    store = await Store.open(f"sqlite:///{db}", agent="reload")
    try:
        outages = {o.trunk: o for o in await store.outages()}
    finally:
        await store.close()
    assert set(outages) == {"dead", "doomed"}
    assert outages["dead"].id == opened.id and outages["dead"].is_open
    assert outages["doomed"].end_cause == END_REMOVED
    assert outages["doomed"].closed_at is not None


async def test_reload_over_the_api_needs_the_write_token_and_reports_problems(
    kamailio: Kamailio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    uri = kamailio.uri("udp")
    path, db = tmp_path / "tw.yaml", tmp_path / "tw.db"
    write_config(path, db, 0, trunks_yaml(["a"], uri, interval=0.2, timeout=0.1))
    monitor = Monitor(load_config(path))
    await monitor.start()
    url = f"http://127.0.0.1:{monitor.bound_port}/api/v1/reload"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        await wait_for(lambda: monitor.health["a"].state is TrunkState.UP, 5, "a up")
        write_config(path, db, 0, trunks_yaml(["a", "b"], uri, interval=0.2, timeout=0.1))
        async with aiohttp.ClientSession() as session:
            async with session.post(url) as r:
                assert r.status == 401
            assert "b" not in monitor.health
            async with session.post(url, headers=auth) as r:
                assert r.status == 200
                body = await r.json()
            assert (body["added"], body["removed"], body["unchanged"]) == (1, 0, 1)
            await wait_for(lambda: monitor.health["b"].state is TrunkState.UP, 5, "b up")

            path.write_text(path.read_text().replace("interval: 0.2", "interval: -1"))
            async with session.post(url, headers=auth) as r:
                assert r.status == 422
                problem = await r.json()
            assert problem["error"] == "config_invalid"
            assert any("interval" in p and str(path) in p for p in problem["detail"])
            assert set(monitor.health) == {"a", "b"}
            async with session.get(f"http://127.0.0.1:{monitor.bound_port}/metrics") as r:
                assert 'trunk="b"' in await r.text()
    finally:
        await monitor.stop()


def test_trunkwatch_reload_and_sighup_reach_a_running_monitor(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    port = free_port("tcp")
    uri = kamailio.uri("udp")
    path, db = tmp_path / "tw.yaml", tmp_path / "tw.db"
    write_config(path, db, port, trunks_yaml(["a"], uri, interval=0.5, timeout=0.4))
    env = {**os.environ, TOKEN_ENV: TOKEN}
    proc = subprocess.Popen(
        [TRUNKWATCH, "--log-format", "json", "run", "-c", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def until(text: str) -> None:
        deadline = time.monotonic() + 20
        while text not in metrics():
            assert time.monotonic() < deadline, f"no {text!r} in /metrics"
            time.sleep(0.2)

    try:
        until('probe="options",trunk="a"} 1.0')
        write_config(path, db, port, trunks_yaml(["a", "b"], uri, interval=0.5, timeout=0.4))
        r = subprocess.run(
            [TRUNKWATCH, "reload", "-c", str(path)], capture_output=True, text=True, env=env,
            timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 added, 0 removed, 0 changed, 1 unchanged" in r.stdout
        until('probe="options",trunk="b"} 1.0')

        bad = path.read_text() + "oops: [\n"
        path.write_text(bad)
        r = subprocess.run(
            [TRUNKWATCH, "reload", "-c", str(path)], capture_output=True, text=True, env=env,
            timeout=60,
        )  # fmt: skip
        assert r.returncode == 2 and str(path) in r.stderr

        write_config(path, db, port, trunks_yaml(["b", "c"], uri, interval=0.5, timeout=0.4))
        proc.send_signal(signal.SIGHUP)
        until('probe="options",trunk="c"} 1.0')
        assert 'trunk="a"' not in metrics()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    reloads = [json.loads(line) for line in out.splitlines() if '"config_reloaded"' in line]
    assert [(r["added"], r["removed"]) for r in reloads] == [(1, 0), (1, 1)]
