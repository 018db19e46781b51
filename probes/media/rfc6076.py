"""RFC 6076 session metrics over a rolling window of test-call attempts (one trunk).

SER (§4.6), SEER (§4.7), ISA (§4.8), SCR (§4.9) and the mean SRD (§4.3). The RFC states the
ratios as percentages; here they are 0..1 ratios (Prometheus `_ratio` convention), None when
the denominator is 0. Feed only real attempts: a `probe_crashed` call says nothing about the
trunk and must not be added.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from probes.instants import NS_PER_S

# §4.7: responses that show the network did its job even though no session was set up.
SEER_EFFECTIVE_CODES = frozenset({200, 480, 486, 600, 603})
# §4.8: responses that mean a proxy or UA failed or was overloaded.
ISA_CODES = frozenset({408, 500, 503, 504})
# RFC 3261 §8.1.3.1: a client transaction that times out (Timer B) is treated as a 408.
TIMEOUT_STATUS = 408
# The default rolling window: the last 100 attempts (at one call per 5 minutes, ~8 hours).
DEFAULT_MAX_ATTEMPTS = 100


@dataclass(slots=True, frozen=True)
class CallAttempt:
    """One INVITE the probe sent and how it ended.

    `final_status` None means no final response arrived (counted as 408, RFC 3261 §8.1.3.1).
    `srd_s` is the session request delay (§4.3): INVITE sent -> first response that tells the
    outcome (a non-100 provisional, or the final response); None if there was none.
    `completed` (§4.9): answered and ended normally, by a BYE answered 200, not by a timeout or
    failure on the way.
    """

    t_ns: int  # monotonic instant of the INVITE
    final_status: int | None
    srd_s: float | None = None
    completed: bool = False

    def __post_init__(self) -> None:
        if self.final_status is not None and not 200 <= self.final_status <= 699:
            raise ValueError(f"final status must be 200..699, got {self.final_status}")
        if self.srd_s is not None and self.srd_s < 0:
            raise ValueError(f"SRD must not be negative, got {self.srd_s}")
        if self.completed and not self.answered:
            raise ValueError(f"a call with final status {self.final_status} cannot be completed")

    @property
    def status(self) -> int:
        """The final status the metrics use (408 for no answer at all)."""
        return TIMEOUT_STATUS if self.final_status is None else self.final_status

    @property
    def answered(self) -> bool:
        return self.status == 200

    @property
    def redirected(self) -> bool:
        return 300 <= self.status <= 399


@dataclass(slots=True, frozen=True)
class SessionMetrics:
    attempts: int
    ser: float | None  # §4.6: 200 / (attempts - 3xx)
    seer: float | None  # §4.7: (200, 480, 486, 600, 603) / (attempts - 3xx)
    isa: float | None  # §4.8: (408, 500, 503, 504) / attempts
    scr: float | None  # §4.9: completed / attempts
    mean_srd_s: float | None  # §4.3: mean over attempts that had an SRD


def session_metrics(attempts: Iterable[CallAttempt]) -> SessionMetrics:
    """The RFC 6076 ratios over a set of attempts."""
    items = list(attempts)
    total = len(items)
    not_redirected = sum(not a.redirected for a in items)
    answered = sum(a.answered for a in items)
    effective = sum(a.status in SEER_EFFECTIVE_CODES for a in items)
    ineffective = sum(a.status in ISA_CODES for a in items)
    completed = sum(a.completed for a in items)
    srds = [a.srd_s for a in items if a.srd_s is not None]
    return SessionMetrics(
        attempts=total,
        ser=answered / not_redirected if not_redirected else None,
        seer=effective / not_redirected if not_redirected else None,
        isa=ineffective / total if total else None,
        scr=completed / total if total else None,
        mean_srd_s=statistics.fmean(srds) if srds else None,
    )


class SessionMetricsWindow:
    """The last `max_attempts` attempts, and (optionally) only those younger than `max_age_s`."""

    __slots__ = ("_attempts", "max_age_s")

    def __init__(
        self, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, max_age_s: float | None = None
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s}")
        self._attempts: deque[CallAttempt] = deque(maxlen=max_attempts)
        self.max_age_s = max_age_s

    def add(self, attempt: CallAttempt) -> None:
        if self._attempts and attempt.t_ns < self._attempts[-1].t_ns:
            raise ValueError(
                f"attempts must be added in time order: {attempt.t_ns} < {self._attempts[-1].t_ns}"
            )
        self._attempts.append(attempt)

    def __len__(self) -> int:
        return len(self._attempts)

    def metrics(self, now_ns: int | None = None) -> SessionMetrics:
        """Metrics over the window; with `max_age_s`, `now_ns` (monotonic) drops older attempts."""
        if self.max_age_s is not None:
            if now_ns is None:
                raise ValueError("a window with max_age_s needs now_ns")
            oldest = now_ns - round(self.max_age_s * NS_PER_S)
            while self._attempts and self._attempts[0].t_ns < oldest:
                self._attempts.popleft()
        return session_metrics(self._attempts)
