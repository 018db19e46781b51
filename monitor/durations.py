"""Human durations in config: "5s", "250ms", "1m30s" to seconds and back."""

from __future__ import annotations

import math
import re

# Units largest first; a duration names each unit at most once, in this order, so
# "30s1m" (probably a typo) is rejected instead of guessed at.
_COMPONENT = r"(?:(?P<{name}>\d+(?:\.\d+)?){unit})?"
_DURATION = re.compile(
    "^"
    + _COMPONENT.format(name="h", unit="h")
    + _COMPONENT.format(name="m", unit="m(?!s)")
    + _COMPONENT.format(name="s", unit="s")
    + _COMPONENT.format(name="ms", unit="ms")
    + "$"
)
_BARE_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_SECONDS_PER = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_EXAMPLES = "a number of seconds or e.g. '5s', '250ms', '1m30s', '1h'"


def parse_duration(value: str | int | float) -> float:
    """Seconds from 5, 2.5, "5", "5s", "250ms", "1m", "1h", "1m30s"; ValueError otherwise."""
    # bool is an int subclass; `interval: true` is a mistake, not one second.
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({_EXAMPLES}), got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"duration must be a finite number, got {value!r}")
        return seconds
    if not isinstance(value, str):
        raise ValueError(f"expected a duration ({_EXAMPLES}), got {type(value).__name__}")
    text = value.strip()
    if _BARE_NUMBER.match(text):
        return float(text)
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(f"{value!r} is not a duration ({_EXAMPLES})")
    return sum(
        float(amount) * _SECONDS_PER[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )


def format_duration(seconds: float) -> str:
    """The shortest of "4s", "250ms", "2.5s", "1m30s", "2h" that parse_duration reads back."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if 0 < seconds < 1:
        return f"{_number(seconds * 1000)}ms"
    if seconds != int(seconds) or seconds < 60:
        return f"{_number(seconds)}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount)


def _number(value: float) -> str:
    # Fixed point (never exponent notation, which the parser does not read), trailing zeros cut.
    return f"{value:.6f}".rstrip("0").rstrip(".")
