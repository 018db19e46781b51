"""The OPTIONS probe against real peers: Kamailio on three transports, and the responder's
misbehaviours (garbage, truncation, wrong ids, oversized datagrams, another source port)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from peers import Kamailio, TlsFiles, free_port, running_kamailio
from structlog.testing import capture_logs

from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkState
from probes.clock import FakeClock
from probes.options import (
    MalformedCounter,
    OptionsProbe,
    OptionsSettings,
    SharedUdp,
    probe_options_once,
)
from probes.probe import run_once
from probes.responder import ResponderMode, SipResponder
from probes.result import Outcome, ProbeResult
from probes.sip.message import SipRequest, parse_message


def settings(uri: str, **kw: object) -> OptionsSettings:
    return OptionsSettings(trunk="t", uri=uri, timeout=kw.pop("timeout", 1.0), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_options_over_each_transport(
    kamailio: Kamailio, tls_ca: TlsFiles, transport: str
) -> None:
    result, probe = await probe_options_once(
        settings(kamailio.uri(transport), tls_ca_file=tls_ca.ca)
    )
    assert result.outcome is Outcome.OK, result
    assert result.status_code == 200
    assert result.reason == "Keepalive"
    assert result.rtt_ns is not None and 0 < result.rtt_ns < 500_000_000
    request = probe.last_request.decode()
    assert f"Via: SIP/2.0/{transport.upper()} 127.0.0.1:" in request
    assert ";branch=z9hG4bK" in request and ";rport" in request
    assert "Max-Forwards: 70" in request
    # Between probes a probe keeps no per-probe Call-ID or instants (18 MB at 100,000
    # trunks); the result took them first.
    assert result.sent_wall_ns > 0 and 0 < (result.duration_ns or 0) < 1_000_000_000
    assert (probe.call_id, probe.sent_ns, probe.sent_wall_ns) == ("", 0, 0)


async def test_tls_is_verified_by_default(kamailio: Kamailio) -> None:
    result, _ = await probe_options_once(settings(kamailio.uri("tls")))
    assert result.outcome is Outcome.TLS
    assert result.detail and "CERTIFICATE_VERIFY_FAILED" in result.detail


async def test_tls_server_name_must_match(kamailio: Kamailio, tls_ca: TlsFiles) -> None:
    result, _ = await probe_options_once(
        settings(kamailio.uri("tls"), tls_ca_file=tls_ca.ca, tls_server_name="sbc.other.example")
    )
    assert result.outcome is Outcome.TLS


async def test_udp_refusal_one_shot() -> None:
    port = free_port("udp")
    result, _ = await probe_options_once(settings(f"sip:127.0.0.1:{port}"))
    assert result.outcome is Outcome.REFUSED


async def test_tcp_refusal() -> None:
    port = free_port("tcp")
    result, _ = await probe_options_once(settings(f"sip:127.0.0.1:{port};transport=tcp"))
    assert result.outcome is Outcome.REFUSED


async def test_dns_failure() -> None:
    result, _ = await probe_options_once(settings("sip:no-such-host.invalid", timeout=2.0))
    assert result.outcome is Outcome.DNS


@pytest.fixture
async def responder() -> AsyncIterator[SipResponder]:
    resp = SipResponder("127.0.0.1", 0)
    await resp.start()
    try:
        yield resp
    finally:
        await resp.stop()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (404, Outcome.OK),  # the far end answered: alive by the default policy
        (483, Outcome.OK),
        (408, Outcome.SIP_ERROR),
        (503, Outcome.SIP_ERROR),
        (603, Outcome.SIP_ERROR),
    ],
)
async def test_default_alive_policy(responder: SipResponder, status: int, outcome: Outcome) -> None:
    responder.mode = ResponderMode.STATUS
    responder.status = status
    result, _ = await probe_options_once(settings(f"sip:127.0.0.1:{responder.port}"))
    assert result.outcome is outcome
    assert result.status_code == status


async def test_custom_alive_policy(responder: SipResponder) -> None:
    responder.mode = ResponderMode.STATUS
    responder.status = 404
    strict = settings(f"sip:127.0.0.1:{responder.port}", alive_codes=frozenset(range(200, 300)))
    result, _ = await probe_options_once(strict)
    assert result.outcome is Outcome.SIP_ERROR


async def test_probes_of_trunks_set_up_alike_share_one_settings_object(
    responder: SipResponder,
) -> None:
    """The settings object is shared (memory at 100,000 trunks); each probe keeps its own
    trunk and URI, and a trunk set up otherwise gets its own."""
    udp = await SharedUdp.open(MalformedCounter())
    try:
        probes = {
            name: udp.probe(replace(settings(f"sip:{name}@127.0.0.1:{responder.port}"), trunk=name))
            for name in ("a", "b")
        }
        slower = udp.probe(settings(f"sip:c@127.0.0.1:{responder.port}", timeout=0.9))
        assert probes["a"].settings is probes["b"].settings is not slower.settings
        assert (probes["a"].settings.timeout, slower.settings.timeout) == (1.0, 0.9)
        for name, probe in probes.items():
            result = await run_once(probe)
            assert (result.outcome, result.trunk) == (Outcome.OK, name), result
            request = parse_message(probe.last_request)
            assert isinstance(request, SipRequest)
            assert request.uri == f"sip:{name}@127.0.0.1:{responder.port}"
    finally:
        udp.close()


async def test_each_probe_is_a_new_call_from_the_same_tag(responder: SipResponder) -> None:
    # RFC 3261 §8.1.1: a new Call-ID per request outside a dialog; the From tag, built into
    # the request's template, stays while the local address does. Two probes of one trunk
    # and one of another over the shared socket.
    udp = await SharedUdp.open(MalformedCounter())
    try:
        first = udp.probe(settings(f"sip:127.0.0.1:{responder.port}"))
        other = udp.probe(settings(f"sip:other@127.0.0.1:{responder.port}"))
        requests = []
        for probe in (first, first, other):
            result = await run_once(probe)
            assert result.outcome is Outcome.OK, result
            requests.append(parse_message(probe.last_request))
    finally:
        udp.close()
    tags = [r.headers.get("From").split(";tag=")[1] for r in requests]
    call_ids = [r.headers.get("Call-ID") for r in requests]
    assert tags[0] == tags[1] != tags[2] and len(tags[0]) == 16
    assert len(set(call_ids)) == 3 and all(c.endswith("@127.0.0.1") for c in call_ids)
    # What is the same for every probe from this address is held once (13 MB at 100,000).
    assert first._template is other._template
    # So are the sockets, counter and loop (one object for the monitor's probes), and a
    # probe with a counter of its own has its own.
    assert first._links is other._links
    lone = OptionsProbe(settings(f"sip:127.0.0.1:{responder.port}"), udp=udp.v4)
    assert lone._links is not first._links and lone._links.udp is first._links.udp
    assert first.request_uri != other.request_uri and first._tag != other._tag


async def test_timeout_and_retransmissions(responder: SipResponder) -> None:
    responder.mode = ResponderMode.SILENT
    result, _ = await probe_options_once(settings(f"sip:127.0.0.1:{responder.port}", timeout=1.6))
    assert result.outcome is Outcome.TIMEOUT
    # Timer E over UDP: sent at 0, 0.5, 1.5 s within a 1.6 s budget.
    assert responder.received == 3


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        (ResponderMode.GARBAGE, Outcome.PARSE_ERROR),
        (ResponderMode.TRUNCATED, Outcome.PARSE_ERROR),
        (ResponderMode.OVERSIZED, Outcome.PARSE_ERROR),
        (ResponderMode.WRONG_BRANCH, Outcome.MISMATCH),
        (ResponderMode.WRONG_CALL_ID, Outcome.MISMATCH),
        (ResponderMode.OTHER_PORT, Outcome.MISMATCH),
    ],
)
async def test_bad_answers_are_not_counted(
    responder: SipResponder, mode: ResponderMode, outcome: Outcome
) -> None:
    """The shared-socket path the scheduler uses: bad answers fail the probe, loudly."""
    responder.mode = mode
    malformed = MalformedCounter()
    udp = await SharedUdp.open(malformed)
    try:
        probe = udp.probe(settings(f"sip:127.0.0.1:{responder.port}", timeout=0.6))
        result = await run_once(probe)
    finally:
        udp.close()
    assert result.outcome is outcome
    assert result.status_code is None
    assert malformed.parse_errors + malformed.mismatches >= 1


async def test_monitor_survives_garbage_and_logs_it_truncated(
    responder: SipResponder, tmp_path: Path
) -> None:
    cfg = config_from_text(
        f"""
