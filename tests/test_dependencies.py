"""What a fresh machine installs (issue 10): every runtime dependency is bounded below its
next major release and pinned in the lock `make run`/`make test` install from; the daemon runs
without the `reports` extra, and HTML/PDF reports then say what to install."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
NAME = re.compile(r"^([A-Za-z0-9_.-]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name.strip())] = version.split()[0]
    return pins


def requirements() -> list[str]:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *(r for group in extras.values() for r in group)]


def test_every_runtime_dependency_has_an_upper_bound() -> None:
    project = PYPROJECT["project"]
    runtime = [*project["dependencies"]]
    for extra in ("speed", "calls", "reports", "postgres"):
        runtime += project["optional-dependencies"][extra]
    unbounded = [r for r in runtime if "<" not in r and "==" not in r]
    assert unbounded == []


def test_every_requirement_is_pinned_in_the_lock_within_its_range() -> None:
    from packaging.requirements import Requirement

    pins = locked()
    for text in requirements():
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = pins.get(canonical(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pinned, prereleases=True), (text, pinned)


def test_the_lock_names_no_local_index() -> None:
    text = (REPO / "requirements.lock").read_text()
    assert "file://" not in text and "/opt/" not in text
    assert "--index-url" not in text and "--find-links" not in text


BLOCK_REPORTS = """
import sys
sys.modules["matplotlib"] = None  # as if the reports extra were not installed
sys.modules["weasyprint"] = None
"""


def test_the_daemon_runs_without_the_reports_extra(tmp_path: Path) -> None:
    script = (
        BLOCK_REPORTS
        + f"""
import asyncio
from monitor.app import Monitor
from monitor.config import config_from_text

async def main():
    cfg = config_from_text(
        'store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}\\n'
        'http: {{listen: 127.0.0.1, port: 0}}\\n'
        'trunks: [{{name: t, carrier: c, uri: "sip:127.0.0.1:9"}}]\\n'
    )
    monitor = Monitor(cfg)
    await monitor.start()
    await asyncio.sleep(0.3)
    await monitor.stop()
    print("started and stopped")

asyncio.run(main())
"""
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "started and stopped" in done.stdout


def test_html_and_pdf_reports_name_the_missing_extra() -> None:
    script = (
        BLOCK_REPORTS
        + """
from monitor.sla.reports.chart import timeline_svg
from monitor.sla.reports.pdf import render_pdf
from monitor.sla.reports import ReportsExtraMissing
for call in (lambda: timeline_svg(None), lambda: render_pdf(None)):
    try:
        call()
    except ReportsExtraMissing as exc:
        print(exc)
"""
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("pip install 'trunkwatch[reports]'" in x for x in lines)
    assert "matplotlib" in lines[0] and "WeasyPrint" in lines[1]
