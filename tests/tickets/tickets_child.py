"""A monitor process for the SIGKILL test: journals one outage with its ticket request and
delivers it, then idles until killed.

Usage: python tickets_child.py DB_URL SETTINGS_JSON OUTAGE_JSON|-
(with "-" it only resumes delivering what the outbox holds). Secrets come from the env.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from monitor.events import Outage, OutageOpened
from monitor.log import configure_logging
from monitor.store import Store
from monitor.tickets.config import TicketsSettings
from monitor.tickets.service import TicketService


async def main(db_url: str, settings_json: str, outage_json: str) -> None:
    configure_logging(json=True, stream=sys.stderr)  # stdout carries only "ready"
    settings = TicketsSettings.model_validate(
        json.loads(settings_json), context={"env": dict(os.environ)}
    )
    store = await Store.open(db_url, agent="child")
    service = TicketService(settings, [("mx-1", "carrier-a")])
    await service.start(store)
    if outage_json != "-":
        await service.append(store, [OutageOpened(Outage.from_dict(json.loads(outage_json)))])
    print("ready", flush=True)
    await asyncio.Event().wait()  # until SIGKILL (or the test's terminate)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
