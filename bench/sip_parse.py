"""µs per parse_message of a typical OPTIONS 200 OK and of an OPTIONS request (goal < 15 µs).

Run: .venv/bin/python bench/sip_parse.py [--rounds N] [--repeat N]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree, not the venv's

from probes.sip.ids import new_branch
from probes.sip.message import parse_message, serialize, transaction_key

T = TypeVar("T")

# What a Kamailio answering our OPTIONS statelessly sends back (~350 bytes).
OPTIONS_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:40214;branch=z9hG4bKq3m4Xv9aT2Lw8sRk;rport=40214"
    b";received=192.0.2.10\r\n"
    b"From: <sip:trunkwatch@192.0.2.10>;tag=9f2c41d7a8e3b605\r\n"
    b"To: <sip:carrier.example.net>;tag=a6a1c5f60faecf035a1ae5b6e96e979a-2f5e\r\n"
    b"Call-ID: 6f1c2b7e9d0a4c3b8e5f7a1d2c3b4a5e@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

# The same from Kamailio's options_reply(), which also lists what it supports (~450 bytes).
OPTIONS_200_FULL = OPTIONS_200[:-21] + (
    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, PRACK, UPDATE\r\n"
    b"Accept: */*\r\n"
    b"Accept-Encoding: \r\n"
    b"Accept-Language: en\r\n"
    b"Supported: \r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OPTIONS_REQUEST = (
    b"OPTIONS sip:carrier.example.net;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKq3m4Xv9aT2Lw8sRk;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:trunkwatch@192.0.2.10>;tag=9f2c41d7a8e3b605\r\n"
    b"To: <sip:carrier.example.net>\r\n"
    b"Call-ID: 6f1c2b7e9d0a4c3b8e5f7a1d2c3b4a5e@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Contact: <sip:trunkwatch@192.0.2.10:5060;transport=udp>\r\n"
    b"Accept: application/sdp\r\n"
    b"User-Agent: trunkwatch/0.1.0\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


POOL = 1_024  # distinct messages per run: fresh branch, tags and Call-ID, as on the wire


def variants(template: bytes) -> list[bytes]:
    """Copies of `template` with the per-transaction values replaced, so nothing the parser
    might cache by value (branch, To tag, Call-ID) repeats the way a fixed message would."""
    out = []
    for _ in range(POOL):
        data = template.replace(b"z9hG4bKq3m4Xv9aT2Lw8sRk", new_branch().encode())
        data = data.replace(b"a6a1c5f60faecf035a1ae5b6e96e979a", secrets.token_hex(16).encode())
        data = data.replace(b"6f1c2b7e9d0a4c3b8e5f7a1d2c3b4a5e", secrets.token_hex(16).encode())
        out.append(data)
    return out


def per_call_us(func: Callable[[T], object], items: list[T], rounds: int) -> float:
    """One timing run, in µs per call."""

    def run() -> None:
        for item in items:
            func(item)

    return timeit.timeit(run, number=rounds) / (rounds * len(items)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the pool per run")
    parser.add_argument("--repeat", type=int, default=9, help="runs per row (best is kept)")
    args = parser.parse_args()
    responses = variants(OPTIONS_200)
    full = variants(OPTIONS_200_FULL)
    requests = variants(OPTIONS_REQUEST)
    parsed_responses = [parse_message(data) for data in responses]
    parsed_requests = [parse_message(data) for data in requests]
    rows: list[tuple[str, Callable[[Any], object], list[Any]]] = [
        (f"parse OPTIONS 200 OK ({len(OPTIONS_200)} B)", parse_message, responses),
        (f"parse OPTIONS 200 OK, full ({len(OPTIONS_200_FULL)} B)", parse_message, full),
        (f"parse OPTIONS request ({len(OPTIONS_REQUEST)} B)", parse_message, requests),
        ("transaction_key of a 200 OK", transaction_key, parsed_responses),
        ("serialize a request", serialize, parsed_requests),
    ]
    # Runs interleave the rows and each row keeps its best: the CPU's speed drifts on this
    # shared machine, and the minimum is the run least disturbed by others.
    best = [float("inf")] * len(rows)
    for _ in range(args.repeat):
        for i, (_, func, items) in enumerate(rows):
            best[i] = min(best[i], per_call_us(func, items, args.rounds))
    for (label, _, _), us in zip(rows, best, strict=True):
        print(f"{label:<44} {us:7.2f} µs")


if __name__ == "__main__":
    main()
