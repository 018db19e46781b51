"""Several agents on one PostgreSQL 15 (issue 12): what the quorum and the lease cost.

Usage: .venv/bin/python bench/cluster.py [--trunks 10000] [--seconds 20] [--failovers 3]

Starts its own PostgreSQL (initdb + pg_ctl in a temp directory, as tests/pg_peer.py does)
and prints:
1. quorum reached → ticket request: agents' views written to the store until a majority
   agrees; the time until the leader's loop has committed the outage and its outbox row
   (goal < 1 s). 20 outages.
2. leader failover: the leader stops renewing (as if killed); the time until another
   agent holds the lease (goal ≤ lease + one renewal step).
3. PostgreSQL write load of one agent at N trunks probed every second against Kamailio
   (cluster mode, the quorum loop running), and the probe loop's lateness beside the same
   run on SQLite: rows written per second, commits per second, lateness p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree, not the venv's

from options_loop import free_port, run_loop, start_kamailio, stop
from pg_peer import running_postgres

from monitor.events import Outage, OutageKind, OutageOpened
from monitor.leadership import LEASE_S, Leadership
from monitor.log import configure_logging
from monitor.quorum import EVALUATE_S, QuorumLoop
from monitor.store import Store
from monitor.tickets.config import TicketsSettings
from monitor.tickets.routing import TicketRouting

HOOK = {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "H"}
SECRET = "whsec_" + "A" * 43 + "="


async def quorum_latency(url: str, outages: int) -> list[float]:
    agents = [await Store.open(url, agent=f"agent-{i}", views=True) for i in range(3)]
    trunks = {f"t{i:03d}": None for i in range(outages)}
    settings = TicketsSettings.model_validate({"sinks": [HOOK]}, context={"env": {"H": SECRET}})
    routing = TicketRouting.build(settings, [(t, "carrier") for t in trunks])
    committed: list[float] = []
    done = asyncio.Event()

    def woke() -> None:  # called right after the loop's transaction committed
        committed.append(time.monotonic())
        done.set()

    loop = QuorumLoop(agents[0], routing, trunks, lambda: True, wake=woke)
    task = asyncio.create_task(loop.run())
    latencies = []
    try:
        for agent in agents:
            await agent.heartbeat(datetime.now(UTC))
        for trunk in trunks:
            done.clear()
            now = datetime.now(UTC)
            for n, agent in enumerate(agents[:2]):  # the second view makes the majority
                o = Outage(f"{agent.agent}-{trunk}", trunk, OutageKind.OUTAGE,
                           now - timedelta(seconds=2 - n), now, "timeout")  # fmt: skip
                await agent.append([OutageOpened(o)])
            reached = time.monotonic()
            await done.wait()
            latencies.append(committed[-1] - reached)
            # Outages come at any moment of the loop's cycle, not right after its pass.
            await asyncio.sleep(random.uniform(0, EVALUATE_S))
    finally:
        task.cancel()
        for agent in agents:
            await agent.close()
    return latencies


async def failover(url: str, trials: int) -> list[float]:
    store = await Store.open(url, agent="bench-failover")
    out = []
    try:
        for trial in range(trials):
            name = f"bench-lease-{trial}"
            a = Leadership(store.engine, "agent-a", name=name)
            taken = asyncio.Event()
            b = Leadership(store.engine, "agent-b", name=name, on_acquired=taken.set)
            await a.step()
            assert a.is_leader
            runs = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
            # a dies at any moment between two renewals: no release, no more renewals.
            await asyncio.sleep(LEASE_S / 3 + random.uniform(0, LEASE_S / 3))
            runs[0].cancel()
            killed = time.monotonic()
            await taken.wait()
            out.append(time.monotonic() - killed)
            runs[1].cancel()
    finally:
        await store.close()
    return out


async def write_load(
    url: str, n: int, port: int, seconds: float, interval: float, work: Path
) -> dict[str, Any]:
    async def count(what: str) -> float:
        sql = {
            "rows": "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
            "FROM pg_stat_user_tables",
            "commits": "SELECT xact_commit FROM pg_stat_database "
            "WHERE datname = current_database()",
        }[what]
        store = await Store.open(url, agent="bench-reader")
        try:
            async with store.engine.connect() as conn:
                from sqlalchemy import text

                await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                return float((await conn.execute(text(sql))).scalar_one())
        finally:
            await store.close()

    async def during(window: float) -> dict[str, float]:
        await asyncio.sleep(1.0)  # the statistics collector reports with a delay
        rows0, commits0 = await count("rows"), await count("commits")
        await asyncio.sleep(window - 1.0)
        await asyncio.sleep(1.0)
        rows1, commits1 = await count("rows"), await count("commits")
        return {
            "rows_per_s": (rows1 - rows0) / window,
            "commits_per_s": (commits1 - commits0) / window,
        }

    store = f'store: {{url: "{url}"}}\ncluster: {{enabled: true}}'
    return await run_loop(n, port, seconds, interval, work, store=store, during=during)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0, help="each trunk's (s)")
    parser.add_argument("--failovers", type=int, default=3)
    parser.add_argument("--outages", type=int, default=20)
    args = parser.parse_args()
    configure_logging(json=True, level="error")
    with running_postgres() as pg, tempfile.TemporaryDirectory(prefix="tw-bench-") as tmp:
        work = Path(tmp)
        lat = asyncio.run(quorum_latency(pg.new_database(), args.outages))
        print(
            f"quorum reached → outage and ticket request committed ({len(lat)} outages, "
            f"loop every {EVALUATE_S}s): median={statistics.median(lat) * 1e3:.0f}ms "
            f"max={max(lat) * 1e3:.0f}ms"
        )
        fo = asyncio.run(failover(pg.new_database(), args.failovers))
        print(
            f"leader failover (lease {LEASE_S:g}s, renewed every {LEASE_S / 3:.1f}s): "
            + " ".join(f"{x:.1f}s" for x in fo)
        )
        port = free_port()
        kam = start_kamailio(work, port, children=1)
        try:
            for label in ("sqlite", "postgresql"):
                gc.collect()
                if label == "postgresql":
                    r = asyncio.run(
                        write_load(
                            pg.new_database(), args.trunks, port, args.seconds, args.interval, work
                        )
                    )
                    load = r["during"]
                    extra = (
                        f"rows/s={load['rows_per_s']:.1f} commits/s={load['commits_per_s']:.1f} "
                    )
                else:
                    r = asyncio.run(run_loop(args.trunks, port, args.seconds, args.interval, work))
                    extra = ""
                print(
                    f"{label}: trunks={args.trunks} interval={args.interval:g}s {extra}"
                    f"lag p50={r['lag_p50_ms']:.2f}ms p99={r['lag_p99_ms']:.2f}ms "
                    f"cpu={r['cpu_pct']:.1f}% skipped={r['skipped']} outcomes={r['outcomes']}"
                )
        finally:
            stop(kam)


if __name__ == "__main__":
    main()
