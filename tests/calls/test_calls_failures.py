"""Failure outcomes against scripted SIPp peers: each its own outcome, nothing leaked, no crash."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from callpeers import (
    MALFORMED_SDP,
    Sipp,
    answer_scenario,
    assert_pool_idle,
    auth_invite_scenario,
    call_pool,
    no_answer_scenario,
    registrar_scenario,
    reject_scenario,
    running_sipp,
    sdp_with,
)

from probes.call import CallProbe, CallSettings
from probes.pjsua.pool import WorkerPool
from probes.probe import run_once
from probes.result import Disconnect, Outcome, ProbeResult

pytestmark = pytest.mark.peers

# SIPp with -m 1 exits once its one call is through; a clean exit proves the scenario ran.
SIPP_EXIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Case:
    name: str
    scenario: str
    outcome: Outcome
    status: int | None
    disconnect: Disconnect
    echo: bool = False  # SIPp echoes RTP (-rtp_echo)
    max_call_s: float = 2.0


CASES = [
    Case("486", reject_scenario(486, "Busy Here"), Outcome.BUSY, 486, Disconnect.REJECTED),
    Case("404", reject_scenario(404, "Not Found"), Outcome.NOT_FOUND, 404, Disconnect.REJECTED),
    Case(
        "503",
        reject_scenario(503, "Service Unavailable"),
        Outcome.SERVICE_UNAVAILABLE,
        503,
        Disconnect.REJECTED,
    ),
    Case("no-answer", no_answer_scenario(), Outcome.NO_ANSWER, None, Disconnect.CANCELLED),
    Case("no-rtp", answer_scenario(), Outcome.NO_AUDIO, 200, Disconnect.LOCAL),
    Case(
        "malformed-sdp",
        answer_scenario(sdp=MALFORMED_SDP),
        Outcome.BAD_SDP,
        200,
        Disconnect.ERROR,
    ),
    Case(
        "g722-only-answer",
        answer_scenario(sdp=sdp_with(9, "G722")),
        Outcome.CODEC_MISMATCH,
        200,
        Disconnect.ERROR,
    ),
    Case(
        "early-bye",
        answer_scenario(then="early_bye"),
        Outcome.DROPPED,
        200,
        Disconnect.REMOTE,
        echo=True,
        max_call_s=4.0,
    ),
    Case(
        "re-invite",
        answer_scenario(then="reinvite"),
        Outcome.OK,
        200,
        Disconnect.LOCAL,
        echo=True,
        max_call_s=2.5,
    ),
]


async def _call(pool: WorkerPool, sipp: Sipp, **kwargs: object) -> ProbeResult:
    settings = CallSettings(trunk="sipp", uri=sipp.uri, answer_timeout_s=1.0, **kwargs)  # type: ignore[arg-type]
    return await run_once(CallProbe(settings, pool))


async def _sipp_exit(sipp: Sipp) -> int:
    return await asyncio.to_thread(sipp.proc.wait, SIPP_EXIT_TIMEOUT_S)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_failure_outcomes(case: Case, tmp_path: Path) -> None:
    async with call_pool() as pool:
        with running_sipp(tmp_path, scenario=case.scenario, echo=case.echo, calls=1) as sipp:
            result = await _call(pool, sipp, max_call_s=case.max_call_s)
            assert result.outcome is case.outcome, (result, sipp.output()[-500:])
            assert result.status_code == case.status
            assert result.call is not None and result.call.disconnect is case.disconnect
            # Every scenario ran to its end: the far end saw the dialog close properly.
            assert await _sipp_exit(sipp) == 0, sipp.output()[-2000:]
        # Whatever the far end did, the worker holds no call, slot, object or recorder.
        await assert_pool_idle(pool)
    if case.name == "re-invite":
        assert result.call.reinvites == 1
        assert result.call.rx is not None and result.call.rx.tone_found is True
    if case.name == "early-bye":
        assert result.call.duration_s is not None and 1.3 < result.call.duration_s < 2.0
    if case.name == "no-answer":
        assert result.call.pdd_s is not None and result.call.setup_s is None


async def test_digest_challenged_invite_is_answered_with_our_credentials(tmp_path: Path) -> None:
    scenario = auth_invite_scenario("alice", "s3cret")
    async with call_pool() as pool:
        with running_sipp(tmp_path / "good", scenario=scenario, echo=True, calls=1) as sipp:
            ok = await _call(pool, sipp, max_call_s=1.5, username="alice", password="s3cret")
            assert await _sipp_exit(sipp) == 0, sipp.output()[-2000:]
        with running_sipp(tmp_path / "bad", scenario=scenario, calls=1) as sipp:
            refused = await _call(pool, sipp, username="alice", password="wrong")
        await assert_pool_idle(pool)
    assert ok.outcome is Outcome.OK, ok
    assert refused.outcome is Outcome.SIP_ERROR and refused.status_code == 403


async def test_registering_first_with_digest_credentials(tmp_path: Path) -> None:
    async with call_pool() as pool:
        with (
            running_sipp(tmp_path / "far", builtin="uas", echo=True) as far_end,
            running_sipp(
                tmp_path / "registrar", scenario=registrar_scenario("bob", "pa55"), calls=1
            ) as registrar,
        ):
            result = await _call(
                pool,
                far_end,
                max_call_s=1.0,
                username="bob",
                password="pa55",
                registrar=f"sip:127.0.0.1:{registrar.port}",
                from_uri=f"sip:bob@127.0.0.1:{registrar.port}",
            )
            assert await _sipp_exit(registrar) == 0, registrar.output()[-2000:]
        with running_sipp(
            tmp_path / "registrar2", scenario=registrar_scenario("bob", "other"), calls=1
        ) as registrar:
            refused = await _call(
                pool,
                far_end,
                username="bob",
                password="pa55",
                registrar=f"sip:127.0.0.1:{registrar.port}",
                from_uri=f"sip:bob@127.0.0.1:{registrar.port}",
            )
    assert result.outcome is Outcome.OK, result
    assert refused.outcome is Outcome.AUTH, refused
    assert refused.detail is not None and "403" in refused.detail
