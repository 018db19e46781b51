"""Every test call the monitor makes is stored in call_samples, with its profile's limits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callpeers import LOOPBACK, call_responder, port_block
from peers import Kamailio

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.store import Store
from monitor.store.samples import CallSample, query_call_samples

JITTER_LIMIT = 0.000000001  # any real jitter breaks it: every call has a violation


async def test_monitor_stores_each_test_call(kamailio: Kamailio, tmp_path: Path) -> None:
    rtp = port_block(64)
    started = datetime.now(UTC)
    async with call_responder() as far_end:
        cfg = config_from_text(
            f"""
agent: calls
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: 0.5, timeout: 0.4}}
calls:
  max_calls: 2
  sip_address: {LOOPBACK}
  media_address: {LOOPBACK}
  rtp_port_min: {rtp.start}
  profiles:
    tight: {{jitter: {JITTER_LIMIT}, jitter_window: 0.5, one_way_latency: 0.05}}
trunks:
  - name: lab
    uri: "{kamailio.uri("udp")}"
    call:
      uri: "{far_end.uri}"
      interval: 2s
      max_call: 1s
      profile: tight
"""
        )
        monitor = Monitor(cfg)
        await monitor.start()
        try:
            # Polls the database the monitor writes: the rows are there while it runs.
            deadline = time.monotonic() + 30
            while len(await _stored(monitor, started)) < 2:
                assert time.monotonic() < deadline, "timed out waiting for 2 stored test calls"
                await asyncio.sleep(0.2)
        finally:
            await monitor.stop()
    store = await Store.open(f"sqlite:///{tmp_path / 'tw.db'}", agent="calls")
    try:
        stored = await query_call_samples(store.engine, started, datetime.now(UTC) + timedelta(1))
    finally:
        await store.close()
    assert len(stored) >= 2
    ok = [c for c in stored if c.outcome == "ok"]
    assert ok, [c.outcome for c in stored]
    sample = ok[0]
    assert (sample.trunk, sample.profile) == ("lab", "tight")
    assert sample.limits["jitter"] == JITTER_LIMIT
    assert sample.limits["one_way_latency"] == 0.05
    assert sample.limits["rtt"] is None
    assert sample.jitter_s is not None and sample.jitter_s > JITTER_LIMIT
    assert "jitter" in sample.violations
    assert sample.loss_ratio is not None and 0 <= sample.loss_ratio <= 1
    assert sample.mos is not None


async def _stored(monitor: Monitor, since: datetime) -> list[CallSample]:
    assert monitor.store is not None
    return await query_call_samples(monitor.store.engine, since, datetime.now(UTC))
