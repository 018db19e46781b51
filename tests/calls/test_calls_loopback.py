"""pjsua2 caller (the pool) -> trunkwatch's call responder on loopback: real calls, real RTP."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from callpeers import (
    LOOPBACK,
    assert_idle,
    assert_pool_idle,
    call_pool,
    call_responder,
    port_block,
)
from peers import options_ping

from probes.call import CallProbe, CallSettings, one_call
from probes.media.thresholds import EDGE_TO_EDGE
from probes.pjsua.pool import RTP_PORTS_PER_WORKER, PoolSettings
from probes.probe import run_once
from probes.result import Disconnect, Outcome

pytestmark = pytest.mark.peers

RING_S = 0.3
CALL_S = 4.0


async def test_a_clean_call_measures_clean_and_the_tone_comes_back() -> None:
    async with call_pool() as pool, call_responder(ring_s=RING_S) as responder:
        settings = CallSettings(
            trunk="loopback", uri=responder.uri, max_call_s=CALL_S, profile=EDGE_TO_EDGE
        )
        result = await run_once(CallProbe(settings, pool))
        [incoming] = await responder.wait_calls(1, timeout_s=5)
        assert result.outcome is Outcome.OK, result
        assert result.status_code == 200 and result.reason == "OK"
        m = result.call
        assert m is not None and m.rx is not None
        # Signalling: 180 at once, 200 after the responder's ring delay.
        assert m.pdd_s is not None and m.pdd_s < 0.1
        assert m.srd_s == m.pdd_s
        assert m.setup_s is not None and RING_S <= m.setup_s < RING_S + 0.2
        assert m.duration_s == pytest.approx(CALL_S, abs=0.1)
        assert m.disconnect is Disconnect.LOCAL and m.disconnect_status == 200
        assert m.codec == "PCMU"
        # Media: nothing lost, MOS of an unimpaired G.711 call, our tone echoed back.
        assert m.rx.packets is not None and m.rx.packets >= (CALL_S - 0.3) / 0.02
        assert m.rx.lost == 0 and m.rx.loss_ratio == 0 and m.rx.burst_loss_ratio == 0
        assert m.rx.jitter_mean_s is not None and m.rx.jitter_mean_s < 0.002
        assert m.mos is not None and m.mos >= 4.3
        assert m.rx.tone_found is True
        assert m.violations == ()  # even the strict edge_to_edge profile holds
        # The responder heard our tone too: both directions carry audio.
        assert incoming.tone is not None and incoming.tone.found, incoming.tone
        assert incoming.samples[-1].rx_lost == 0
        await assert_pool_idle(pool)
        assert_idle(await responder.counts())


async def test_tone_mode_proves_each_direction_separately_over_pcma() -> None:
    async with call_pool() as pool, call_responder(mode="tone", codecs=("PCMA",)) as responder:
        settings = CallSettings(
            trunk="loopback", uri=responder.uri, max_call_s=3.0, codecs=("PCMA",)
        )
        result = await run_once(CallProbe(settings, pool))
        [incoming] = await responder.wait_calls(1, timeout_s=5)
    assert result.outcome is Outcome.OK, result
    assert result.call is not None and result.call.rx is not None
    assert result.call.codec == "PCMA"
    assert result.call.rx.tone_found is True  # the responder's own tone reached us
    assert incoming.codec == "PCMA"
    assert incoming.tone is not None and incoming.tone.found  # ours reached the responder


async def test_a_far_end_sending_silence_is_one_way_audio() -> None:
    async with call_pool() as pool, call_responder(mode="silence") as responder:
        settings = CallSettings(trunk="loopback", uri=responder.uri, max_call_s=2.0)
        result = await run_once(CallProbe(settings, pool))
        [incoming] = await responder.wait_calls(1, timeout_s=5)
    assert result.outcome is Outcome.ONE_WAY_AUDIO, result
    assert result.call is not None and result.call.rx is not None
    assert result.call.rx.packets and result.call.rx.packets > 50  # RTP came, empty of tone
    assert result.call.rx.tone_found is False
    assert incoming.tone is not None and incoming.tone.found  # our direction was fine


async def test_a_pcmu_only_offer_to_a_peer_without_g711_is_a_codec_mismatch() -> None:
    async with call_pool() as pool, call_responder(codecs=("G722",)) as responder:
        settings = CallSettings(trunk="loopback", uri=responder.uri, codecs=("PCMU",))
        result = await run_once(CallProbe(settings, pool))
        await assert_pool_idle(pool)
    assert result.outcome is Outcome.CODEC_MISMATCH, result
    assert result.status_code == 488


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(486, Outcome.BUSY), (404, Outcome.NOT_FOUND), (503, Outcome.SERVICE_UNAVAILABLE)],
)
async def test_responder_rejections(status: int, outcome: Outcome) -> None:
    async with call_pool() as pool, call_responder(status=status) as responder:
        result = await run_once(CallProbe(CallSettings(trunk="t", uri=responder.uri), pool))
    assert result.outcome is outcome and result.status_code == status


async def test_the_responder_answers_options_and_comes_back_after_a_crash() -> None:
    async with call_pool() as pool, call_responder() as responder:
        port = responder.sip_port
        assert await asyncio.to_thread(options_ping, port) == 200
        worker = responder.worker
        assert worker is not None and worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        for _ in range(100):  # restarted after RESTART_BACKOFF_MIN_S
            if responder.restarts:
                break
            await asyncio.sleep(0.05)
        assert responder.restarts == 1 and responder.sip_port == port
        assert await asyncio.to_thread(options_ping, port) == 200
        settings = CallSettings(trunk="t", uri=responder.uri, max_call_s=1.0)
        result = await run_once(CallProbe(settings, pool))
    assert result.outcome is Outcome.OK, result


async def test_one_shot_call_starts_and_stops_its_own_pool() -> None:
    async with call_responder() as responder:
        pool_settings = PoolSettings(
            max_calls=1,
            sip_address=LOOPBACK,
            media_address=LOOPBACK,
            rtp_port_min=port_block(RTP_PORTS_PER_WORKER).start,
        )
        settings = CallSettings(trunk="cli", uri=responder.uri, max_call_s=1.0)
        result = await one_call(settings, pool_settings)
    assert result.outcome is Outcome.OK, result
    broken = await one_call(settings, PoolSettings(max_calls=1, python="/nonexistent/python"))
    assert broken.outcome is Outcome.PROBE_CRASHED
    assert broken.detail is not None and "/nonexistent/python" in broken.detail
