"""The worker pool: growth to the configured concurrency, crashes, hangs, protocol breakers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from callpeers import assert_pool_idle, call_pool, require_pjsua2, running_sipp

from probes.call import CallProbe, CallSettings
from probes.pjsua.pool import PoolSettings, WorkerPool
from probes.pjsua.process import PoolClosed, WorkerStartError
from probes.probe import run_once
from probes.result import Outcome, ProbeResult

pytestmark = pytest.mark.peers


def _fake_worker(tmp_path: Path, after_call: str) -> str:
    """An executable that speaks just enough protocol to start, then misbehaves on `call`."""
    script = tmp_path / "fake-worker"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        "sys.stdin.readline()\n"
        'print(json.dumps({"ev": "ready", "pid": os.getpid(), "sip_address": "127.0.0.1",'
        ' "sip_port": 5}), flush=True)\n'
        "for line in sys.stdin:\n"
        '    if \'"op":"call"\' in line:\n'
        f"        {after_call}\n"
    )
    script.chmod(0o755)
    return str(script)


async def test_the_pool_grows_to_its_concurrency_and_queues_beyond(tmp_path: Path) -> None:
    async with call_pool(max_calls=6) as pool:
        assert len(pool.workers) == 1  # min_workers
        with running_sipp(tmp_path, builtin="uas", echo=True) as sipp:
            settings = CallSettings(trunk="t", uri=sipp.uri, max_call_s=2.0)
            tasks = [asyncio.create_task(run_once(CallProbe(settings, pool))) for _ in range(7)]
            await asyncio.sleep(1.0)
            stats = pool.stats()
            assert (stats.workers, stats.calls_in_flight, stats.calls_waiting) == (2, 6, 1)
            results = await asyncio.gather(*tasks)
        assert [r.outcome for r in results] == [Outcome.OK] * 7, results
        assert pool.stats().calls_placed == 7 and pool.stats().crashes == 0
        await assert_pool_idle(pool)


async def test_a_dying_worker_fails_only_its_calls_and_is_restarted(tmp_path: Path) -> None:
    async with call_pool(max_calls=2, calls_per_worker=1, min_workers=2) as pool:
        victim = pool.workers[0]
        assert victim.pid is not None
        with running_sipp(tmp_path, builtin="uas", echo=True) as sipp:
            settings = CallSettings(trunk="t", uri=sipp.uri, max_call_s=3.0)
            tasks = [asyncio.create_task(run_once(CallProbe(settings, pool))) for _ in range(2)]
            await asyncio.sleep(1.0)
            os.kill(victim.pid, signal.SIGKILL)
            results: list[ProbeResult] = await asyncio.gather(*tasks)
            outcomes = sorted(r.outcome.value for r in results)
            assert outcomes == ["ok", "probe_crashed"], results
            [crashed] = [r for r in results if r.outcome is Outcome.PROBE_CRASHED]
            assert crashed.detail is not None and "SIGKILL" in crashed.detail
            for _ in range(100):  # the restart comes after RESTART_BACKOFF_MIN_S
                if pool.stats().restarts:
                    break
                await asyncio.sleep(0.05)
            assert pool.stats().crashes == 1 and pool.stats().restarts == 1
            assert len(pool.workers) == 2 and victim not in pool.workers
            again = await asyncio.gather(*(run_once(CallProbe(settings, pool)) for _ in range(2)))
        assert [r.outcome for r in again] == [Outcome.OK, Outcome.OK]
        await assert_pool_idle(pool)


async def test_a_worker_breaking_the_protocol_is_killed_and_its_call_crashed(
    tmp_path: Path,
) -> None:
    python = _fake_worker(tmp_path, 'print("this is not the protocol", flush=True)')
    pool = WorkerPool(PoolSettings(python=python))
    await pool.start()
    try:
        result = await run_once(CallProbe(CallSettings(trunk="t", uri="sip:x@127.0.0.1"), pool))
    finally:
        await pool.stop()
    assert result.outcome is Outcome.PROBE_CRASHED
    assert result.detail is not None and "protocol error" in result.detail


async def test_a_hung_worker_is_killed_at_the_calls_deadline(tmp_path: Path) -> None:
    python = _fake_worker(tmp_path, "time.sleep(3600)")
    pool = WorkerPool(PoolSettings(python=python, deadline_slack_s=0.3))
    await pool.start()
    try:
        settings = CallSettings(
            trunk="t", uri="sip:x@127.0.0.1", answer_timeout_s=0.2, max_call_s=0.2
        )
        async with asyncio.timeout(5):
            result = await run_once(CallProbe(settings, pool))
        await asyncio.sleep(0.1)  # the kill is noticed on the worker's exit
        assert pool.stats().crashes == 1
    finally:
        await pool.stop()
    assert result.outcome is Outcome.PROBE_CRASHED
    assert result.detail is not None and "no report within 0.7 s" in result.detail


async def test_a_worker_that_cannot_start() -> None:
    pool = WorkerPool(PoolSettings(python="/nonexistent/python"))
    with pytest.raises(WorkerStartError, match="/nonexistent/python"):
        await pool.start()
    result = await run_once(CallProbe(CallSettings(trunk="t", uri="sip:x@127.0.0.1"), pool))
    assert result.outcome is Outcome.PROBE_CRASHED
    await pool.stop()


async def test_stopping_the_pool_interrupts_calls_without_blaming_the_trunk(
    tmp_path: Path,
) -> None:
    require_pjsua2()
    async with call_pool() as pool:
        with running_sipp(tmp_path, builtin="uas", echo=True) as sipp:
            settings = CallSettings(trunk="t", uri=sipp.uri, max_call_s=20.0)
            task = asyncio.create_task(run_once(CallProbe(settings, pool)))
            await asyncio.sleep(1.0)
            await pool.stop()
            result = await task
    assert result.outcome is Outcome.PROBE_CRASHED, result
    with pytest.raises(PoolClosed):
        await pool.call(settings.command())


async def test_closing_a_probe_hangs_its_call_up(tmp_path: Path) -> None:
    async with call_pool() as pool:
        with running_sipp(tmp_path, builtin="uas", echo=True) as sipp:
            probe = CallProbe(CallSettings(trunk="t", uri=sipp.uri, max_call_s=20.0), pool)
            delivered: list[ProbeResult] = []
            probe.start(delivered.append)
            await asyncio.sleep(1.0)
            await probe.close()
            for _ in range(50):  # the worker hangs up and releases the call
                counts = await pool.counts()
                if counts[0].calls == 0:
                    break
                await asyncio.sleep(0.05)
        await assert_pool_idle(pool)
    assert delivered == []  # a closed probe reports nothing


async def test_pool_workers_refuse_incoming_calls() -> None:
    async with call_pool() as caller, call_pool() as callee:
        port = callee.workers[0].sip_port
        settings = CallSettings(trunk="t", uri=f"sip:someone@127.0.0.1:{port}")
        result = await run_once(CallProbe(settings, caller))
        await assert_pool_idle(callee)  # the refused call left nothing behind either
    assert result.outcome is Outcome.SIP_ERROR and result.status_code == 603
