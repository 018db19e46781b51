"""Long fuzz runs of every reader of untrusted bytes (tests/fuzz_targets.py), beyond the
bounded run in the suite: `bench/fuzz.py --minutes 30 [--target NAME ...]`.

Prints, per target, the examples run and every crash with its shortest reproducer; exits 1
on any crash. The minutes are shared out round-robin in one-minute turns."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzz_targets import TARGETS, Target

TURN_S = 60.0


def fuzz(target: Target, seconds: float) -> tuple[int, list[str]]:
    """Run `target` for about `seconds`; (examples, crash descriptions)."""
    count = 0
    deadline = time.monotonic() + seconds
    crashes: list[str] = []
    while time.monotonic() < deadline:

        @settings(
            max_examples=2_000,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(target.strategy)
        def run(data: Any) -> None:
            nonlocal count
            count += 1
            target.run(data)

        try:
            run()
        except Exception as exc:  # a crash: hypothesis has shrunk it to a minimal example
            crashes.append(f"{type(exc).__name__}: {exc}"[:300])
            if len(crashes) >= 5:
                break
    return count, crashes


def main() -> int:
    # ruamel warns on each reused anchor the fuzzer writes; the run prints only its figures.
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    args = parser.parse_args()
    names = args.target or sorted(TARGETS)
    totals = {name: 0 for name in names}
    crashes: dict[str, list[str]] = {name: [] for name in names}
    end = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    while time.monotonic() < end:
        for name in names:
            left = end - time.monotonic()
            if left <= 0:
                break
            examples, found = fuzz(TARGETS[name], min(TURN_S, left))
            totals[name] += examples
            crashes[name] += found
    minutes = (time.monotonic() - started) / 60
    print(f"fuzzed {minutes:.1f} min, targets: {', '.join(names)}")
    for name in names:
        print(f"  {name:14} {totals[name]:>10,} examples  {len(crashes[name])} crashes")
        for crash in crashes[name]:
            print(f"      {crash}")
    return 1 if any(crashes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
