"""Sans-I/O SIP registration (RFC 3261 §10): REGISTER, digest retry, 423, refresh, un-REGISTER.

Bytes and a monotonic `now_ns` in; bytes to send and finished attempts out. Nothing here does
I/O or reads a clock: the caller sends, arms one timer at `next_deadline_ns()` and feeds answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from probes.sip.digest import DigestChallenge, authorization_header, select_challenge
from probes.sip.errors import DigestError, SipParseError
from probes.sip.headers import Headers, parse_name_addr
from probes.sip.ids import new_branch, new_call_id, new_tag
from probes.sip.message import SipRequest, SipResponse, parse_message, serialize, transaction_key
from probes.sip.transaction import NonInviteClientTransaction
from probes.sip.uri import SipUri
from probes.untrusted import truncate_untrusted

NS_PER_S = 1_000_000_000
# A Min-Expires above this (a week) is not a retry we follow: it is a misconfigured registrar.
MAX_MIN_EXPIRES_S = 7 * 86_400
# Reason phrases kept in results are untrusted peer text, cut here.
MAX_REASON_CHARS = 80


class RegisterOutcome(StrEnum):
    """How one registration attempt (REGISTER plus its auth / 423 retries) ended."""

    OK = "ok"
    AUTH_LOOP = "auth_loop"  # challenged again after answering a challenge: wrong credentials
    FORBIDDEN = "forbidden"  # 403
    INTERVAL_TOO_BRIEF = "interval_too_brief"  # 423 we could not satisfy (again, or no Min-Expires)
    TIMEOUT = "timeout"  # no final answer within the attempt's time budget
    SIP_ERROR = "sip_error"  # any other final answer (3xx, 404, 5xx, an unusable challenge)
    NETWORK = "network"  # the caller could not send (socket error)


class Phase(StrEnum):
    IDLE = "idle"  # nothing in flight; a refresh or retry may be scheduled
    REGISTERING = "registering"
    UNREGISTERING = "unregistering"
    STOPPED = "stopped"  # un-registered (or given up); no more deadlines


@dataclass(slots=True, frozen=True)
class RegisterParams:
    """What a registration needs; `password` is only ever hashed and never shown in a repr."""

    registrar_uri: str  # Request-URI: the registrar's domain, no user part (§10.2)
    aor: str  # address-of-record, sent in To and From
    contact: str  # our Contact URI, bound to the AoR
    via_hostport: str  # local host:port for Via
    username: str
    password: str = field(repr=False)
    expires: int = 300  # requested binding lifetime, seconds
    timeout_ns: int = 4 * NS_PER_S  # one attempt, auth and 423 retries included
    retry_ns: int = 30 * NS_PER_S  # a failed attempt is tried again this much later
    refresh_ratio: float = 0.5  # refresh after this fraction of the granted expiry
    user_agent: str = "trunkwatch"
    transport: str = "udp"


@dataclass(slots=True, frozen=True)
class Binding:
    """One Contact the registrar listed in its 200 OK, with its remaining lifetime."""

    uri: str
    expires: int | None


@dataclass(slots=True, frozen=True)
class Attempt:
    """A finished REGISTER (expires > 0) or un-REGISTER (expires 0) attempt."""

    unregister: bool
    outcome: RegisterOutcome
    started_ns: int
    finished_ns: int
    requests: int  # REGISTERs sent in this attempt (auth and 423 retries included)
    expires: int  # granted (ok) or last requested lifetime, seconds
    status: int | None = None
    reason: str | None = None  # truncated untrusted text
    rtt_ns: int | None = None  # last request sent → its final answer
    bindings: tuple[Binding, ...] = ()
    detail: str | None = None


@dataclass(slots=True, frozen=True)
class Send:
    data: bytes


@dataclass(slots=True, frozen=True)
class Finished:
    attempt: Attempt


Action = Send | Finished


def _hostport_matches(a: SipUri, b: SipUri) -> bool:
    # §10.3 / §19.1.4 compare whole URIs; registrars rewrite parameter order and case, and only
    # user, host and port identify our binding among the AoR's contacts.
    return a.user == b.user and a.host.lower() == b.host.lower() and a.port == b.port


def parse_bindings(resp: SipResponse) -> tuple[Binding, ...]:
    """The Contact bindings a registrar's 2xx lists (§10.2.4); unparsable entries are skipped."""
    out: list[Binding] = []
    for value in resp.headers.get_all("Contact"):
        try:
            addr = parse_name_addr(value)
        except SipParseError:
            continue
        raw = addr.params.get("expires")
        out.append(Binding(addr.uri, int(raw) if raw is not None and raw.isdigit() else None))
    return tuple(out)


