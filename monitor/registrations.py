"""Registrations some carriers require: each trunk with `registration:` is kept registered with
its `auth:` credentials (probes/register.py refreshes before expiry and retries after a
failure), un-registered at stop, and its state and outcomes are on /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from monitor import __version__
from monitor.log import get_logger
from monitor.metrics.exposition import (
    ExpositionFormat,
    Kind,
    count_text,
    family,
    label_text,
    sample_line,
)
from probes.hostport import split_host_port
from probes.register import RegisterSettings, Registration
from probes.register_state import RegisterOutcome
from probes.sip.uri import SipUri

if TYPE_CHECKING:
    from monitor.config import TrunkConfig

log = get_logger("trunkwatch.register")

REGISTERED = family(
    "sip_registered", Kind.GAUGE, "1 while the trunk's registration is in force, else 0."
)
EXPIRY = family(
    "sip_registration_expiry_timestamp_seconds",
    Kind.GAUGE,
    "When the trunk's current registration expires (Unix time).",
)
ATTEMPTS = family(
    "sip_register_attempts",
    Kind.COUNTER,
    "REGISTER attempts by outcome (ok, auth_loop, forbidden, interval_too_brief, timeout...).",
)


def register_settings(trunk: TrunkConfig) -> RegisterSettings:
    """What probes/register.py needs for a trunk with `registration:` and `auth:`."""
    reg, auth = trunk.registration, trunk.auth
    assert reg is not None and auth is not None  # the config's validation guarantees both
    host = SipUri.parse(trunk.uri).host
    registrar = None if reg.registrar is None else split_host_port(reg.registrar, 5060)
    return RegisterSettings(
        trunk=trunk.name,
        aor=reg.aor or f"sip:{auth.username}@{host}",
        username=auth.username,
        password=auth.password.get_secret_value(),
        registrar=registrar,
        expires=reg.expires,
        timeout=trunk.timeout,
        retry_interval=reg.retry,
        user_agent=f"trunkwatch/{__version__}",
    )


class Registrations:
    """Every registration of the config's trunks; `start` opens them, `stop` closes them."""

    def __init__(self, trunks: Sequence[TrunkConfig], *, agent: str) -> None:
        self._agent = f"{label_text(agent=agent)},"  # `agent` sorts first in every label set
        self.registrations = {
            t.name: Registration(register_settings(t)) for t in trunks if t.registration is not None
        }
        self._tasks: list[asyncio.Task[None]] = []
        # The trunks whose answered probes the pipeline must check (monitor/pipeline.py).
        self.required = frozenset(
            t.name for t in trunks if t.registration and t.registration.required
        )

    def lost(self, trunk: str) -> bool:
        """Whether a required registration has been tried and is not in force now."""
        if trunk not in self.required:
            return False
        state = self.registrations[trunk].state
        return state.last_outcome is not None and not state.registered

    async def start(self) -> None:
        for trunk, registration in self.registrations.items():
            await registration.open()
            self._tasks.append(
                asyncio.create_task(self._first(trunk, registration), name=f"register:{trunk}")
            )

    async def _first(self, trunk: str, registration: Registration) -> None:
        # Not awaited by start: a registrar that does not answer must not delay the probes.
        attempt = await registration.register()
        event = "trunk_registered" if attempt.outcome is RegisterOutcome.OK else "register_failed"
        log.info(event, trunk=trunk, outcome=attempt.outcome.value, status=attempt.status)

    async def update(self, trunks: Sequence[TrunkConfig]) -> None:
        """A reload: registrations of removed or changed trunks are closed (un-REGISTER),
        new and changed ones opened; untouched ones keep their binding."""
        wanted = {t.name: register_settings(t) for t in trunks if t.registration is not None}
        for trunk, registration in list(self.registrations.items()):
            if wanted.get(trunk) != registration.settings:
                del self.registrations[trunk]
                with contextlib.suppress(Exception):  # the registrar may be gone
                    await registration.close()
        for trunk, settings in wanted.items():
            if trunk not in self.registrations:
                registration = self.registrations[trunk] = Registration(settings)
                await registration.open()
                self._tasks.append(
                    asyncio.create_task(self._first(trunk, registration), name=f"register:{trunk}")
                )
        self.required = frozenset(
            t.name for t in trunks if t.registration and t.registration.required
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for registration in self.registrations.values():
            with contextlib.suppress(Exception):  # the registrar may be gone: stop anyway
                await registration.close()

    def render(self, fmt: ExpositionFormat) -> str:
        if not self.registrations:
            return ""
        registered: list[str] = []
        expiry: list[str] = []
        attempts: list[str] = []
        for trunk, registration in self.registrations.items():
            state = registration.state
            labels = self._agent + label_text(trunk=trunk)
            registered.append(sample_line(REGISTERED.sample, labels, float(state.registered)))
            if state.registered and state.expires_at_wall_ns is not None:
                expiry.append(sample_line(EXPIRY.sample, labels, state.expires_at_wall_ns / 1e9))
            for outcome in RegisterOutcome:
                n = state.counts.get(outcome, 0)
                with_outcome = self._agent + label_text(outcome=outcome.value, trunk=trunk)
                attempts.append(f"{ATTEMPTS.sample}{{{with_outcome}}} {count_text(n)}\n")
        return "".join(
            (
                REGISTERED.header(fmt), *registered,
                EXPIRY.header(fmt), *expiry,
                ATTEMPTS.header(fmt), *attempts,
            )
        )  # fmt: skip
