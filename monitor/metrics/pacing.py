"""How long a scrape holds the event loop before handing it back to the probes.

A step lasts LOOP_STEP_S while the loop is idle between steps; when the loop took longer
to come back (it is saturated with probes: each hand-back costs a whole loop iteration),
the next step may last as long as that wait, up to MAX_STEP_S. The scrape then gets about
half of a saturated loop rather than a sliver: at 100,000 trunks, with 10,000 probes/s
saturating the loop, 2 ms steps left the scrape ~350 hand-backs of ~5 ms each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

# Loop time a scrape takes per step when the loop is idle (the probe loop's lateness goal
# is p99 ≤ 5 ms).
LOOP_STEP_S = 0.002
# The longest step, however long the loop took to come back.
MAX_STEP_S = 0.010


class Pacer:
    """Says when a step is over (`due`) and hands the loop back (`hand_back`)."""

    __slots__ = ("_began", "_budget")

    def __init__(self) -> None:
        self._budget = LOOP_STEP_S
        self._began = time.perf_counter()

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
        self._budget = min(MAX_STEP_S, max(LOOP_STEP_S, back - left))
        self._began = back


async def paced(slices: Iterable[object]) -> None:
    """Run `slices` (each item: a slice of work done), handing the loop back whenever a
    step is over."""
    pacer = Pacer()
    for _ in slices:
        if pacer.due():
            await pacer.hand_back()
