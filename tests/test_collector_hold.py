"""The cyclic GC held off for /metrics scrapes (monitor.heap.CollectorHold)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from monitor.heap import CollectorHold


@pytest.fixture(autouse=True)
def gc_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


async def test_holders_nest_and_the_last_release_enables_the_gc() -> None:
    loop = asyncio.get_running_loop()
    hold = CollectorHold()
    gc.enable()
    first = hold.hold(loop, 60)
    second = hold.hold(loop, 60)
    assert not gc.isenabled()
    first()
    assert not gc.isenabled()  # the second scrape still runs
    first()  # a second release of the same holder changes nothing
    assert not gc.isenabled() and hold.held
    second()
    assert gc.isenabled() and not hold.held


async def test_a_holder_past_its_bound_releases_by_itself() -> None:
    loop = asyncio.get_running_loop()
    hold = CollectorHold()
    gc.enable()
    release = hold.hold(loop, 0.02)  # a reader that stopped reading
    assert not gc.isenabled()
    await asyncio.sleep(0.1)
    assert gc.isenabled() and not hold.held
    release()  # the late release is harmless
    assert gc.isenabled()


async def test_a_gc_disabled_before_stays_disabled() -> None:
    loop = asyncio.get_running_loop()
    hold = CollectorHold()
    gc.disable()  # e.g. start-up's gc_paused
    hold.hold(loop, 60)()
    assert not gc.isenabled()
