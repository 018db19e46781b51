"""µs per parse_message of a typical OPTIONS 200 OK and of an OPTIONS request (goal < 15 µs).

Run: .venv/bin/python bench/sip_parse.py [--number N]
"""

from __future__ import annotations

import argparse
import timeit

from probes.sip.message import parse_message, serialize, transaction_key

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


def per_call_us(stmt: object, number: int) -> float:
    """Best of five runs, in µs per call (the minimum is the least disturbed by other load)."""
    runs = timeit.repeat(stmt, number=number, repeat=5)  # type: ignore[arg-type]
    return min(runs) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    response = parse_message(OPTIONS_200)
    request = parse_message(OPTIONS_REQUEST)
    rows = [
        (f"parse OPTIONS 200 OK ({len(OPTIONS_200)} B)", lambda: parse_message(OPTIONS_200)),
        (
            f"parse OPTIONS 200 OK, full ({len(OPTIONS_200_FULL)} B)",
            lambda: parse_message(OPTIONS_200_FULL),
        ),
        (
            f"parse OPTIONS request ({len(OPTIONS_REQUEST)} B)",
            lambda: parse_message(OPTIONS_REQUEST),
        ),
        ("transaction_key of the 200 OK", lambda: transaction_key(response)),  # type: ignore[arg-type]
        ("serialize the request", lambda: serialize(request)),
    ]
    for label, stmt in rows:
        print(f"{label:<44} {per_call_us(stmt, args.number):7.2f} µs")


if __name__ == "__main__":
    main()
