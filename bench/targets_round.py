"""CPU cost of one multi-target round (probes/targets.py) against plain probes of the same
targets: dnsmasq serves N SRV targets that all lead to one Kamailio on loopback.

Usage: .venv/bin/python bench/targets_round.py [--targets 1 4 16] [--rounds 2000]

Prints, per N, the CPU µs per round of one TargetsProbe (N per-target OPTIONS + aggregation)
and of N plain OptionsProbes to the same addresses, run one round after another.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests"), "."]

from dns_peer import host, running_dnsmasq, srv  # noqa: E402
from peers import make_tls_ca, running_kamailio  # noqa: E402

from probes.dns.settings import ResolverSettings  # noqa: E402
from probes.options import MalformedCounter, OptionsSettings, SharedUdp  # noqa: E402
from probes.probe import Probe, run_once  # noqa: E402
from probes.result import Outcome  # noqa: E402
from probes.targets import TargetsProbe  # noqa: E402

Z = "carrier.test"


async def cpu_per_round(probes: list[Probe], rounds: int) -> float:
    for probe in probes:  # warm-up: resolution, first sends
        assert (await run_once(probe)).outcome is Outcome.OK
    start = time.process_time()
    for _ in range(rounds):
        results = await asyncio.gather(*(run_once(p) for p in probes))
        assert all(r.outcome is Outcome.OK for r in results)
    return (time.process_time() - start) / rounds * 1e6


async def measure(n: int, rounds: int, kam_port: int, dns_port: int) -> tuple[float, float]:
    udp = await SharedUdp.open(MalformedCounter())
    resolver = ResolverSettings(nameserver="127.0.0.1", port=dns_port)
    settings = OptionsSettings(trunk="t", uri=f"sip:{Z};transport=udp", timeout=1.0, dns=resolver)
    multi = TargetsProbe(settings, "all", udp=udp.v4, udp_v6=udp.v6, malformed=udp.v4.malformed)
    plain: list[Probe] = [
        udp.probe(OptionsSettings(trunk=f"p{i}", uri=f"sip:127.0.0.1:{kam_port}", timeout=1.0))
        for i in range(n)
    ]
    try:
        multi_us = await cpu_per_round([multi], rounds)
        assert len(multi.probes) == n
        plain_us = await cpu_per_round(plain, rounds)
    finally:
        for probe in [multi, *plain]:
            await probe.close()
        udp.close()
    return multi_us, plain_us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with running_kamailio(work / "kam", make_tls_ca(work / "ca")) as kam:
            for n in args.targets:
                records = [
                    srv(f"_sip._udp.{Z}", f"sbc{i}.{Z}", kam.udp_port, 10, 0) for i in range(n)
                ]
                records += [host(f"sbc{i}.{Z}", "127.0.0.1") for i in range(n)]
                with running_dnsmasq(work / f"dns{n}", records, local_domains=[Z]) as dns:
                    multi, plain = asyncio.run(measure(n, args.rounds, kam.udp_port, dns.port))
                print(
                    f"{n:3d} targets: TargetsProbe {multi:7.1f} µs CPU/round, "
                    f"{n} plain probes {plain:7.1f} µs, overhead {multi - plain:+6.1f} µs"
                )


if __name__ == "__main__":
    main()
