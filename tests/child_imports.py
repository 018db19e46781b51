"""Which modules a fresh interpreter has loaded: for tests that keep heavy imports lazy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(module: str, *steps: str) -> list[bool]:
    """Whether `module` is loaded after each of `steps` (import statements), run in order
    in a child process with this tree first on its path."""
    check = f"print({module!r} in sys.modules)\n"
    script = "import sys\n" + "".join(f"{step}\n{check}" for step in steps)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return [line == "True" for line in run.stdout.split()]
