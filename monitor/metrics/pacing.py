"""How long a scrape holds the event loop before handing it back to the probes.

A probe due while a scrape holds the loop waits for the step to end, and with the loop a
fraction `load` busy with probes an iteration lasts about step / (1 - load): 10 ms steps
at 75 % load put the probes ~40 ms late during a scrape of 100,000 trunks (p99 ≤ 50–100
ms), 1 ms steps ~4 ms. So a scrape takes STEP_S steps, the probes' lateness goal (p99 ≤
5 ms) first. A scrape still running after SLOW_AFTER_S has a saturated loop to share:
its steps then last as long as the loop took to come back, up to MAX_STEP_S, so that it
gets about half of the loop and ends within Prometheus' default 10 s scrape timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

# Loop time a scrape takes per step.
STEP_S = 0.001
# A scrape older than this (s) takes longer steps: the loop is saturated.
SLOW_AFTER_S = 4.0
# The longest step, however long the loop took to come back.
MAX_STEP_S = 0.010


class Pacer:
    """Says when a step is over (`due`) and hands the loop back (`hand_back`)."""

    __slots__ = ("_began", "_budget", "_slow_at")

    def __init__(self) -> None:
        self._budget = STEP_S
        self._began = time.perf_counter()
        self._slow_at = self._began + SLOW_AFTER_S

    @property
    def budget(self) -> float:
        """This step's length (s)."""
        return self._budget

    def due(self) -> bool:
        return time.perf_counter() - self._began >= self._budget

    async def hand_back(self) -> None:
        left = time.perf_counter()
        await asyncio.sleep(0)
        back = time.perf_counter()
        if back >= self._slow_at:
            self._budget = min(MAX_STEP_S, max(STEP_S, back - left))
        self._began = back


async def paced(slices: Iterable[object]) -> None:
    """Run `slices` (each item: a slice of work done), handing the loop back whenever a
    step is over."""
    pacer = Pacer()
    for _ in slices:
        if pacer.due():
            await pacer.hand_back()
