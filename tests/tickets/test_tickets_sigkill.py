"""The monitor killed with SIGKILL between sending a ticket and its acknowledgement: after
a restart there is still exactly one ticket (a real child process, killed by its PID)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from ticket_fakes import SN_PASSWORD, SN_USER, ServiceNowFake
from tickets_support import FAST_OUTBOX, WEBHOOK_SECRET, WebhookReceiver, outage, until

from monitor.store import Store
from monitor.store.schema import TicketState
from monitor.tickets.ledger import list_tickets, outbox_rows

pytestmark = pytest.mark.peers

CHILD = Path(__file__).with_name("tickets_child.py")
REPO = Path(__file__).resolve().parents[2]
CHILD_READY_TIMEOUT_S = 30.0


@contextmanager
def child(
    db_url: str, settings: dict[str, Any], outage_json: str
) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOOK_SECRET": WEBHOOK_SECRET,
        "SN_PW": SN_PASSWORD,
    }
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), db_url, json.dumps(settings), outage_json],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()  # this child only, by its PID
        proc.wait(timeout=10)


async def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), CHILD_READY_TIMEOUT_S)
    assert line.strip() == "ready"


async def crash_then_restart(
    db_url: str, settings: dict[str, Any], sent: asyncio.Event, release: asyncio.Event
) -> None:
    """First child sends and is SIGKILLed before the reply; a second child finishes."""
    o = outage("mx-1")
    with child(db_url, settings, json.dumps(o.to_dict())) as first:
        await wait_ready(first)
        await asyncio.wait_for(sent.wait(), 20)  # the sink has it; its reply is held
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    release.set()
    with child(db_url, settings, "-") as second:
        await wait_ready(second)
        store = await Store.open(db_url, agent="reader")
        try:

            async def opened() -> bool:
                return [t.state for t in await list_tickets(store)] == [TicketState.OPEN]

            await until(opened, timeout_s=20)
            [row] = await outbox_rows(store)
            assert row.attempts == 2  # the killed attempt was counted before it was sent
        finally:
            await store.close()


async def test_webhook_sigkill_between_send_and_ack(db_url: str, receiver: WebhookReceiver) -> None:
    receiver.hold = asyncio.Event()
    settings = {
        "outbox": FAST_OUTBOX,
        "sinks": [
            {"name": "hook", "type": "webhook", "url": receiver.url, "secret_env": "HOOK_SECRET"}
        ],
    }
    await crash_then_restart(db_url, settings, receiver.received, receiver.hold)
    opens = receiver.opens()
    assert len(opens) == 2 and opens[0].msg_id == opens[1].msg_id  # re-sent, same id
    assert len(receiver.tickets) == 1  # and deduplicated by the receiver: one ticket


async def test_servicenow_sigkill_between_send_and_ack(db_url: str) -> None:
    fake = ServiceNowFake()
    fake.hold = asyncio.Event()
    await fake.start()
    try:
        settings = {
            "outbox": FAST_OUTBOX,
            "sinks": [
                {"name": "sn", "type": "servicenow", "url": fake.url, "username": SN_USER,
                 "password_env": "SN_PW"}
            ],
        }  # fmt: skip
        await crash_then_restart(db_url, settings, fake.processed, fake.hold)
        assert len(fake.records) == 1  # found by correlation_id, not created again
        assert [m for m, _, _ in fake.requests] == ["POST", "GET"]
        store = await Store.open(db_url, agent="reader")
        try:
            [ticket] = await list_tickets(store)
            assert ticket.external_id == next(iter(fake.records))
        finally:
            await store.close()
    finally:
        await fake.stop()
