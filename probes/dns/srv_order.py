"""RFC 2782 target selection: priority ascending, weighted random order within a priority."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby

from probes.dns.records import SrvRecord

# randint(a, b) -> an integer N with a <= N <= b, like random.randint.
RandInt = Callable[[int, int], int]


def weighted_order(records: Sequence[SrvRecord], randint: RandInt) -> list[SrvRecord]:
    """All usable records (target not "."), in the order RFC 2782 says to try them."""
    usable = sorted((r for r in records if r.target), key=lambda r: r.priority)
    out: list[SrvRecord] = []
    for _, group in groupby(usable, key=lambda r: r.priority):
        out.extend(_order_one_priority(list(group), randint))
    return out


def _order_one_priority(group: list[SrvRecord], randint: RandInt) -> list[SrvRecord]:
    # RFC 2782: zero-weight records go first in the list so they keep a small chance of
    # being picked; the running sum then decides. Stable input order keeps tests repeatable.
    remaining = [r for r in group if r.weight == 0] + [r for r in group if r.weight > 0]
    out: list[SrvRecord] = []
    while remaining:
        total = sum(r.weight for r in remaining)
        pick = randint(0, total)
        running = 0
        for index, record in enumerate(remaining):
            running += record.weight
            if running >= pick:
                out.append(remaining.pop(index))
                break
    return out
