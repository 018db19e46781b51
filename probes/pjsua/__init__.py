"""pjsua2 test calls in supervised worker processes (notes/pjsua2.md says why processes).

How the pieces fit:

- `protocol`: the documented JSON-lines protocol between the asyncio side and a worker
  (commands `init`, `call`, `hangup`, `count`, `shutdown`; events `ready`, `fatal`,
  `call_done`, `count`, `log`), stdlib-only strict (de)serialisation.
- `worker`: the worker program (`python -m probes.pjsua.worker`): one pjsua2 Endpoint with the
  null audio device, at most PJSUA_MAX_CALLS = 4 calls, a `libHandleEvents` loop on its main
  thread, 10 Hz sampling of each call's stream statistics, the reference tone played into the
  call and the received audio recorded and checked for it with a Goertzel filter. With an
  `AnswerConfig` in `init` it is also the far end (probes/call_responder.py).
- `process`: one worker subprocess seen from asyncio (start, call, count, stop, kill); a worker
  that dies, breaks the protocol or overruns a call's deadline fails its calls in flight with
  WorkerCrashed, which probes turn into `probe_crashed`.
- `pool`: WorkerPool, growing to `max_calls` concurrent calls in fixed worker slots (ports per
  slot) and restarting dead workers with back-off.
- `sdp`: reads a far end's SDP to tell a codec mismatch from malformed SDP.

probes/call.py turns a worker's CallReport into a ProbeResult (outcome, CallMeasurements) with
probes/media (windows, E-model, thresholds).
"""

from __future__ import annotations

import importlib.util

# The wheel every measurement in notes/pjsua2.md was taken with (the `trunkwatch[calls]` extra).
PJSUA2_REQUIREMENT = "pjsua2-python==2.15.1.post1"


def pjsua2_missing() -> str | None:
    """Why test calls cannot run here (for check-config), or None when pjsua2 is importable."""
    if importlib.util.find_spec("pjsua2") is None:
        return (
            "call probes need pjsua2, which is not installed: "
            f"pip install 'trunkwatch[calls]' (pulls {PJSUA2_REQUIREMENT})"
        )
    return None
