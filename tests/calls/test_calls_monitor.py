"""Test calls inside the running monitor and through the CLI, against the call responder."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from callpeers import LOOPBACK, call_responder, free_udp_port, port_block
from peers import Kamailio

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.events import OutageKind
from monitor.health import TrunkState
from monitor.store import Store

TRUNKWATCH = str(Path(sys.executable).parent / "trunkwatch")


async def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_calls_below_profile_degrade_the_trunk(kamailio: Kamailio, tmp_path: Path) -> None:
    """OPTIONS say the trunk is up; test calls against an impossible profile make it DEGRADED,
    the degradation is stored (kind degradation) and the call figures reach /metrics."""
    rtp = port_block(64)
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
    impossible: {{jitter: 0.000000001, jitter_window: 0.5}}  # any real jitter breaks it
trunks:
  - name: lab
    uri: "{kamailio.uri("udp")}"
    call:
      uri: "{far_end.uri}"
      interval: 2s
      max_call: 1s
      profile: impossible
      degrade_after: 2
      recover_after: 2
"""
        )
        monitor = Monitor(cfg)
        await monitor.start()
        try:
            await _wait(lambda: monitor.health["lab"].state is TrunkState.DEGRADED, 30, "degraded")
            url = f"http://127.0.0.1:{monitor.bound_port}/metrics"
            async with aiohttp.ClientSession() as session, session.get(url) as r:
                text = await r.text()
        finally:
            await monitor.stop()
    assert 'trunkwatch_trunk_state{agent="calls",state="degraded",trunk="lab"} 1.0' in text
    assert 'trunkwatch_call_outcome_total{agent="calls",outcome="ok",trunk="lab"}' in text
    assert (
        'trunkwatch_threshold_violation{agent="calls",metric="jitter",profile="impossible",'
        'trunk="lab"} 1.0' in text
    )
    assert 'trunkwatch_call_mos{agent="calls",trunk="lab"}' in text
    assert 'trunkwatch_call_setup_seconds_count{agent="calls",trunk="lab"}' in text
    store = await Store.open(f"sqlite:///{tmp_path / 'tw.db'}", agent="calls")
    try:
        stored = await store.outages()
    finally:
        await store.close()
    assert [o.kind for o in stored] == [OutageKind.DEGRADATION]  # never an outage
    assert stored[0].first_outcome == "jitter"


def test_probe_call_and_responder_commands(tmp_path: Path) -> None:
    """`trunkwatch responder --calls` answers; `trunkwatch probe call` prints the figures."""
    port = free_udp_port()
    rtp = port_block(16)
    far_end = subprocess.Popen(
        [TRUNKWATCH, "responder", "--calls", "--port", str(port), "--rtp-port", str(rtp.start)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert far_end.stdout is not None
        seen = [far_end.stdout.readline() for _ in range(2)]  # a log line and the banner
        assert any("answering calls at sip:" in line for line in seen), seen
        r = subprocess.run(
            [TRUNKWATCH, "probe", "call", f"sip:echo@{LOOPBACK}:{port}", "--seconds", "2"],
            capture_output=True, text=True, timeout=60, env=os.environ.copy(),
        )  # fmt: skip
    finally:
        far_end.send_signal(signal.SIGTERM)
        far_end.wait(20)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "outcome ok" in r.stdout
    for figure in ("PDD", "MOS", "jitter", "lost", "burst", "RTT", "tone heard"):
        assert figure in r.stdout, r.stdout
