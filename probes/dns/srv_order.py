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
    # RRset order means nothing (servers shuffle it): a canonical order makes one sequence of
    # draws give one result. RFC 2782 puts zero weights first so they keep a small chance.
    group = sorted(group, key=lambda r: (r.target, r.port, r.weight))
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
