"""schemathesis against the served OpenAPI document: no input makes the API answer 5xx.

The API runs on its own event loop in a thread because schemathesis calls it synchronously.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from sla_world import NOW, TRUNK, worked_example

from monitor.api import ApiDeps, make_api_app
from probes.clock import FakeClock
from probes.instants import ns_from_utc

TOKEN = "fuzz-token"
MAX_EXAMPLES = 12  # per operation: ~20 operations on 2 shared cores stay within a minute


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        store, ctx = await worked_example(tmp_path)
        root = web.Application()
        deps = ApiDeps(
            ctx,
            TOKEN,
            live_state=lambda: {TRUNK: "down"},
            clock=FakeClock(wall=ns_from_utc(NOW)),
            open_reads=True,
        )
        root.add_subapp("/api/v1", make_api_app(deps))
        runner = web.AppRunner(root)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state.update(store=store, runner=runner, port=runner.addresses[0][1])

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield f"http://127.0.0.1:{state['port']}/api/v1"
    finally:

        async def stop() -> None:
            await state["runner"].cleanup()  # type: ignore[attr-defined]
            await state["store"].close()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def test_no_input_gives_a_server_error(api_url: str) -> None:
    document = requests.get(f"{api_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/evidence":
            continue  # signs and renders a month per call: exercised in test_sla_api.py
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=api_url, headers={"Authorization": f"Bearer {TOKEN}"})
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} → {response.status_code}: "
                    f"{response.text[:200]}"
                )

        check()
    assert operations >= 15
    assert len(statuses) >= operations * 2  # it really called the API
    assert {s // 100 for s in statuses} >= {2, 4}  # valid and invalid inputs both reached it
    assert failures == []
