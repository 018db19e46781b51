"""Third-party answering peers: baresip (auto-answer, audio loop) and SIPp (-rtp_echo)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from callpeers import assert_pool_idle, call_pool, running_baresip, running_sipp

from probes.call import CallProbe, CallSettings
from probes.media.thresholds import CLIENT_TO_EDGE
from probes.probe import run_once
from probes.result import Disconnect, Outcome, ProbeResult

pytestmark = pytest.mark.peers

CALL_S = 4.0


def assert_sane(result: ProbeResult, peer: str) -> None:
    assert result.outcome is Outcome.OK, (peer, result)
    m = result.call
    assert m is not None and m.rx is not None, peer
    assert m.codec == "PCMU" and m.disconnect is Disconnect.LOCAL
    assert m.setup_s is not None and m.setup_s < 1.0
    assert m.duration_s == pytest.approx(CALL_S, abs=0.1)
    assert m.rx.packets is not None and m.rx.packets >= (CALL_S - 0.5) / 0.02
    assert m.rx.lost == 0 and m.rx.burst_loss_ratio == 0
    assert m.rx.jitter_mean_s is not None and m.rx.jitter_mean_s < 0.005
    assert m.rx.tone_found is True, (peer, m.rx.tone_coverage)  # our tone, echoed back
    assert m.mos is not None and m.mos >= 4.3
    assert m.violations == ()


async def test_baresip_and_sipp_answer_and_echo(tmp_path: Path) -> None:
    async with call_pool() as pool:
        with (
            running_baresip(tmp_path / "baresip") as baresip,
            running_sipp(tmp_path / "sipp", builtin="uas", echo=True) as sipp,
        ):
            peers = {"baresip": baresip.uri, "sipp": sipp.uri}
            results = await asyncio.gather(
                *(
                    run_once(
                        CallProbe(
                            CallSettings(
                                trunk=name, uri=uri, max_call_s=CALL_S, profile=CLIENT_TO_EDGE
                            ),
                            pool,
                        )
                    )
                    for name, uri in peers.items()
                )
            )
        for name, result in zip(peers, results, strict=True):
            assert_sane(result, name)
        await assert_pool_idle(pool)
