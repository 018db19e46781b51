"""Bounded fuzzing of every reader of untrusted bytes (issue 10): no exception other than each
target's documented error type. Longer runs: `bench/fuzz.py --minutes N`."""

from __future__ import annotations

from typing import Any

import pytest
from fuzz_targets import TARGETS, Target
from hypothesis import HealthCheck, given, settings

# A few hundred examples each keeps the whole file well under 30 s on the 2-core machine.
EXAMPLES = 300


@pytest.mark.parametrize("target", TARGETS.values(), ids=list(TARGETS))
def test_fuzz_target(target: Target) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    @given(target.strategy)
    def run(data: Any) -> None:
        target.run(data)

    run()


def test_known_crashers_stay_fixed() -> None:
    # Found by fuzzing or review: each once escaped its target's error type.
    TARGETS["digest_bytes"].run(b'Digest realm="r\xe9seau", nonce="\xff\xfe"')
    TARGETS["digest"].run('Digest realm="\udcff", nonce="n", qop="auth"')
    TARGETS["config"].run("?   - trunks:")  # ruamel: TypeError, unhashable CommentedMap
    TARGETS["config"].run("<<: {trunks:}")  # a merged key without a position