def granted_expires(resp: SipResponse, contact: str, requested: int) -> int:
    """Our binding's lifetime from a 2xx: its Contact's expires, else Expires, else requested."""
    ours = SipUri.parse(contact)
    for binding in parse_bindings(resp):
        try:
            uri = SipUri.parse(binding.uri)
        except SipParseError:
            continue
        if _hostport_matches(uri, ours) and binding.expires is not None:
            return binding.expires
    header = resp.headers.get("Expires")
    if header is not None and header.isdigit():
        return int(header)
    return requested


class RegisterStateMachine:
    """One AoR's registration at one registrar: attempts, the refresh schedule, counts."""

    def __init__(self, params: RegisterParams) -> None:
        if params.expires <= 0:
            raise ValueError("expires must be positive (0 is the un-REGISTER)")
        if not 0 < params.refresh_ratio < 1:
            raise ValueError("refresh_ratio must be between 0 and 1")
        self.params = params
        request_uri = SipUri.parse(params.registrar_uri)
        if request_uri.user is not None:
            raise ValueError("the registrar URI names a domain, not a user (RFC 3261 §10.2)")
        self._request_uri = params.registrar_uri
        SipUri.parse(params.aor)
        SipUri.parse(params.contact)
        host = params.via_hostport.rpartition(":")[0] or params.via_hostport
        # §10.2: one Call-ID for every REGISTER of this UA to this registrar, CSeq counting up.
        self.call_id = new_call_id(host)
        self._from_tag = new_tag()
        self._cseq = 0
        self.expires = params.expires  # may be raised by a 423's Min-Expires (§10.2.8)
        self.phase = Phase.IDLE
        self.expires_at_ns: int | None = None  # end of our last granted binding
        self.granted: int | None = None
        self.bindings: tuple[Binding, ...] = ()
        self.last: Attempt | None = None  # last REGISTER attempt (refreshes included)
        self.last_unregister: Attempt | None = None
        self.counts: dict[RegisterOutcome, int] = dict.fromkeys(RegisterOutcome, 0)
        self.strays = 0  # datagrams that were not an answer to our current request
        self._scheduled_ns: int | None = None  # next refresh or retry
        # The current attempt.
        self._txn: NonInviteClientTransaction | None = None
        self._branch = ""
        self._attempt_started = 0
        self._attempt_deadline = 0
        self._attempt_expires = 0
        self._requests = 0
        self._sent_ns = 0
        self._answered_challenge = False  # this attempt already answered a fresh challenge
        self._stale_retried = False
        self._raised_expires = False
        # The last challenge, answered again (nc + 1) on later attempts to save a round trip.
        self._challenge: tuple[str, DigestChallenge] | None = None
        self._nc = 0

    def __repr__(self) -> str:
        return (
            f"RegisterStateMachine(aor={self.params.aor!r}, phase={self.phase.value}, "
            f"expires_at_ns={self.expires_at_ns})"
        )

    # ---- inputs ---------------------------------------------------------------------------

    def registered(self, now_ns: int) -> bool:
        """True while the last granted binding has not run out."""
        return self.expires_at_ns is not None and now_ns < self.expires_at_ns

    def next_deadline_ns(self) -> int | None:
        """When `on_timer` should next be called; None when nothing is pending."""
        txn = self._txn.next_deadline_ns() if self._txn is not None else None
        times = [t for t in (txn, self._scheduled_ns) if t is not None]
        return min(times) if times else None

    def register(self, now_ns: int) -> list[Action]:
        """Start a REGISTER attempt now (a refresh when registered); no-op if one is running."""
        if self.phase is Phase.REGISTERING or self.phase is Phase.UNREGISTERING:
            return []
        self.phase = Phase.REGISTERING
        return self._begin(now_ns, self.expires)

    def unregister(self, now_ns: int) -> list[Action]:
        """Stop: un-REGISTER (Expires: 0) if a binding may exist, abandoning any attempt."""
        if self.phase is Phase.UNREGISTERING or self.phase is Phase.STOPPED:
            return []
        actions: list[Action] = []
        if self.phase is Phase.REGISTERING:
            # Abandoned, not failed: it is not counted against the registrar.
            abandoned = self._finish(now_ns, RegisterOutcome.TIMEOUT, detail="stopped", count=False)
            actions.append(abandoned)
        self._scheduled_ns = None
        if not self.registered(now_ns):
            self.phase = Phase.STOPPED
            return actions
        self.phase = Phase.UNREGISTERING
        return actions + self._begin(now_ns, 0)

    def on_timer(self, now_ns: int) -> list[Action]:
        txn = self._txn
        if txn is not None:
            action = txn.on_timer(now_ns)
            if action.timed_out:
                return [self._finish(now_ns, RegisterOutcome.TIMEOUT)]
            if action.retransmit is not None:
                return [Send(action.retransmit)]
            return []
        if self._scheduled_ns is not None and now_ns >= self._scheduled_ns:
            self._scheduled_ns = None
            return self.register(now_ns)
        return []

    def on_network_error(self, now_ns: int, detail: str) -> list[Action]:
        """The caller failed to send or the socket reported an error for our request."""
        if self._txn is None:
            return []
        return [self._finish(now_ns, RegisterOutcome.NETWORK, detail=detail)]

    def on_datagram(self, data: bytes, now_ns: int) -> list[Action]:
        """Feed one received datagram (already checked to come from the registrar)."""
        try:
            msg = parse_message(data)
        except SipParseError:
            self.strays += 1
            return []
        key = transaction_key(msg) if isinstance(msg, SipResponse) else None
        txn = self._txn
        if (
            not isinstance(msg, SipResponse)
            or key is None
            or txn is None
            or key != (self._branch, "REGISTER", self.call_id)
        ):
            self.strays += 1  # late retransmissions of answered requests land here too
            return []
        if not txn.on_response(msg.status, now_ns):
            return []
        self._txn = None
        return self._on_final(msg, now_ns)

    # ---- attempts -----------------------------------------------------------------------

    def _begin(self, now_ns: int, expires: int) -> list[Action]:
        self._attempt_started = now_ns
        self._attempt_deadline = now_ns + self.params.timeout_ns
        self._attempt_expires = expires
        self._requests = 0
        self._answered_challenge = False
        self._stale_retried = False
        self._raised_expires = False
        return self._send(now_ns)

    def _auth_line(self) -> tuple[str, str] | None:
        if self._challenge is None:
            return None
        name, challenge = self._challenge
        self._nc += 1
        try:
            value = authorization_header(
                challenge,
                method="REGISTER",
                uri=self._request_uri,
                username=self.params.username,
                password=self.params.password,
                nc=self._nc,
            )
        except DigestError:
            self._challenge = None
            return None
        return name, value

    def _send(self, now_ns: int) -> list[Action]:
        budget = self._attempt_deadline - now_ns
        if budget <= 0:
            return [self._finish(now_ns, RegisterOutcome.TIMEOUT, detail="no time left to send")]
        self._cseq += 1
        self._requests += 1
        self._branch = new_branch()
        p = self.params
        headers = Headers(
            [
                (
                    "Via",
                    f"SIP/2.0/{p.transport.upper()} {p.via_hostport};branch={self._branch};rport",
                ),
                ("Max-Forwards", "70"),
                ("From", f"<{p.aor}>;tag={self._from_tag}"),
                ("To", f"<{p.aor}>"),
                ("Call-ID", self.call_id),
                ("CSeq", f"{self._cseq} REGISTER"),
                ("Contact", f"<{p.contact}>"),
                ("Expires", str(self._attempt_expires)),
                ("User-Agent", p.user_agent),
            ]
        )
        auth = self._auth_line()
        if auth is not None:
            headers.add(*auth)
        data = serialize(SipRequest("REGISTER", self._request_uri, headers))
        self._txn = NonInviteClientTransaction(
            data, reliable=p.transport != "udp", now_ns=now_ns, timeout_ns=budget
        )
        self._sent_ns = now_ns
        return [Send(data)]

    def _on_final(self, resp: SipResponse, now_ns: int) -> list[Action]:
        status = resp.status
        if 200 <= status < 300:
            return [self._finish(now_ns, RegisterOutcome.OK, resp)]
        if status in (401, 407):
            return self._on_challenge(resp, now_ns)
        if status == 403:
            return [self._finish(now_ns, RegisterOutcome.FORBIDDEN, resp)]
        if status == 423:
            return self._on_too_brief(resp, now_ns)
        return [self._finish(now_ns, RegisterOutcome.SIP_ERROR, resp)]

    def _on_challenge(self, resp: SipResponse, now_ns: int) -> list[Action]:
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        try:
            challenge = select_challenge(resp.headers.get_all(name))
        except DigestError:
            self._challenge = None
            return [self._finish(now_ns, RegisterOutcome.SIP_ERROR, resp, "unusable challenge")]
        if self._answered_challenge:
            # RFC 7616 §3.3: stale=true means the nonce expired, not the credentials: one retry.
            if not challenge.stale or self._stale_retried:
                self._challenge = None
                return [self._finish(now_ns, RegisterOutcome.AUTH_LOOP, resp)]
            self._stale_retried = True
        self._answered_challenge = True
        auth_name = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        self._challenge = (auth_name, challenge)
        self._nc = 0
        return self._send(now_ns)

    def _on_too_brief(self, resp: SipResponse, now_ns: int) -> list[Action]:
        raw = resp.headers.get("Min-Expires")
        minimum = int(raw) if raw is not None and raw.isdigit() and len(raw) < 10 else None
        if (
            self._raised_expires
            or minimum is None
            or minimum <= self._attempt_expires
            or minimum > MAX_MIN_EXPIRES_S
            or self._attempt_expires == 0
        ):
            return [self._finish(now_ns, RegisterOutcome.INTERVAL_TOO_BRIEF, resp)]
        # §10.2.8: retry with at least Min-Expires, and keep it for later refreshes.
        self._raised_expires = True
        self._attempt_expires = self.expires = minimum
        return self._send(now_ns)

    def _finish(
        self,
        now_ns: int,
        outcome: RegisterOutcome,
        resp: SipResponse | None = None,
        detail: str | None = None,
        *,
        count: bool = True,
    ) -> Finished:
        self._txn = None
        unregister = self.phase is Phase.UNREGISTERING
        expires = self._attempt_expires
        bindings: tuple[Binding, ...] = ()
        if resp is not None and outcome is RegisterOutcome.OK:
            bindings = parse_bindings(resp)
            if not unregister:
                expires = granted_expires(resp, self.params.contact, self._attempt_expires)
        attempt = Attempt(
            unregister=unregister,
            outcome=outcome,
            started_ns=self._attempt_started,
            finished_ns=now_ns,
            requests=self._requests,
            expires=expires,
            status=resp.status if resp is not None else None,
            reason=truncate_untrusted(resp.reason, MAX_REASON_CHARS) if resp is not None else None,
            rtt_ns=now_ns - self._sent_ns if resp is not None else None,
            bindings=bindings,
            detail=detail,
        )
        if unregister:
            self.last_unregister = attempt
            self.phase = Phase.STOPPED
            self._scheduled_ns = None
            if outcome is RegisterOutcome.OK:
                self.expires_at_ns = None
                self.granted = None
                self.bindings = bindings
            return Finished(attempt)
        if count:
            self.last = attempt
            self.counts[outcome] += 1
        self.phase = Phase.IDLE
        if outcome is RegisterOutcome.OK:
            self.granted = expires
            self.bindings = bindings
            self.expires_at_ns = now_ns + expires * NS_PER_S
            # Refresh well before the binding runs out (§10.2.1 leaves the margin to us).
            self._scheduled_ns = now_ns + max(
                1, int(expires * self.params.refresh_ratio * NS_PER_S)
            )
            if expires == 0:
                self.expires_at_ns = None
                self._scheduled_ns = now_ns + self.params.retry_ns
        else:
            self._scheduled_ns = now_ns + self.params.retry_ns
        return Finished(attempt)
