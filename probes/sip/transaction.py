"""Sans-I/O non-INVITE client transaction, RFC 3261 §17.1.2 (Figure 6); time is an argument."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MS = 1_000_000
T1_NS = 500 * MS  # §17.1.1.1: RTT estimate, default 500 ms
T2_NS = 4_000 * MS  # §17.1.2.2: maximum retransmit interval for non-INVITE requests
T4_NS = 5_000 * MS  # §17.1.2.2: how long the network may hold a message


class TransactionState(StrEnum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


@dataclass(slots=True, frozen=True)
class TimerAction:
    """What a timer asks for: bytes to send again, a timeout (Timer F), or nothing."""

    retransmit: bytes | None = None
    timed_out: bool = False


NO_ACTION = TimerAction()


class NonInviteClientTransaction:
    """Timers E, F and K of §17.1.2.2; the caller sends `request` once itself before starting.

    Timer F is min(64*T1, timeout_ns): a probe never waits longer than its own timeout.
    """

    __slots__ = (
        "_e_interval",
        "_request",
        "_t2_ns",
        "_t4_ns",
        "_timer_e",
        "_timer_f",
        "_timer_k",
        "reliable",
        "state",
    )

    def __init__(
        self,
        request: bytes,
        *,
        reliable: bool,
        now_ns: int,
        timeout_ns: int,
        t1_ns: int = T1_NS,
        t2_ns: int = T2_NS,
        t4_ns: int = T4_NS,
    ) -> None:
        if t1_ns <= 0 or t2_ns < t1_ns or t4_ns < 0 or timeout_ns <= 0:
            raise ValueError("need 0 < T1 <= T2, T4 >= 0 and a positive timeout")
        self._request = request
        self.reliable = reliable
        self.state = TransactionState.TRYING
        self._t2_ns = t2_ns
        self._t4_ns = t4_ns
        # §17.1.2.2: Timer E (retransmit) starts at T1 over unreliable transports only.
        self._e_interval = t1_ns
        self._timer_e: int | None = None if reliable else now_ns + t1_ns
        self._timer_f: int | None = now_ns + min(64 * t1_ns, timeout_ns)
        self._timer_k: int | None = None

    def next_deadline_ns(self) -> int | None:
        """When on_timer should next be called; None once terminated."""
        # Compared one by one, not min() of a list: called twice per probe on the hot path.
        best, e, k = self._timer_f, self._timer_e, self._timer_k
        if e is not None and (best is None or e < best):
            best = e
        if k is not None and (best is None or k < best):
            best = k
        return best

    def on_timer(self, now_ns: int) -> TimerAction:
        state = self.state
        if state is TransactionState.TRYING or state is TransactionState.PROCEEDING:
            if self._timer_f is not None and now_ns >= self._timer_f:
                # Timer F: no final response in time; the TU is told (§17.1.2.2).
                self._terminate()
                return TimerAction(timed_out=True)
            if self._timer_e is not None and now_ns >= self._timer_e:
                if state is TransactionState.TRYING:
                    # E doubles, capped at T2: T1, 2T1, 4T1, ... T2, T2 ...
                    self._e_interval = min(2 * self._e_interval, self._t2_ns)
                else:
                    self._e_interval = self._t2_ns  # Proceeding: every T2
                self._timer_e = now_ns + self._e_interval
                return TimerAction(retransmit=self._request)
        elif state is TransactionState.COMPLETED:
            if self._timer_k is not None and now_ns >= self._timer_k:
                self._terminate()  # Timer K: stray retransmitted finals have drained away
        return NO_ACTION

    def on_response(self, status: int, now_ns: int) -> bool:
        """Feed a response's status; True exactly once, for the final one that completes us."""
        state = self.state
        if state is not TransactionState.TRYING and state is not TransactionState.PROCEEDING:
            return False  # Completed absorbs retransmitted finals; Terminated ignores all
        if status < 200:
            self.state = TransactionState.PROCEEDING
            return False
        self._timer_e = None
        self._timer_f = None
        if self.reliable or self._t4_ns == 0:
            self._terminate()  # Timer K is zero over reliable transports
        else:
            self.state = TransactionState.COMPLETED
            self._timer_k = now_ns + self._t4_ns
        return True

    def _terminate(self) -> None:
        self.state = TransactionState.TERMINATED
        self._timer_e = self._timer_f = self._timer_k = None
