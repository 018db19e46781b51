"""Probe samples around transitions and test-call figures: stored, reported, in the bundle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState
from monitor.store import Store
from monitor.store.samples import query_probe_samples
from monitor.store.schema import probe_samples
from monitor.transition_samples import TransitionSampler
from probes.responder import ResponderMode, SipResponder

INTERVAL = 0.05
RING = 30


@pytest.fixture
async def responder() -> AsyncIterator[SipResponder]:
    resp = SipResponder("127.0.0.1", 0)
    await resp.start()
    try:
        yield resp
    finally:
        await resp.stop()


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_sampler_keeps_ring_before_and_results_after() -> None:
    sampler = TransitionSampler("a", ring=3, after=2)
    base = 1_700_000_000 * 10**9
    for i in range(5):
        assert sampler.record("t", (base + i * 10**9, "ok", 1_000_000 * (i + 1), 200)) is None
    at = datetime.fromtimestamp(1_700_000_004, UTC)
    before = sampler.transition("t", "trunk_state", at)
    # Only the last 3 (the ring), oldest first, each tagged with the transition.
    assert [s.at for s in before] == [
        datetime.fromtimestamp(1_700_000_000 + i, UTC) for i in (2, 3, 4)
    ]
    assert {(s.transition_kind, s.transition_at) for s in before} == {("trunk_state", at)}
    assert before[-1].rtt_s == pytest.approx(0.005)
    assert sampler.record("t", (base + 5 * 10**9, "timeout", None, None)) is None
    after = sampler.record("t", (base + 6 * 10**9, "ok", 2_000_000, 200))
    assert after is not None
    assert [(s.outcome, s.rtt_s) for s in after] == [("timeout", None), ("ok", 0.002)]
    # The capture is complete: further results are not kept, nothing is left to drain.
    assert sampler.record("t", (base + 7 * 10**9, "ok", 1, 200)) is None
    assert sampler.drain() == []


async def test_monitor_persists_samples_around_an_outage(
    responder: SipResponder, tmp_path: Path
) -> None:
    db = tmp_path / "tw.db"
    config = config_from_text(
        f"""
agent: samples
store: {{url: "sqlite:///{db}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: {INTERVAL}, timeout: 0.04, down_after: 3, up_after: 2}}
trunks:
  - name: resp
    carrier: local
    uri: "sip:127.0.0.1:{responder.port}"
""",
        source="<samples>",
    )
    monitor = Monitor(config)
    await monitor.start()
    try:
        health = monitor.health["resp"]
        await wait_for(lambda: health.state is TrunkState.UP, 5, "trunk up")
        responder.mode = ResponderMode.SILENT
        await wait_for(lambda: health.state is TrunkState.DOWN, 5, "trunk down")
        down_at = datetime.now(UTC)
        responder.mode = ResponderMode.NORMAL
        await wait_for(lambda: health.state is TrunkState.UP, 5, "trunk up again")
        # 30 results after the recovery complete its capture and get written.
        await asyncio.sleep(INTERVAL * (RING + 8))
    finally:
        await monitor.stop()

    store = await Store.open(f"sqlite:///{db}", agent="samples")
    try:
        start = down_at - timedelta(hours=1)
        samples = await query_probe_samples(store.engine, start, datetime.now(UTC))
        async with store.engine.connect() as conn:
            total = len((await conn.execute(select(probe_samples.c.id))).all())
    finally:
        await store.close()
    assert total == len(samples)
    kinds = {s.transition_kind for s in samples}
    assert {"trunk_state", "outage_opened", "outage_closed"} <= kinds
    opened = [s for s in samples if s.transition_kind == "outage_opened"]
    transition_at = opened[0].transition_at
    before = [s for s in opened if s.at <= transition_at]
    after = [s for s in opened if s.at > transition_at]
    # The failures that opened it are among the samples before; the recovery after.
    assert [s.outcome for s in before[-3:]] == ["timeout"] * 3
    assert before[-1].rtt_s is None
    assert 3 <= len(before) <= RING
    assert len(after) == RING
    assert any(s.outcome == "ok" and s.rtt_s is not None and s.status == 200 for s in after)
    closed = [s for s in samples if s.transition_kind == "outage_closed"]
    assert [s.outcome for s in closed if s.at <= closed[0].transition_at][-2:] == ["ok", "ok"]