agent: t
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: 0.1, timeout: 0.08, down_after: 2, up_after: 2}}
trunks: [{{name: junk, uri: "sip:127.0.0.1:{responder.port}"}}]
"""
    )
    monitor = Monitor(cfg)
    with capture_logs() as logs:
        await monitor.start()
        try:
            await asyncio.sleep(0.4)
            assert monitor.health["junk"].state is TrunkState.UP
            responder.mode = ResponderMode.OVERSIZED
            await asyncio.sleep(0.5)
            responder.mode = ResponderMode.GARBAGE
            await asyncio.sleep(0.5)
            assert monitor.health["junk"].state is TrunkState.DOWN
            responder.mode = ResponderMode.NORMAL
            await asyncio.sleep(0.5)
            assert monitor.health["junk"].state is TrunkState.UP
        finally:
            await monitor.stop()
    bad = [e for e in logs if e["event"] == "sip_malformed_packet"]
    assert bad, "malformed packets were logged"
    assert len(bad) <= 10  # rate-limited: at most 10 a minute
    assert all(len(e["head"]) <= 150 and "…(+" in e["head"] for e in bad if e["size"] > 120)
    assert monitor.malformed.parse_errors >= 5
    assert monitor.scheduler is not None and monitor.scheduler.errors == 0


async def test_ipv6_loopback() -> None:
    resp = SipResponder("::1", 0)
    await resp.start()
    try:
        result, probe = await probe_options_once(settings(f"sip:[::1]:{resp.port}"))
    finally:
        await resp.stop()
    assert result.outcome is Outcome.OK, result
    assert "Via: SIP/2.0/UDP [::1]:" in probe.last_request.decode()


async def test_tls_client_certificate(tmp_path: Path, tls_ca: TlsFiles) -> None:
    """A trunk that demands mutual TLS: refused without our certificate, up with it."""
    with running_kamailio(tmp_path / "mtls", tls_ca, require_client_cert=True) as kam:
        without, _ = await probe_options_once(settings(kam.uri("tls"), tls_ca_file=tls_ca.ca))
        with_cert, _ = await probe_options_once(
            settings(
                kam.uri("tls"),
                tls_ca_file=tls_ca.ca,
                tls_cert_file=tls_ca.client_cert,
                tls_key_file=tls_ca.client_key,
            )
        )
    assert without.outcome is Outcome.TLS, without
    assert without.detail and "CERTIFICATE_REQUIRED" in without.detail
    assert with_cert.outcome is Outcome.OK, with_cert


async def test_the_probe_reads_time_only_from_its_clock(responder: SipResponder) -> None:
    # With a fake clock the figures are exactly what the clock said, not what time passed.
    clock = FakeClock()
    sent_wall = clock.wall
    udp = await SharedUdp.open(MalformedCounter())
    try:
        probe = udp.probe(settings(f"sip:127.0.0.1:{responder.port}"), clock=clock)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ProbeResult] = loop.create_future()
        probe.start(done.set_result)  # sends synchronously: an address literal over UDP
        clock.advance(0.0375)  # before the loop can deliver the answer
        result = await asyncio.wait_for(done, 2.0)
    finally:
        udp.close()
    assert result.outcome is Outcome.OK, result
    assert result.sent_wall_ns == sent_wall
    assert result.rtt_ns == 37_500_000
    assert result.duration_ns == 37_500_000


def test_an_answer_waiting_unread_is_not_a_timeout(kamailio: Kamailio) -> None:
    """uvloop runs due timers before it reads sockets: a loop that is behind must still count
    the answer Kamailio sent in time, not declare the probe timed out.

    The probe starts inside another socket's callback, which then stalls the loop past the
    probe's timeout; the answer arrives during the stall, after that turn's poll, so the next
    turn meets the due timer before it reads the answer.
    """
    import socket

    uvloop = pytest.importorskip("uvloop")

    async def main() -> tuple[ProbeResult, int]:
        loop = asyncio.get_running_loop()
        udp = await SharedUdp.open(MalformedCounter())
        probe = udp.probe(settings(kamailio.uri("udp"), timeout=0.3))
        done: asyncio.Future[ProbeResult] = loop.create_future()

        class Stall(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                probe.start(done.set_result)
                time.sleep(0.6)  # the answer arrives and waits; the timeout falls due

        stall, _ = await loop.create_datagram_endpoint(Stall, local_addr=("127.0.0.1", 0))
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
                poke.sendto(b"go", stall.get_extra_info("sockname"))
            return await asyncio.wait_for(done, 5), udp.v4.drained
        finally:
            stall.close()
            udp.close()

    result, drained = uvloop.run(main())
    assert result.outcome is Outcome.OK, result
    assert result.status_code == 200
    assert drained == 1  # read by the drain, before the timeout acted


async def test_long_loop_turns_do_not_starve_the_answers(kamailio: Kamailio) -> None:
    """libuv reads at most 32 datagrams per socket per loop turn: with long turns (a scrape's
    steps) answers queue up behind the sends and the in-flight cap skips probes whose
    answers are already here. Draining the socket before each slot's sends (what the
    monitor wires) keeps up; the same run without it skips."""
    from monitor.scheduler import Scheduler

    async def run(drain: bool) -> tuple[int, int]:
        udp = await SharedUdp.open(MalformedCounter())
        ok: list[ProbeResult] = []
        probes = [
            (udp.probe(OptionsSettings(trunk=f"t{i}", uri=kamailio.uri("udp"), timeout=0.8)), 1.0)
            for i in range(3000)
        ]
        scheduler = Scheduler(
            probes, ok.append, max_in_flight=300, before_tick=udp.drain if drain else None
        )

        async def long_turns() -> None:  # ~20 ms of every turn goes to something else
            while True:
                time.sleep(0.02)  # noqa: ASYNC251 (a long loop turn, on purpose)
                await asyncio.sleep(0)

        blocker = asyncio.create_task(long_turns())
        scheduler.start()
        try:
            await asyncio.sleep(2.5)
        finally:
            scheduler.stop()
            blocker.cancel()
            for probe, _ in probes:
                await probe.close()
            udp.close()
        return scheduler.skipped, sum(1 for r in ok if r.outcome is Outcome.OK)

    skipped_with, ok_with = await run(drain=True)
    skipped_without, _ = await run(drain=False)
    assert skipped_without > 500  # the failure the drain prevents, shown on the same machine
    assert skipped_with < skipped_without / 10
    assert ok_with > 6000


async def test_an_outage_of_every_trunk_is_not_skipped_by_the_default_cap() -> None:
    """4,000 trunks at 1 s, all silent: ~3,200 probes wait on their 0.8 s timeout at once.
    The old fixed cap of 2,000 skipped over a third of exactly those probes (the failing
    trunks' outages came late); the default cap counts them in and skips none."""
    import socket

    from monitor.probe_settings import options_probes
    from monitor.scheduler import Scheduler

    async def run(scheduler_yaml: str) -> tuple[int, int, list[Outcome]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # never answers
            silent.bind(("127.0.0.1", 0))
            port = silent.getsockname()[1]
            trunks = "".join(
                f"  - {{name: t{i}, carrier: c, uri: 'sip:127.0.0.1:{port}'}}\n"
                for i in range(4000)
            )
            cfg = config_from_text(
                f"{scheduler_yaml}defaults: {{interval: 1s, timeout: 0.8s}}\ntrunks:\n{trunks}"
            )
            udp = await SharedUdp.open(MalformedCounter())
            probes = options_probes(udp, cfg.trunks, cfg.dns.resolver())
            results: list[ProbeResult] = []
            limit = cfg.in_flight_limit(len(probes))
            scheduler = Scheduler(probes, results.append, max_in_flight=limit)
            scheduler.start()
            try:
                await asyncio.sleep(2.5)
                outcomes = [r.outcome for r in results]  # not those of the probes stop() ends
            finally:
                scheduler.stop()
                for probe, _ in probes:
                    await probe.close()
                udp.close()
            return limit, scheduler.skipped, outcomes

    limit, skipped, outcomes = await run("")
    assert limit == 2000 + 3200  # headroom plus 4,000 × 0.8 s / 1 s
    assert skipped == 0
    assert len(outcomes) > 4000 and set(outcomes) == {Outcome.TIMEOUT}
    fixed, skipped_fixed, _ = await run("scheduler: {max_in_flight: 2000}\n")
    assert fixed == 2000
    assert skipped_fixed > 1000  # the failure the default prevents, on the same machine


def test_reason_phrases_are_escaped_once_and_shared_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from probes import options

    monkeypatch.setattr(options, "_REASONS", {})
    first = options._reason("".join(["Service ", "Unavailable"]))  # a fresh str each reply
    assert options._reason("Service Unavailable") is first
    assert options._reason("Bad\x1bGateway") == "Bad\\x1bGateway"  # escaped as before
    long = "x" * (options._MAX_SHARED_REASON_CHARS + 1)
    assert options._reason(long) == long and long not in options._REASONS
    for i in range(2 * options._MAX_REASONS):  # a peer sending a new phrase every time
        options._reason(f"phrase {i}")
    assert len(options._REASONS) == options._MAX_REASONS
