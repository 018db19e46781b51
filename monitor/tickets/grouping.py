"""Grouped tickets: one per carrier when all of its trunks are down at once (no I/O).

How it works with the outbox: with grouping on for a carrier, each outage's open request
waits up to ``grouping.window`` before it is sent. When an outage makes every trunk of the
carrier down, the open requests still waiting (never attempted) merge into one grouped
ticket that is due at once; when the window passes without that, each goes out alone.
Requests already sent keep their own tickets. Members' restorations become notes on the
grouped ticket; the last one resolves it. The window delays single tickets by at most
its length: that time is downtime the customer cannot claim, so keep it short.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

# uuid5 namespace for group keys: a group of the same outages always gets the same key, so
# a replayed merge is recognised instead of creating a second grouped ticket.
GROUP_NAMESPACE = uuid.UUID("6f3e4b7a-2d7e-5c1b-9a8f-0e7d6c5b4a39")
GROUP_KEY_PREFIX = "grp-"


def group_key(outage_ids: Iterable[str]) -> str:
    """The key of the grouped ticket for these outages (order does not matter)."""
    members = sorted(set(outage_ids))
    if len(members) < 2:
        raise ValueError("a group needs at least two outages")
    return GROUP_KEY_PREFIX + str(uuid.uuid5(GROUP_NAMESPACE, ",".join(members)))


def is_group_key(key: str) -> bool:
    return key.startswith(GROUP_KEY_PREFIX)


def all_down(carrier_trunks: frozenset[str], open_outages: Mapping[str, str]) -> bool:
    """Every trunk of the carrier has an open outage (``open_outages``: trunk → outage id)."""
    return bool(carrier_trunks) and carrier_trunks <= open_outages.keys()


def mergeable(waiting: Mapping[str, str], open_outages: Mapping[str, str]) -> list[str]:
    """The waiting open requests (outage id → trunk) that join the group, if it forms.

    Only outages that are still open and still waiting join; fewer than two is no group.
    """
    members = [oid for oid, trunk in waiting.items() if open_outages.get(trunk) == oid]
    return sorted(members) if len(members) >= 2 else []
