"""SIP registration over UDP: the I/O shell around probes/register_state.py.

A `Registration` owns one UDP socket, keeps an AoR registered (refreshing on the state
machine's schedule) and exposes its state and outcome counts; `RegisterProbe` is the same
thing behind the small `Probe` interface, one REGISTER per `start`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

from probes.clock import SYSTEM_CLOCK, Clock
from probes.probe import ResultCallback
from probes.register_state import (
    NS_PER_S,
    Action,
    Attempt,
    Binding,
    Finished,
    Phase,
    RegisterOutcome,
    RegisterParams,
    RegisterStateMachine,
    Send,
)
from probes.result import Outcome, ProbeResult
from probes.sip.uri import SipUri, default_port
from probes.untrusted import truncate_untrusted

Address = tuple[str, int]
MAX_DETAIL_CHARS = 80

# What a registration attempt's outcome means for the generic probe result.
PROBE_OUTCOMES: Mapping[RegisterOutcome, Outcome] = MappingProxyType(
    {
        RegisterOutcome.OK: Outcome.OK,
        RegisterOutcome.AUTH_LOOP: Outcome.AUTH,
        RegisterOutcome.FORBIDDEN: Outcome.AUTH,
        RegisterOutcome.INTERVAL_TOO_BRIEF: Outcome.SIP_ERROR,
        RegisterOutcome.TIMEOUT: Outcome.TIMEOUT,
        RegisterOutcome.SIP_ERROR: Outcome.SIP_ERROR,
        RegisterOutcome.NETWORK: Outcome.NETWORK,
    }
)


@dataclass(slots=True, frozen=True)
class RegisterSettings:
    """One registration: the AoR, credentials and where the registrar listens."""

    trunk: str
    aor: str  # sip:user@domain[:port]; the Request-URI is sip:domain[:port]
    username: str
    password: str = field(repr=False)
    registrar: Address | None = None  # where to send; default: the AoR's host and port
    expires: int = 300
    timeout: float = 4.0  # one attempt, auth and 423 retries included
    retry_interval: float = 30.0  # a failed attempt is tried again this much later
    user_agent: str = "trunkwatch"


@dataclass(slots=True, frozen=True)
class RegistrationState:
    """A snapshot of a registration; `expires_at_wall_ns` is a UTC instant (time.time_ns)."""

    registered: bool
    phase: Phase
    expires_at_wall_ns: int | None
    granted_expires: int | None
    requested_expires: int
    last_outcome: RegisterOutcome | None
    counts: Mapping[RegisterOutcome, int]
    bindings: tuple[Binding, ...]
    strays: int  # datagrams that answered nothing we were waiting for


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: Registration) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's and asyncio's UDP transports do not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.owner._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.owner._on_socket_error(exc)


def _local_address_towards(family: int, addr: Address) -> str:
    """The local IP the kernel would use towards addr, for Via and Contact (no packet sent)."""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect(addr)
        return str(sock.getsockname()[0])


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Registration:
    """Keeps one AoR registered: REGISTER now, refresh before expiry, un-REGISTER on close."""

    def __init__(
        self,
        settings: RegisterSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        aor = SipUri.parse(settings.aor)
        if aor.user is None:
            raise ValueError("the address-of-record needs a user part (sip:user@domain)")
        if aor.transport != "udp":
            raise ValueError(f"only UDP registration is supported, not {aor.transport!r}")
        if settings.expires <= 0 or settings.timeout <= 0 or settings.retry_interval <= 0:
            raise ValueError("expires, timeout and retry_interval must be positive")
        self.settings = settings
        self._aor = aor
        self._clock = clock
        self._on_attempt = on_attempt
        self.machine: RegisterStateMachine | None = None
        self.addr: Address | None = None
        self._proto: _Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[Attempt]] = []
        self._unregister_waiters: list[asyncio.Future[Attempt]] = []

    def __repr__(self) -> str:
        return f"Registration(aor={self.settings.aor!r}, username={self.settings.username!r})"

    @property
    def state(self) -> RegistrationState:
        m = self.machine
        if m is None:
            return RegistrationState(
                registered=False,
                phase=Phase.IDLE,
                expires_at_wall_ns=None,
                granted_expires=None,
                requested_expires=self.settings.expires,
                last_outcome=None,
                counts=MappingProxyType(dict.fromkeys(RegisterOutcome, 0)),
                bindings=(),
                strays=0,
            )
        mono = self._clock.monotonic_ns()
        expires_at = None
        if m.expires_at_ns is not None:
            expires_at = self._clock.wall_ns() + (m.expires_at_ns - mono)
        return RegistrationState(
            registered=m.registered(mono),
            phase=m.phase,
            expires_at_wall_ns=expires_at,
            granted_expires=m.granted,
            requested_expires=m.expires,
            last_outcome=m.last.outcome if m.last is not None else None,
            counts=MappingProxyType(dict(m.counts)),
            bindings=m.bindings,
            strays=m.strays,
        )

    async def open(self) -> None:
        """Resolve the registrar and bind the socket; OSError (socket.gaierror for DNS) raises."""
        if self.machine is not None:
            return
        loop = asyncio.get_running_loop()
        host, port = self.settings.registrar or (
            self._aor.host,
            self._aor.port or default_port("udp"),
        )
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        addr: Address = (str(sockaddr[0]), int(sockaddr[1]))
        local_ip = _local_address_towards(family, addr)
        # Unconnected: a registrar that is down reads as a timeout, as it does for a far one.
        _, proto = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(local_ip, 0), family=family
        )
        assert proto.transport is not None
        local_port = int(proto.transport.get_extra_info("sockname")[1])
        hostport = _hostport(local_ip, local_port)
        domain = SipUri(
            scheme="sip", user=None, password=None, host=self._aor.host, port=self._aor.port
        )
        contact = SipUri(
            scheme="sip",
            user=self._aor.user,
            password=None,
            host=local_ip,
            port=local_port,
            params=(("transport", "udp"),),
        )
        s = self.settings
        self.machine = RegisterStateMachine(
            RegisterParams(
                registrar_uri=str(domain),
                aor=str(SipUri("sip", self._aor.user, None, self._aor.host, self._aor.port)),
                contact=str(contact),
                via_hostport=hostport,
                username=s.username,
                password=s.password,
                expires=s.expires,
                timeout_ns=int(s.timeout * NS_PER_S),
                retry_ns=int(s.retry_interval * NS_PER_S),
                user_agent=s.user_agent,
            )
        )
        self.addr = addr
        self._proto = proto

    async def register(self) -> Attempt:
        """REGISTER now (a refresh when registered) and return how the attempt ended; if one
        is already running, its result. Refreshes then continue on their own schedule."""
        await self.open()
        m = self.machine
        assert m is not None
        if m.phase is Phase.STOPPED or m.phase is Phase.UNREGISTERING:
            raise RuntimeError("registration closed")
        done: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        self._apply(m.register(self._clock.monotonic_ns()))
        return await done

    async def close(self) -> Attempt | None:
        """Stop refreshing, un-REGISTER (Expires: 0) if registered, close the socket.

        Returns the un-REGISTER attempt, or None when there was no binding to remove.
        """
        m = self.machine
        result: Attempt | None = None
        if m is not None and m.phase is not Phase.STOPPED:
            done: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
            self._unregister_waiters.append(done)
            self._apply(m.unregister(self._clock.monotonic_ns()))
            if m.phase is Phase.UNREGISTERING:
                result = await done
            else:
                done.cancel()
                self._unregister_waiters.remove(done)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        return result

    # ---- driving the state machine ------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        m = self.machine
        assert m is not None
        pending = list(actions)
        while pending:
            action = pending.pop(0)
            if isinstance(action, Send):
                try:
                    assert self._proto is not None and self._proto.transport is not None
                    assert self.addr is not None
                    self._proto.transport.sendto(action.data, self.addr)
                except OSError as exc:
                    detail = truncate_untrusted(exc.strerror or str(exc), MAX_DETAIL_CHARS)
                    pending.extend(m.on_network_error(self._clock.monotonic_ns(), detail))
            elif isinstance(action, Finished):
                self._finished(action.attempt)
        self._arm()

    def _finished(self, attempt: Attempt) -> None:
        waiters = self._unregister_waiters if attempt.unregister else self._waiters
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(attempt)
        waiters.clear()
        if self._on_attempt is not None:
            self._on_attempt(attempt)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        m = self.machine
        deadline = m.next_deadline_ns() if m is not None else None
        if deadline is None:
            return
        delay = max(0.0, (deadline - self._clock.monotonic_ns()) / NS_PER_S)
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.machine is not None:
            self._apply(self.machine.on_timer(self._clock.monotonic_ns()))

    def _on_datagram(self, data: bytes, peer: Address) -> None:
        m = self.machine
        if m is None:
            return
        if peer != self.addr:
            m.strays += 1  # only the registrar's own address answers our REGISTERs
            return
        self._apply(m.on_datagram(data, self._clock.monotonic_ns()))

    def _on_socket_error(self, exc: Exception) -> None:
        if self.machine is not None:
            detail = truncate_untrusted(str(exc), MAX_DETAIL_CHARS)
            self._apply(self.machine.on_network_error(self._clock.monotonic_ns(), detail))


def attempt_result(trunk: str, attempt: Attempt, sent_wall_ns: int) -> ProbeResult:
    """A REGISTER attempt as the generic probe result; `detail` names the register outcome."""
    if attempt.outcome is RegisterOutcome.OK:
        detail = f"registered for {attempt.expires} s"
    else:
        detail = attempt.outcome.value + (f": {attempt.detail}" if attempt.detail else "")
    return ProbeResult(
        trunk=trunk,
        probe=RegisterProbe.kind,
        outcome=PROBE_OUTCOMES[attempt.outcome],
        sent_wall_ns=sent_wall_ns,
        rtt_ns=attempt.rtt_ns,
        duration_ns=attempt.finished_ns - attempt.started_ns,
        status_code=attempt.status,
        reason=attempt.reason,
        detail=detail,
    )


class RegisterProbe:
    """The `Probe` face of a Registration: each `start` REGISTERs now and reports how it went;
    between starts the registration refreshes itself; `close` un-REGISTERs."""

    kind = "register"

    def __init__(self, settings: RegisterSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.trunk = settings.trunk
        self.registration = Registration(settings, clock=clock)
        self._clock = clock
        self._task: asyncio.Task[ProbeResult] | None = None

    def start(self, on_done: ResultCallback) -> None:
        if self._task is not None and not self._task.done():
            on_done(self._failed(Outcome.PROBE_CRASHED, "previous probe still running", 0))
            return
        task = asyncio.get_running_loop().create_task(self._run())
        self._task = task

        def done(t: asyncio.Task[ProbeResult]) -> None:
            if t.cancelled():
                on_done(self._failed(Outcome.PROBE_CRASHED, "cancelled", 0))
            elif (exc := t.exception()) is not None:
                # The type only: a message could quote peer bytes or a credential.
                on_done(self._failed(Outcome.PROBE_CRASHED, f"bug: {type(exc).__name__}", 0))
            else:
                on_done(t.result())

        task.add_done_callback(done)

    async def _run(self) -> ProbeResult:
        sent_wall = self._clock.wall_ns()
        started = self._clock.monotonic_ns()
        try:
            attempt = await self.registration.register()
        except socket.gaierror as exc:
            return self._failed(
                Outcome.DNS, truncate_untrusted(str(exc), MAX_DETAIL_CHARS), started
            )
        except OSError as exc:
            detail = truncate_untrusted(exc.strerror or str(exc), MAX_DETAIL_CHARS)
            return self._failed(Outcome.NETWORK, detail, started)
        return attempt_result(self.trunk, attempt, sent_wall)

    def _failed(self, outcome: Outcome, detail: str, started_ns: int) -> ProbeResult:
        now = self._clock.monotonic_ns()
        return ProbeResult(
            trunk=self.trunk,
            probe=self.kind,
            outcome=outcome,
            sent_wall_ns=self._clock.wall_ns(),
            duration_ns=now - started_ns if started_ns else None,
            detail=detail,
        )

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.registration.close()


@dataclass(slots=True, frozen=True)
class OneShot:
    """What `trunkwatch probe register` reports: the REGISTER and the un-REGISTER after it."""

    result: ProbeResult
    attempt: Attempt | None
    unregister: Attempt | None


async def register_once(settings: RegisterSettings, clock: Clock = SYSTEM_CLOCK) -> OneShot:
    """Register once, then un-register: the one-shot CLI's run."""
    probe = RegisterProbe(settings, clock=clock)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[ProbeResult] = loop.create_future()
    probe.start(done.set_result)
    try:
        result = await done
        attempt = probe.registration.machine.last if probe.registration.machine else None
    finally:
        unregister = await probe.registration.close()
    return OneShot(result, attempt, unregister)
