"""The probe loop's Python cost per OPTIONS probe, without the kernel or a peer.

Usage: .venv/bin/python bench/probe_path.py [--trunks 10000] [--rounds 20]

Drives the real objects the monitor runs (Scheduler, OptionsProbe on the shared UDP
transport, Pipeline) in one uvloop loop, with the UDP socket's sendto replaced by an append
to a list: each round fires every trunk's probe (`Scheduler._fire`), then answers each
request with the reply Kamailio sends (built untimed from the request's Via, Call-ID and
CSeq) through `datagram_received`. Prints CPU µs per probe of this thread for the send half
and the reply half (`time.thread_time`), so figures hold on a machine that is not idle
and A/B runs of two trees compare what the Python code costs; the syscalls and the peer
are what bench/options_loop.py adds on top.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from monitor.health import HealthPolicy, TrunkHealth
from monitor.pipeline import Pipeline
from monitor.scheduler import Scheduler
from probes.options import MalformedCounter, OptionsSettings, SharedUdp
from probes.result import ProbeResult

REPLY = (
    "SIP/2.0 200 Keepalive\r\n"
    "Via: {via};received=127.0.0.1\r\n"
    "From: <sip:trunkwatch@127.0.0.1>;tag=x\r\n"
    "To: <sip:127.0.0.1:5060>;tag=4fe8bc3e4d6ce0e5b0f4b1a7d0bb3d3c.3b0a\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: {cseq}\r\n"
    "Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    "Content-Length: 0\r\n\r\n"
)


def reply_to(request: bytes) -> bytes:
    fields = {}
    for line in request.decode().split("\r\n"):
        name, _, value = line.partition(": ")
        if name in ("Via", "Call-ID", "CSeq"):
            fields[name.lower().replace("-", "_")] = value
    return REPLY.format(**fields).encode()


class Sent:
    """Stands in for the UDP transport: keeps what would have been sent."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        assert addr is not None
        self.datagrams.append((data, addr))

    def close(self) -> None:
        pass


async def run(trunks: int, rounds: int) -> None:
    udp = await SharedUdp.open(MalformedCounter())
    sent = Sent()
    udp.v4.transport = sent  # type: ignore[assignment]
    names = [f"t{i:06d}" for i in range(trunks)]
    health = {name: TrunkHealth(name) for name in names}
    policies = {name: HealthPolicy(3, 3) for name in names}
    pipeline = Pipeline("bench", health, policies)

    def on_result(result: ProbeResult) -> None:  # what Monitor._on_result does
        out = pipeline.on_result(result, datetime.now(UTC))
        if out is not None:
            out.events.clear()

    probes = [
        (udp.probe(OptionsSettings(trunk=name, uri="sip:127.0.0.1:5060"), keep_messages=False), 1.0)
        for name in names
    ]
    scheduler = Scheduler(probes, on_result, max_in_flight=trunks + 1)
    scheduler.start()
    scheduler.stop()  # the wheel is not used: rounds fire every item by hand
    scheduler._running = True
    receive = udp.v4.datagram_received
    gc.collect()
    gc.freeze()
    send_us: list[float] = []
    reply_us: list[float] = []
    for _ in range(rounds):
        now = time.monotonic_ns()
        for item in scheduler.items:
            item.due_ns = now
        sent.datagrams.clear()
        t0 = time.thread_time()
        for item in scheduler.items:
            scheduler._fire(item)
        t1 = time.thread_time()
        replies = [(reply_to(data), addr) for data, addr in sent.datagrams]
        t2 = time.thread_time()
        for data, addr in replies:
            receive(data, addr)
        t3 = time.thread_time()
        send_us.append((t1 - t0) / trunks * 1e6)
        reply_us.append((t3 - t2) / trunks * 1e6)
        await asyncio.sleep(0)
    assert scheduler.in_flight == 0, "every probe answered"
    ok = sum(1 for h in health.values() if h.ok_streak > 0)
    assert ok == trunks, f"{ok} of {trunks} trunks saw ok"
    send, reply = statistics.median(send_us), statistics.median(reply_us)
    print(
        f"trunks={trunks} rounds={rounds}: send {send:.2f} µs, reply {reply:.2f} µs, "
        f"total {send + reply:.2f} µs of CPU per probe (median round)"
    )
    udp.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trunks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    uvloop.run(run(args.trunks, args.rounds))


if __name__ == "__main__":
    main()
