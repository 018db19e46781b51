"""The one small interface every probe type implements."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from probes.result import ProbeResult

ResultCallback = Callable[[ProbeResult], None]


class Probe(Protocol):
    """A probe of one target. `start` never raises for network failures and calls back once."""

    kind: str
    trunk: str

    def start(self, on_done: ResultCallback) -> None:
        """Begin one probe now; `on_done` gets its result (from the event loop's thread)."""
        ...

    async def close(self) -> None: ...


async def run_once(probe: Probe) -> ProbeResult:
    """Run one probe and await its result: the coroutine form of `start` (one-shot CLI, tests)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[ProbeResult] = loop.create_future()

    def on_done(result: ProbeResult) -> None:
        if not done.done():
            done.set_result(result)

    probe.start(on_done)
    return await done
